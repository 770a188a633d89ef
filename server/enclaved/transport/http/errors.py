"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the
HTTP status each domain error maps to. Messages are the domain's one line: never the
request's text."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from enclaved.domain.completions import ContextLengthExceeded
from enclaved.errors import EnclaveError, InvalidArgument

# domain status -> (HTTP status, OpenAI error type)
_STATUS: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (503, "service_unavailable_error"),
    "UNAVAILABLE": (503, "service_unavailable_error"),
    "DATA_LOSS": (503, "service_unavailable_error"),
    "INTERNAL": (500, "server_error"),
}
_HTTP_TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error"}
INTERNAL_MESSAGE = "internal error in enclaved; the daemon log has the details"


class BadParam(InvalidArgument):
    """A request parameter that is missing, of the wrong type or out of range."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_of(exc: EnclaveError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for a domain error."""
    status, kind = _STATUS.get(exc.code, (500, "server_error"))
    code: str | None = exc.code.lower()
    if isinstance(exc, ContextLengthExceeded):
        code = "context_length_exceeded"
    elif status == 404:
        code = "model_not_found"
    return status, error_body(exc.message, kind, getattr(exc, "param", None), code)


def error_response(status: int, message: str, *, code: str | None = None, param: str | None = None) -> web.Response:
    kind = _HTTP_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return json_response(error_body(message, kind, param, code), status)


def from_domain(exc: EnclaveError) -> web.Response:
    status, body = error_of(exc)
    return json_response(body, status)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(), status=status, content_type="application/json")
