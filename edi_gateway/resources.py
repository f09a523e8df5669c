"""Where the data that ships with the package lives: vendored schemas, routing rules, register fixtures.

In a source checkout (and an editable install) they are the top-level folders of the repository; in a
built wheel they are copied to ``edi_gateway/_resources/`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """Return the folder holding the shipped resource ``name`` (``schemas``, ``routing_rules``, ``fixtures``).

    Raises:
        FileNotFoundError: when neither the installed copy nor the source checkout has it.
    """
    for candidate in (_PACKAGE_DIR / "_resources" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"resource folder {name!r} is not installed with edi_gateway")
