"""The pathway models on disk: the shipped ones (``pathway_models/``) and an operator's own file.

The domain (``domain.pathway``) parses and checks a model's text; reading the file is done here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from edi_gateway.domain.pathway import (
    DEFAULT_MODEL,
    NAME_PATTERN,
    PathwayModel,
    PathwayModelInvalid,
    UnknownPathwayModel,
    parse_model,
)
from edi_gateway.resources import resource_dir

MODELS_FOLDER = "pathway_models"


def load_model(path: Path) -> PathwayModel:
    """Read and check the pathway model in the file ``path``; its ``name`` must be the file's stem.

    Raises:
        PathwayModelInvalid: the file cannot be read, or its model is invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PathwayModelInvalid(f"{path.name}: cannot be read: {exc}") from exc
    model = parse_model(text, source=path.name)
    if model.name != path.stem:
        raise PathwayModelInvalid(f"{path.name}: name {model.name!r} must equal the file name {path.stem!r}")
    return model


def shipped_model_names() -> tuple[str, ...]:
    """Return the names of the models that ship with the gateway, sorted."""
    return tuple(sorted(p.stem for p in resource_dir(MODELS_FOLDER).glob("*.yaml")))


@cache
def shipped_model(name: str = DEFAULT_MODEL) -> PathwayModel:
    """Return the shipped model ``name`` (read and checked once per process).

    Raises:
        UnknownPathwayModel: no shipped model has that name.
        PathwayModelInvalid: the shipped file is broken (a packaging fault; the tests read every file).
    """
    path = resource_dir(MODELS_FOLDER) / f"{name}.yaml"
    # The pattern check keeps a name such as "../x" from reaching the file system.
    if not NAME_PATTERN.fullmatch(name) or not path.is_file():
        known = ", ".join(shipped_model_names())
        raise UnknownPathwayModel(f"no shipped pathway model {name!r}; shipped: {known}")
    return load_model(path)
