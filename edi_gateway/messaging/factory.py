"""The transport and inbox the settings choose, with what they need opened and closed together.

``open_messaging`` always opens the confirming publisher on ``AMQP_URL``: status events and alerts go
to ``edi.events`` whichever transport carries the business documents. With ``TRANSPORT=amqp`` the
same publisher carries the documents and the inbox is a queue; with ``nhn`` a HelseID client and a
message service client are built from ``Settings.nhn`` and the inbox polls the HER-ids we serve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edi_gateway.messaging.amqp import AmqpTransport, queue_consumer
from edi_gateway.messaging.base import EdiTransport, Inbox
from edi_gateway.settings import Settings
from edi_gateway.settings_nhn import NhnSettings
from edi_gateway.transport.publisher import ConfirmingPublisher

if TYPE_CHECKING:
    from edi_gateway.messaging.nhn import NhnTransport
    from edi_gateway.nhn.helseid import HelseIdClient
    from edi_gateway.nhn.msh import MshClient


@dataclass(frozen=True)
class Messaging:
    """What a process sends and receives with.

    Attributes:
        publisher: the confirming publisher on AMQP_URL (events; documents too on ``amqp``).
        transport: sends business documents and our AppRecs.
        inbox: hands our inbound documents to a handler.
        msh: the message service client on ``nhn`` (delivery states, readiness); None on ``amqp``.
        helseid: the HelseID client on ``nhn`` (readiness, token metrics); None on ``amqp``.
    """

    publisher: ConfirmingPublisher
    transport: EdiTransport
    inbox: Inbox
    msh: MshClient | None = None
    helseid: HelseIdClient | None = None


@contextmanager
def open_messaging(
    settings: Settings, *, name: str, inbox_queue: str, inbox_her_ids: Sequence[int]
) -> Iterator[Messaging]:
    """Open the publisher, the transport and the inbox; close them all on the way out.

    Args:
        settings: the settings in force (``transport`` chooses).
        name: shown by the broker and in logs, e.g. ``edi-gateway worker:host:pid``.
        inbox_queue: our inbox queue on ``amqp`` (prefix included).
        inbox_her_ids: the HER-ids whose inboxes ``nhn`` polls.
    """
    with ExitStack() as stack:
        publisher = stack.enter_context(ConfirmingPublisher(settings.amqp_url, name=f"{name} publisher"))
        if settings.transport == "amqp":
            transport = AmqpTransport(publisher, confirm_timeout_s=settings.confirm_timeout_s)
            queue_inbox = queue_consumer(
                settings.amqp_url,
                inbox_queue,
                batch_size=settings.batch_size,
                batch_wait_ms=settings.batch_wait_ms,
                name=f"{name} inbox",
            )
            yield Messaging(publisher, transport, queue_inbox)
            return
        from edi_gateway.messaging.nhn import NhnInbox
        from edi_gateway.nhn.metrics import record_error

        parts = stack.enter_context(_nhn_parts(settings))
        inbox = NhnInbox(
            parts.msh,
            inbox_her_ids,
            batch_size=settings.batch_size,
            poll_interval_s=settings.nhn.nhn_poll_interval_s,
            on_error=lambda kind: record_error("receive", kind),
        )
        yield Messaging(publisher, parts.transport, inbox, msh=parts.msh, helseid=parts.helseid)


@contextmanager
def open_transport(settings: Settings, publisher: ConfirmingPublisher) -> Iterator[EdiTransport]:
    """The transport alone (operators' replays): ``publisher`` carries the documents on ``amqp``."""
    if settings.transport == "amqp":
        yield AmqpTransport(publisher, confirm_timeout_s=settings.confirm_timeout_s)
        return
    with _nhn_parts(settings) as parts:
        yield parts.transport


@dataclass(frozen=True)
class _NhnParts:
    helseid: HelseIdClient
    msh: MshClient
    transport: NhnTransport


@contextmanager
def _nhn_parts(settings: Settings) -> Iterator[_NhnParts]:
    from edi_gateway.messaging.nhn import NhnSendPolicy, NhnTransport
    from edi_gateway.nhn.metrics import observe_api_call, record_error

    nhn = settings.nhn
    helseid = open_helseid(nhn, nhn.helseid_msh_scopes)
    msh = open_msh(nhn, helseid, observe=observe_api_call)
    policy = NhnSendPolicy(attempts=nhn.nhn_send_attempts, max_wait_s=nhn.nhn_max_retry_wait_s)
    transport = NhnTransport(msh, policy=policy, on_error=lambda kind: record_error("send", kind))
    try:
        yield _NhnParts(helseid, msh, transport)
    finally:
        transport.close()
        msh.close()
        helseid.close()


def open_helseid(nhn: NhnSettings, scopes: str) -> HelseIdClient:
    """A HelseID client for ``scopes`` with the key and client id of ``nhn``."""
    from edi_gateway.nhn.helseid import HelseIdClient, HelseIdConfig
    from edi_gateway.nhn.keys import load_client_key

    assert nhn.helseid_token_url and nhn.helseid_client_id and nhn.helseid_key  # startup_problems checked
    config = HelseIdConfig(
        token_endpoint=nhn.helseid_token_url,
        client_id=nhn.helseid_client_id,
        key=load_client_key(nhn.helseid_key),
        scopes=tuple(scopes.split()),
        audience=nhn.effective_helseid_audience or nhn.helseid_token_url,
        timeout_s=nhn.nhn_timeout_s,
    )
    from edi_gateway.nhn.metrics import record_token_refresh

    return HelseIdClient(config, on_refresh=lambda: record_token_refresh(scopes))


def open_msh(
    nhn: NhnSettings,
    helseid: HelseIdClient,
    *,
    observe: Callable[[str, float, str | None], None] | None = None,
) -> MshClient:
    """A message service client authorised by ``helseid``."""
    from edi_gateway.nhn.msh import MshClient, MshConfig

    assert nhn.nhn_msh_url  # startup_problems checked
    config = MshConfig(
        base_url=nhn.nhn_msh_url,
        source_system=nhn.nhn_source_system,
        api_version=nhn.nhn_api_version,
        timeout_s=nhn.nhn_timeout_s,
    )
    return MshClient(config, helseid.headers_for, on_unauthorized=helseid.invalidate, observe=observe)


def served_her_ids(settings: Settings) -> tuple[int, ...]:
    """The HER-ids whose inboxes the gateway polls on ``nhn``: NHN_HER_IDS, else OUR_HER_ID."""
    return settings.nhn.nhn_her_ids or (settings.our_her_id,)
