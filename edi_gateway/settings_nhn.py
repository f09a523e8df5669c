"""Settings for NHN's services: the EDI 2.0 message service, HelseID, Adresseregisteret, Fastlegeregisteret.

Read from the same ``EDI_GATEWAY_`` environment as ``settings.Settings``, which holds them as
``Settings.nhn``. They matter only when ``EDI_GATEWAY_TRANSPORT=nhn`` or ``EDI_GATEWAY_REGISTERS=nhn``;
``problems`` then names every variable still missing. Secrets are never values here: the HelseID key
and the FLR password are files, read owner-only when the clients are built.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MSH_SCOPE = "nhn:msh/api"
AR_SCOPE = "nhn:cp-api/access-v2-dpop"


class NhnSettings(BaseSettings):
    """NHN endpoints, our HelseID client and the register cache; see docs/production.md."""

    model_config = SettingsConfigDict(env_prefix="EDI_GATEWAY_", frozen=True, extra="ignore")

    nhn_msh_url: str | None = Field(
        default=None,
        description="Base URL of NHN's EDI 2.0 message service, e.g. https://api.hn-tjener.prod.melding.nhn.no",
    )
    nhn_source_system: str = Field(
        default="edi_gateway", description="The nhn-source-system header: our system's name and version."
    )
    nhn_api_version: str = Field(default="2", description="The message service's api-version header.")
    nhn_her_ids: tuple[int, ...] = Field(
        default=(),
        description="HER-ids whose inboxes the gateway polls (JSON list, e.g. [8100001, 8100002]); "
        "default: OUR_HER_ID alone.",
    )
    nhn_poll_interval_s: float = Field(default=5.0, gt=0, description="Seconds between inbox polls.")
    nhn_status_poll_interval_s: float = Field(
        default=60.0, gt=0, description="Seconds between polls of sent messages' delivery states."
    )
    nhn_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one HTTP request to NHN.")
    nhn_send_attempts: int = Field(
        default=3, ge=1, description="Tries per document within one send before it is deferred."
    )
    nhn_max_retry_wait_s: float = Field(
        default=5.0, ge=0, description="Longest wait between two tries; a longer Retry-After defers at once."
    )
    helseid_token_url: str | None = Field(
        default=None, description="HelseID's token endpoint, e.g. https://helseid-sts.nhn.no/connect/token"
    )
    helseid_audience: str | None = Field(
        default=None,
        description="The client assertion's audience: the HelseID issuer (default: the token URL's origin).",
    )
    helseid_client_id: str | None = Field(default=None, description="Our HelseID client id.")
    helseid_key: Path | None = Field(
        default=None,
        description="Our HelseID client key: a PEM or JWK file, owner-only. It signs the client "
        "assertions and the DPoP proofs.",
    )
    helseid_msh_scopes: str = Field(default=MSH_SCOPE, description="Scopes for the message service.")
    helseid_ar_scopes: str = Field(default=AR_SCOPE, description="Scopes for Adresseregisteret's REST API.")
    ar_url: str | None = Field(
        default=None, description="Base URL of Adresseregisteret's REST API (CommunicationParty API)."
    )
    flr_url: str | None = Field(
        default=None, description="Fastlegeregisteret's SOAP endpoint (BasicHttp binding, .../v2/flr/Basic)."
    )
    flr_username: str | None = Field(default=None, description="Fastlegeregisteret's HTTP Basic user.")
    flr_password_file: Path | None = Field(
        default=None, description="File holding Fastlegeregisteret's HTTP Basic password, owner-only."
    )
    kommune_orgnr_file: Path | None = Field(
        default=None,
        description="YAML map kommunenummer → the kommune's organisasjonsnummer, used to find a kommune in "
        "Adresseregisteret (default: the shipped routing_rules/kommune-organisations.yaml).",
    )
    register_cache_ttl_s: float = Field(
        default=3600.0, gt=0, description="How long a register answer is kept."
    )
    register_cache_negative_ttl_s: float = Field(
        default=300.0, gt=0, description="How long a 'no such entry' answer is kept."
    )
    register_cache_size: int = Field(default=10_000, gt=0, description="Most register answers kept.")
    register_stale_max_s: float = Field(
        default=86_400.0,
        ge=0,
        description="How old a kept answer may be and still be served while the register is down.",
    )

    @property
    def effective_helseid_audience(self) -> str | None:
        """The assertion audience in force: HELSEID_AUDIENCE, else the token URL's origin."""
        if self.helseid_audience or not self.helseid_token_url:
            return self.helseid_audience
        parts = urlsplit(self.helseid_token_url)
        return f"{parts.scheme}://{parts.netloc}"

    def transport_problems(self) -> list[str]:
        """What the ``nhn`` transport still needs, each naming its variable."""
        return _missing(("EDI_GATEWAY_NHN_MSH_URL", self.nhn_msh_url), *self._helseid())

    def register_problems(self) -> list[str]:
        """What the ``nhn`` registers still need, each naming its variable."""
        return _missing(
            ("EDI_GATEWAY_AR_URL", self.ar_url),
            ("EDI_GATEWAY_FLR_URL", self.flr_url),
            ("EDI_GATEWAY_FLR_USERNAME", self.flr_username),
            ("EDI_GATEWAY_FLR_PASSWORD_FILE", self.flr_password_file),
            *self._helseid(),
        )

    def _helseid(self) -> list[tuple[str, object]]:
        return [
            ("EDI_GATEWAY_HELSEID_TOKEN_URL", self.helseid_token_url),
            ("EDI_GATEWAY_HELSEID_CLIENT_ID", self.helseid_client_id),
            ("EDI_GATEWAY_HELSEID_KEY", self.helseid_key),
        ]

    def describe(self) -> dict[str, object]:
        """The configuration without secrets (for ``edi-gateway transport``)."""
        return {
            "nhn_msh_url": self.nhn_msh_url,
            "nhn_api_version": self.nhn_api_version,
            "nhn_source_system": self.nhn_source_system,
            "nhn_her_ids": list(self.nhn_her_ids),
            "nhn_poll_interval_s": self.nhn_poll_interval_s,
            "helseid_token_url": self.helseid_token_url,
            "helseid_audience": self.effective_helseid_audience,
            "helseid_client_id": self.helseid_client_id,
            "helseid_key": "set" if self.helseid_key else None,
            "helseid_msh_scopes": self.helseid_msh_scopes,
            "helseid_ar_scopes": self.helseid_ar_scopes,
            "ar_url": self.ar_url,
            "flr_url": self.flr_url,
            "flr_username": "set" if self.flr_username else None,
            "flr_password_file": "set" if self.flr_password_file else None,
        }


def _missing(*pairs: tuple[str, object]) -> list[str]:
    names = [name for name, value in pairs if value in (None, "")]
    return [f"{', '.join(names)} must be set"] if names else []
