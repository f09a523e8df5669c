"""Runtime configuration: every setting comes from the environment with the ``EDI_GATEWAY_`` prefix.

The defaults are the embedded demo set-up: a SQLite file under ``EDI_GATEWAY_HOME``, and, in test
mode only, the generated test PKI and the fixture registers. With ``TEST_MODE`` off the gateway
refuses to start (``Settings.startup_problems``) until the signing key and certificate, the parties'
certificates and the register source are set explicitly: production never signs with a generated key
and never routes by fixture registers nobody chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi_gateway.errors import EdiGatewayError
from edi_gateway.resources import resource_dir
from edi_gateway.settings_nhn import NhnSettings

SQLITE_FILE = "edi_gateway.sqlite3"


class ConfigurationError(EdiGatewayError):
    """A setting or a configuration file is wrong; the message names which."""


class Settings(BaseSettings):
    """Validated settings; construct once at start-up and pass down."""

    model_config = SettingsConfigDict(env_prefix="EDI_GATEWAY_", frozen=True, extra="ignore")

    home: Path = Field(
        default=Path.home() / ".edi_gateway",
        description="Folder for the embedded SQLite file, the generated test PKI and other local state.",
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/%2F",
        description="RabbitMQ URL (amqp://user:password@host:port/vhost).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file under HOME. "
        "Production: postgresql+psycopg://user@host/db.",
    )
    test_mode: bool = Field(
        default=False,
        description="Accept synthetic person numbers (month +40 / +80 series), and let the gateway "
        "generate a test PKI and use the fixture registers by default. On in the demo and tests only.",
    )
    queue_prefix: str = Field(
        default="",
        description="Prefix for every queue and exchange name; lets tests and demos share a broker.",
    )
    our_her_id: int = Field(
        default=8100001,
        description="HER-id of our own virksomhet (the hospital); its inbox is <our_her_id>_async.",
    )
    default_unit_her_id: int = Field(
        default=8100002,
        description="HER-id of the sending unit when a request names none.",
    )
    signing_key: Path | None = Field(
        default=None,
        description="PEM private key used to sign outgoing messages. Required with TEST_MODE off; "
        "in test mode the default is the generated test PKI.",
    )
    signing_cert: Path | None = Field(
        default=None, description="PEM certificate matching SIGNING_KEY (same rule as SIGNING_KEY)."
    )
    certificates_dir: Path | None = Field(
        default=None,
        description="Folder of the parties' certificates (<her_id>.cert.pem) that verify their signed "
        "AppRecs. Required with TEST_MODE off unless APPREC_SIGNATURE is off; in test mode the default "
        "is the generated test PKI.",
    )
    registers: Literal["fixtures", "nhn"] | None = Field(
        default=None,
        description="Register source: fixtures (JSON files in REGISTERS_DIR) or nhn (Adresseregisteret "
        "and Fastlegeregisteret, with their certificates). Required with TEST_MODE off (setting "
        "REGISTERS_DIR chooses fixtures too); in test mode fixtures are the default.",
    )
    transport: Literal["amqp", "nhn"] = Field(
        default="amqp",
        description="How business documents travel: amqp (the receivers' <herId>_async queues on "
        "AMQP_URL) or nhn (NHN's EDI 2.0 message service with HelseID tokens). Requests and status "
        "events stay on AMQP_URL either way.",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve the worker's own metrics (NHN API latency, faults by kind, token refreshes) "
        "for Prometheus on 127.0.0.1 at this port; unset serves none.",
    )
    nhn: NhnSettings = Field(
        default_factory=NhnSettings,
        description="NHN's services (read from the same environment; see settings_nhn.py).",
    )
    registers_dir: Path | None = Field(
        default=None, description="Folder with the fixture registers (default: the shipped fixtures)."
    )
    routing_rules_dir: Path | None = Field(
        default=None, description="Folder with routing rules YAML (default: the shipped rules)."
    )
    max_request_bytes: int = Field(
        default=256 * 1024, gt=0, description="Largest request body accepted from edi.requests."
    )
    request_delivery_limit: int = Field(
        default=5, gt=0, description="Deliveries of one request before RabbitMQ dead-letters it."
    )
    batch_size: int = Field(
        default=64, gt=0, description="Requests the worker takes per batch (one commit, pipelined confirms)."
    )
    batch_wait_ms: int = Field(
        default=0,
        ge=0,
        description="Longest wait to fill a batch once a first request is in hand. 0 (the default): a "
        "batch is what has arrived while the previous one was handled, so a quiet queue costs no wait "
        "and a busy one still fills batches.",
    )
    confirm_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for the broker to confirm a batch of publishes."
    )

    apprec_signature: Literal["required", "optional", "off"] = Field(
        default="required",
        description="AppRec signature policy: required (unsigned ones are parked), optional (verified when "
        "present; NHN channels protect AppRecs by CMS instead), or off.",
    )
    apprec_deadline_s: float = Field(
        default=96 * 3600,
        gt=0,
        description="Seconds a receiver has to answer with an AppRec (standard: 96 h).",
    )
    resend_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Re-send the stored bytes (same MsgId) after this many seconds without "
        "an AppRec; unset turns automatic resend off.",
    )
    max_resends: int = Field(default=0, ge=0, description="Automatic resends per message before overdue.")
    overdue_sweep_interval_s: float = Field(
        default=30.0, gt=0, description="How often the worker looks for messages past their AppRec deadline."
    )
    quiet_threshold: int = Field(
        default=3, ge=1, description="Overdue messages in a row after which a receiver counts as gone quiet."
    )
    operator_action_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often each worker looks for operator actions (replays) recorded by the web UI "
        "or API; the web process never publishes, a worker carries them out.",
    )
    operator_action_stale_s: float = Field(
        default=300.0,
        gt=0,
        description="An operator action a worker claimed but has not finished after this many seconds "
        "(the worker died) is marked failed, never carried out twice.",
    )
    web_action_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a web or API replay waits for a worker's outcome before answering "
        "'pending' (the outcome then shows on the message page).",
    )
    role: Literal["hospital", "kommune"] = Field(
        default="hospital",
        description="What this gateway does: hospital (sends behovskartlegging, tracks AppRecs and "
        "replies) or kommune (OUR_HER_ID is the kommune's virksomhet: receives on every inbox of its "
        "services, acknowledges each message once, keeps the pathway worklist, sends fastlege notes).",
    )
    pathway_model: str = Field(
        default="telemark",
        description="The pathway model the kommune role plans with: a shipped model's name (telemark, "
        "nasjonalt-utkast) or the path of a YAML file of the same shape.",
    )
    pathway_due_soon_days: int = Field(
        default=14,
        ge=0,
        description="A point whose window opens within this many days raises a due-soon alert.",
    )
    pathway_sweep_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the kommune worker moves points by the calendar (due, overdue) and "
        "raises alerts; one worker at a time does it (a lease).",
    )
    pathway_note_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often each kommune worker looks for fastlege notes asked for on a completed "
        "point (CLI, web or API) and sends them.",
    )
    web_secure_cookie: bool = Field(
        default=False,
        description="Force the web UI's session cookie Secure (browsers then send it over HTTPS only) "
        "in test mode too; outside test mode it is always Secure.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed web logins per username from one address within LOGIN_WINDOW_S before it "
        "is held there (an address may fail four times as often in all).",
    )
    login_window_s: float = Field(
        default=900.0, gt=0, description="Seconds over which failed web logins are counted, and held."
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """A copy with ``update`` applied; values derived from the old fields are derived again.

        The ``cached_property`` values (the database URL in force …) live in the instance's
        ``__dict__``, which pydantic copies as it is: without this a copy with another DATABASE_URL
        would still name the original's database.
        """
        copy = super().model_copy(update=update, deep=deep)
        for name in _DERIVED:
            copy.__dict__.pop(name, None)
        return copy

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL in force: DATABASE_URL, or the SQLite file under HOME."""
        return self.database_url or f"sqlite:///{self.home / SQLITE_FILE}"

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file the URL in force names, or None (another database, or in memory)."""
        url = self.effective_database_url
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            return None
        name = url[len(prefix) :].split("?", 1)[0]
        return Path(name) if name and name != ":memory:" else None

    def startup_problems(self) -> list[str]:
        """What keeps the gateway from starting with these settings, each naming its variable.

        Empty when it may start. Outside test mode nothing test-only is chosen silently: the signing
        key and certificate, the parties' certificates and the register source must be set.
        """
        problems: list[str] = []
        if (self.signing_key is None) != (self.signing_cert is None):
            problems.append("set both EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither")
        elif self.signing_key is None and not self.test_mode:
            problems.append(
                "EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT must be set when "
                "EDI_GATEWAY_TEST_MODE is off (a generated test PKI is for test mode only)"
            )
        if (
            self.certificates_dir is None
            and not self.test_mode
            and self.apprec_signature != "off"
            and self.effective_registers != "nhn"
        ):
            problems.append(
                "EDI_GATEWAY_CERTIFICATES_DIR (the parties' certificates) must be set when "
                "EDI_GATEWAY_TEST_MODE is off and EDI_GATEWAY_APPREC_SIGNATURE is not off"
            )
        if self.effective_registers is None:
            problems.append(
                "EDI_GATEWAY_REGISTERS must be set when EDI_GATEWAY_TEST_MODE is off (fixtures or nhn)"
            )
        if self.transport == "nhn":
            problems += self.nhn.transport_problems()
        if self.effective_registers == "nhn":
            problems += self.nhn.register_problems()
        return problems

    @property
    def effective_registers(self) -> Literal["fixtures", "nhn"] | None:
        """The register source in force: REGISTERS, else fixtures when REGISTERS_DIR or test mode says so."""
        if self.registers is not None:
            return self.registers
        return "fixtures" if self.registers_dir is not None or self.test_mode else None

    @property
    def uses_test_pki(self) -> bool:
        """True when the generated test PKI supplies our signing key or the parties' certificates."""
        return self.test_mode and (self.signing_key is None or self.certificates_dir is None)

    @cached_property
    def effective_registers_dir(self) -> Path:
        """The register fixtures folder in force."""
        return self.registers_dir or resource_dir("fixtures") / "registers"

    @cached_property
    def effective_routing_rules_dir(self) -> Path:
        """The routing rules folder in force."""
        return self.routing_rules_dir or resource_dir("routing_rules")

    @property
    def pki_dir(self) -> Path:
        """Where the generated test PKI lives."""
        return self.home / "pki"


_DERIVED = tuple(name for name, value in vars(Settings).items() if isinstance(value, cached_property))
"""The settings' derived values, computed once per instance (and dropped from a copy)."""
