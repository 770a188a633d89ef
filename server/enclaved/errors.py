"""Domain errors. Each carries the gRPC status it maps to and a one-line message that names
the problem and the fix. Messages never contain prompt or completion text."""

from __future__ import annotations


class EnclaveError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EnclaveError):
    code = "NOT_FOUND"


class InvalidArgument(EnclaveError):
    code = "INVALID_ARGUMENT"


class FailedPrecondition(EnclaveError):
    code = "FAILED_PRECONDITION"


class PermissionDenied(EnclaveError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(EnclaveError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(EnclaveError):
    code = "UNAVAILABLE"


class ConfigError(Exception):
    """The config file or command line is wrong; the daemon does not start."""
