"""Errors of the audit log, in the style of ``enclaved.errors``: a gRPC code and a one-line
message that names the problem and the fix. Messages never carry payload text or key bytes."""

from __future__ import annotations

from enclaved.errors import EnclaveError


class AuditError(EnclaveError):
    """The log cannot be trusted or written: a write failed (the log then refuses appends until
    it is reopened), or its files disagree in a way that means records were lost or altered."""

    code = "DATA_LOSS"


class AuditKeyError(EnclaveError):
    """A key is missing, wrong, or too widely readable; nothing was read or written."""

    code = "FAILED_PRECONDITION"
