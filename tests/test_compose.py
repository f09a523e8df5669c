"""docker-compose.yml and the Dockerfile agree with the code: services, health, commands, settings, lock.

No Docker engine is needed: the compose file is read as YAML and every command and variable in it
is checked against the command line and the Settings model it will meet in the container.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
import yaml

from edi_gateway.cli import app
from edi_gateway.settings import Settings
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
GATEWAY_SERVICES = ("setup", "worker", "web")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as compose itself reads it (YAML with anchors and merge keys)."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _interpolate(value: str, given: dict[str, str]) -> str:
    """Resolve compose's ${...} forms the way `docker compose` would with ``given`` as the shell environment."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in given:
            return given[name]
        if op in (":-", "-"):
            return str(arg)
        if op in (":?", "?"):
            raise AssertionError(f"compose refuses to start without {name}: {arg}")
        return ""

    return INTERPOLATION.sub(one, value)


def _resolve_command(argv: list[str]) -> Any:
    """The command ``edi-gateway *argv`` runs, its arguments parsed; fails on anything unknown.

    Walks the command tree typer builds (click's API; typer may bring its own copy of click, so the
    tree is used through its methods, never through isinstance checks).
    """
    command: Any = typer.main.get_command(app)
    args = list(argv)
    while hasattr(command, "resolve_command"):
        assert args, f"{argv} names a command group, not a command"
        _, command, args = command.resolve_command(command.context_class(command), args)
        assert command is not None, f"edi-gateway has no command for {argv}"
    command.make_context(command.name or "", list(args))  # a bad option or value raises a usage error
    return command


def test_the_compose_file_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    """RabbitMQ, PostgreSQL, the one-shot setup, the worker and the web UI; the gateway built from here."""
    assert set(services) == {"rabbitmq", "postgres", *GATEWAY_SERVICES}
    assert {services[name]["build"] for name in GATEWAY_SERVICES} == {"."}


def test_broker_and_database_have_their_health_checks(services: dict[str, dict[str, Any]]) -> None:
    """RabbitMQ answers rabbitmq-diagnostics ping and PostgreSQL pg_isready; the web UI its /healthz."""
    assert services["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in web_check


def test_setup_runs_once_after_broker_and_database_are_healthy(services: dict[str, dict[str, Any]]) -> None:
    """setup waits for healthy RabbitMQ and PostgreSQL, runs `edi-gateway setup` and is never restarted."""
    setup = services["setup"]
    assert setup["command"] == ["setup"]
    assert setup["restart"] == "no"
    assert setup["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


@pytest.mark.parametrize("name", ["worker", "web"])
def test_worker_and_web_start_after_setup_succeeded(services: dict[str, dict[str, Any]], name: str) -> None:
    """The long-running services wait until setup has migrated and declared the topology, and exited 0."""
    assert services[name]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}


def test_the_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    """`--scale worker=3` works: the worker has no fixed container name and publishes no port."""
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


@pytest.mark.parametrize("name", GATEWAY_SERVICES)
def test_every_command_is_a_real_edi_gateway_command(services: dict[str, dict[str, Any]], name: str) -> None:
    """Each gateway service's command parses as an edi-gateway subcommand with valid options."""
    assert _resolve_command(services[name]["command"]).name == services[name]["command"][0]


def test_the_web_listens_on_every_interface_of_its_container(services: dict[str, dict[str, Any]]) -> None:
    """Inside the container the UI must not bind to loopback, or the published port reaches nothing."""
    command = services["web"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (the container's own interfaces)
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]


@pytest.mark.parametrize("name", GATEWAY_SERVICES)
def test_every_variable_is_a_setting(services: dict[str, dict[str, Any]], name: str) -> None:
    """Every EDI_GATEWAY_ variable the compose file sets is a Settings field (no typo goes unnoticed)."""
    environment = services[name]["environment"]
    assert environment, "the gateway services are configured through the environment"
    fields = set(Settings.model_fields)
    unknown = [key for key in environment if key.removeprefix("EDI_GATEWAY_").lower() not in fields]
    assert unknown == []
    assert all(key.startswith("EDI_GATEWAY_") for key in environment)


@pytest.mark.parametrize("name", GATEWAY_SERVICES)
def test_the_compose_settings_are_production_complete(services: dict[str, dict[str, Any]], name: str) -> None:
    """With only the passwords given, test mode is off and the gateway has everything it needs to start."""
    given = {"RABBITMQ_PASSWORD": "r", "POSTGRES_PASSWORD": "p"}
    resolved = {
        key.removeprefix("EDI_GATEWAY_").lower(): _interpolate(str(value), given)
        for key, value in services[name]["environment"].items()
    }
    settings = Settings(**resolved)
    assert settings.test_mode is False
    assert settings.startup_problems() == []
    assert not settings.uses_test_pki
    assert settings.effective_database_url.startswith("postgresql+psycopg://edi:p@postgres:5432/")
    assert settings.amqp_url == "amqp://edi:r@rabbitmq:5672/%2F"


def test_the_signing_key_and_certificate_come_from_compose_secrets(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The key and certificate are mounted as secrets at the paths the settings name, never baked in."""
    for name in GATEWAY_SERVICES:
        environment = services[name]["environment"]
        assert set(services[name]["secrets"]) == {"signing_key", "signing_cert"}
        assert environment["EDI_GATEWAY_SIGNING_KEY"] == "/run/secrets/signing_key"
        assert environment["EDI_GATEWAY_SIGNING_CERT"] == "/run/secrets/signing_cert"
    assert set(compose["secrets"]) == {"signing_key", "signing_cert"}


def test_passwords_have_no_defaults(compose: dict[str, Any]) -> None:
    """Compose refuses to start until RABBITMQ_PASSWORD and POSTGRES_PASSWORD are given."""
    text = COMPOSE.read_text(encoding="utf-8")
    uses = {m["name"]: m["op"] for m in INTERPOLATION.finditer(text) if m["name"].endswith("_PASSWORD")}
    assert uses == {"RABBITMQ_PASSWORD": ":?", "POSTGRES_PASSWORD": ":?"}


def test_the_dockerfile_installs_from_the_lock_as_a_non_root_user() -> None:
    """The image installs the locked versions, runs as an unprivileged user, and its entrypoint is edi-gateway."""
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    assert lines[0].startswith("#") and any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert "COPY requirements.lock ./" in lines
    assert any(line.startswith("RUN ") and "--constraint requirements.lock" in line for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert lines[[i for i, line in enumerate(lines) if line.startswith("ENTRYPOINT")][-1]] == (
        'ENTRYPOINT ["edi-gateway"]'
    )


def test_the_lock_pins_every_dependency_exactly() -> None:
    """requirements.lock pins each distribution with ==, holds the runtime and dev tools, not the project."""
    pins = [
        line
        for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    names = {line.split("==")[0].lower() for line in pins}
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+(\[[\w,]+\])?==[\w.+!-]+", line) for line in pins), pins
    assert {"starlette", "fastapi", "python-multipart", "jinja2", "cryptography", "ruff", "mypy"} <= names
    assert "edi-gateway" not in names


def test_the_dockerignore_keeps_secrets_and_the_venv_out_of_the_image() -> None:
    """The build context never carries the secrets folder, the venv or the git history."""
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {"secrets", ".venv", ".git"} <= ignored


def test_the_secrets_folder_is_never_committed() -> None:
    """.gitignore lists secrets/, where the compose file reads the signing key from."""
    assert "secrets/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
