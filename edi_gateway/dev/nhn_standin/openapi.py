"""Check the stand-in's requests, and its answers, against a published OpenAPI document.

The document (for the message service: the vendored ``schemas/nhn/msh-api-v2.json``, never modified)
is read and prepared once per file; every :class:`OpenApiValidator` made from it shares that work
and keeps its own lists of violations. Validation is openapi-core's: the path and method, every
parameter (required headers such as ``api-version`` included, query names as case-sensitive as
published, types, bounds and formats) and the request body against its schema.

Two changes are made to the loaded copy, in memory only:

* ``servers`` becomes ``[{"url": "/"}]``: the stand-in serves the paths at its own root on
  ``127.0.0.1``, not at NHN's host, and openapi-core matches the server as well as the path;
* the security requirement (a ``Bearer`` scheme) is satisfied by a provider that accepts every
  request. The stand-in checks authentication itself (a HelseID DPoP token, which the published
  ``Bearer`` scheme does not describe), so a request without a token is answered 401 by the
  stand-in's ``authorize``, not 400 here.

A request that does not validate is answered ``400`` with an ``ErrorMessage`` body, as NHN answers a
model validation error, and recorded in :attr:`OpenApiValidator.violations`, so a test can assert
that the gateway never sent one. The answers of the routes built with :meth:`OpenApiValidator.route_class`
are checked too (except those a test injected as faults, see ``mark_unchecked``) and recorded in
:attr:`OpenApiValidator.response_violations`; :meth:`OpenApiValidator.response_errors` checks any
answer seen from the client's side.

Violation texts name the operation, the parameter or body path and the rule broken; they quote
short values at most (the schema's own messages), never a whole body.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi.routing import APIRoute
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.security.factories import SecurityProviderFactory
from openapi_core.unmarshalling.request.datatypes import RequestUnmarshalResult
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edi_gateway.resources import resource_dir

__all__ = [
    "MSH_DOCUMENT",
    "OpenApiValidator",
    "error_message",
    "load_openapi",
    "mark_unchecked",
    "unmarshalled",
]

MSH_DOCUMENT: Final = ("nhn", "msh-api-v2.json")
"""The message service's description, below the shipped ``schemas`` folder."""

_MAX_MESSAGE_CHARS: Final = 300
_STATE_RESULT: Final = "openapi_result"
_STATE_UNCHECKED: Final = "openapi_unchecked"


def error_message(
    status: int,
    error: str,
    *,
    error_code: int = 0,
    validation_errors: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An answer with NHN's ``ErrorMessage`` body (``stackTrace`` null, a fresh ``requestId``).

    Args:
        status: the HTTP status.
        error: the ``error`` text.
        error_code: the ``errorCode`` (NHN uses 1000 for model validation, 0 otherwise).
        validation_errors: the ``validationErrors``, or None.
        headers: extra response headers.
    """
    body = {
        "error": error,
        "errorCode": error_code,
        "validationErrors": list(validation_errors) if validation_errors is not None else None,
        "stackTrace": None,
        "requestId": str(uuid.uuid4()),
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class _AcceptAnyCredentials:
    """Security provider for every scheme: the stand-in's own ``authorize`` decides, not the document."""

    def __init__(self, scheme: object) -> None:
        self.scheme = scheme

    def __call__(self, parameters: RequestParameters) -> None:
        return None


class _StandInChecksAuth(SecurityProviderFactory):
    def create(self, scheme: Any) -> _AcceptAnyCredentials:
        return _AcceptAnyCredentials(scheme)


@cache
def load_openapi(path: Path) -> OpenAPI:
    """Read an OpenAPI document once per path, prepared for the stand-in (see the module docstring).

    Args:
        path: the JSON document; it is read, never written.

    Raises:
        OSError, ValueError: the file cannot be read or is not JSON.
        openapi_core.exceptions.SpecError: the document is not a valid OpenAPI description.
    """
    document = json.loads(path.read_text(encoding="utf-8"))
    document["servers"] = [{"url": "/"}]
    return OpenAPI.from_dict(document, config=Config(security_provider_factory=_StandInChecksAuth()))


@dataclass
class _OpenApiRequest:
    """openapi-core's request protocol over plain values (a Starlette request or a test's record)."""

    method: str
    host_url: str
    path: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


@dataclass
class _OpenApiResponse:
    """openapi-core's response protocol over plain values."""

    status_code: int
    data: bytes
    headers: Headers
    content_type: str = field(init=False)

    def __post_init__(self) -> None:
        self.content_type = self.headers.get("content-type", "")


class OpenApiValidator:
    """Validates requests (and answers) against one OpenAPI document; records what breaks it.

    Attributes:
        api: the prepared document.
        violations: one line per request that did not validate, in arrival order.
        response_violations: one line per checked answer that did not validate.
    """

    def __init__(self, api: OpenAPI) -> None:
        self.api = api
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: Path) -> OpenApiValidator:
        """A validator for the document at ``path`` (read once per path for the process)."""
        return cls(load_openapi(path.resolve()))

    @classmethod
    def msh(cls) -> OpenApiValidator:
        """A validator for NHN's message service (MSH API v2), from the vendored description."""
        return cls.from_path(resource_dir("schemas").joinpath(*MSH_DOCUMENT))

    # -- requests --

    def request_errors(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> list[str]:
        """Validate a request given as plain values; record nothing.

        Args:
            method: the HTTP method.
            url: the absolute URL, query included.
            headers: the request headers.
            body: the request body, if any.

        Returns:
            One line per violation; empty when the request is valid.
        """
        request = _request_from_values(method, url, headers, body)
        result = self.api.unmarshal_apicall_request(request)
        return [_describe(request.method, request.path, error) for error in result.errors]

    async def check(self, request: Request) -> Response | None:
        """Validate a request the stand-in received.

        On success the unmarshalled parameters and body are kept on the request (see
        :func:`unmarshalled`) and None is returned; otherwise every violation is recorded and the
        400 ``ErrorMessage`` answer to send is returned.
        """
        body = await request.body()
        openapi_request = _OpenApiRequest(
            method=request.method.lower(),
            host_url=str(request.base_url),
            path=request.url.path,
            parameters=RequestParameters(query=request.query_params, header=request.headers),
            body=body or None,
            content_type=request.headers.get("content-type", "application/octet-stream"),
        )
        result = self.api.unmarshal_apicall_request(openapi_request)
        if not result.errors:
            setattr(request.state, _STATE_RESULT, result)
            return None
        lines = [_describe(openapi_request.method, openapi_request.path, error) for error in result.errors]
        with self._lock:
            self.violations.extend(lines)
        return error_message(400, "Model validation error occurred", error_code=1000, validation_errors=lines)

    # -- answers --

    def response_errors(
        self,
        method: str,
        url: str,
        *,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        request_headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        request_body: bytes | None = None,
    ) -> list[str]:
        """Validate an answer to a request, both given as plain values; record nothing.

        Args:
            method: the request's HTTP method.
            url: the request's absolute URL.
            status: the answer's HTTP status.
            headers: the answer's headers.
            body: the answer's body.
            request_headers: the request's headers (openapi-core reads the request as well).
            request_body: the request's body.

        Returns:
            One line per violation; empty when the answer is one the document describes.
        """
        request = _request_from_values(method, url, request_headers, request_body)
        response = _OpenApiResponse(status_code=status, data=body, headers=_headers(headers))
        result = self.api.unmarshal_apicall_response(request, response)
        return [_describe(request.method, request.path, error, status=status) for error in result.errors]

    def record_response(self, request: Request, response: Response) -> None:
        """Check the stand-in's own answer to ``request`` and record its violations, if any."""
        if getattr(request.state, _STATE_UNCHECKED, False):
            return
        body = getattr(response, "body", None)  # a streamed answer has none: only faults stream
        if not isinstance(body, bytes | memoryview):
            return
        lines = self.response_errors(
            request.method,
            str(request.url),
            status=response.status_code,
            headers=response.headers.items(),
            body=bytes(body),
            request_headers=request.headers.items(),
        )
        if lines:
            with self._lock:
                self.response_violations.extend(lines)

    # -- FastAPI --

    def route_class(self) -> type[APIRoute]:
        """An ``APIRoute`` class whose routes validate each request before its endpoint runs.

        An invalid request never reaches the endpoint: it is answered 400 (``ErrorMessage``) and
        recorded. The endpoint's answer is then checked against the document (:meth:`record_response`).
        """
        validator = self

        class ValidatedRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handle = super().get_route_handler()

                async def validated(request: Request) -> Response:
                    refusal = await validator.check(request)
                    if refusal is not None:
                        return refusal
                    response = await handle(request)
                    validator.record_response(request, response)
                    return response

                return validated

        return ValidatedRoute

    def reset(self) -> None:
        """Forget the recorded violations."""
        with self._lock:
            self.violations.clear()
            self.response_violations.clear()


def unmarshalled(request: Request) -> RequestUnmarshalResult:
    """The validated, typed parameters and body of a request that passed :meth:`OpenApiValidator.check`.

    Raises:
        RuntimeError: the request was not validated (the route was not built with the validator).
    """
    result = getattr(request.state, _STATE_RESULT, None)
    if not isinstance(result, RequestUnmarshalResult):
        raise RuntimeError("the request was not validated against the OpenAPI document")
    return result


def mark_unchecked(request: Request) -> None:
    """Exempt this request's answer from the response check (a fault a test injected on purpose)."""
    setattr(request.state, _STATE_UNCHECKED, True)


def _request_from_values(
    method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes | None
) -> _OpenApiRequest:
    parts = urlsplit(url)
    request_headers = _headers(headers)
    return _OpenApiRequest(
        method=method.lower(),
        host_url=f"{parts.scheme}://{parts.netloc}/",
        path=parts.path or "/",
        parameters=RequestParameters(query=QueryParams(parts.query), header=request_headers),
        body=body or None,
        content_type=request_headers.get("content-type", "application/octet-stream"),
    )


def _headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Headers:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return Headers(raw=[(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items])


def _describe(method: str, path: str, error: Exception, *, status: int | None = None) -> str:
    """One line for a violation: where, and what is wrong, without quoting a body.

    openapi-core's own text of a body error repeats the whole body (or the bytes it could not read);
    the line keeps its first clause and adds the schema's messages, or the name of the failure.
    """
    where = f"{method.upper()} {path}" + (f" -> {status}" if status is not None else "")
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    messages = [_schema_message(schema_error) for schema_error in _schema_errors(error)]
    cause = error.__cause__
    if messages:
        if _quotes_a_body(error):
            text = text.split(":", 1)[0]
        detail = f"{text}: {'; '.join(messages)}"
    elif cause is not None and _quotes_a_body(error):
        if hasattr(cause, "value"):  # a body that cannot be read at all: its text repeats the bytes
            detail = f"{text.split(':', 1)[0]}: {type(cause).__name__} ({getattr(cause, 'mimetype', '?')})"
        else:
            detail = text
    elif cause is not None and str(cause):  # a parameter: short, and the value is what is wrong
        detail = f"{text}: {str(cause).splitlines()[0]}"
    else:
        detail = text
    return f"{where}: {_cut(detail, 4 * _MAX_MESSAGE_CHARS)}"


def _quotes_a_body(error: Exception) -> bool:
    name = type(error).__name__.lower()
    return "body" in name or "data" in name


def _schema_errors(error: BaseException) -> list[Any]:
    seen: list[Any] = []
    cause: BaseException | None = error
    while cause is not None and not seen:
        seen = list(getattr(cause, "schema_errors", ()) or ())
        cause = cause.__cause__
    return seen


def _schema_message(schema_error: Any) -> str:
    location = "/".join(str(part) for part in getattr(schema_error, "absolute_path", ()))
    message = _cut(str(getattr(schema_error, "message", schema_error)), _MAX_MESSAGE_CHARS)
    return f"{location}: {message}" if location else message


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
