"""The audit core: an encrypted, tamper-evident audit log and conversation store in
``<data>/audit.db`` (see docs/audit.md).

The daemon opens one ``AuditLog`` and calls ``append(Entry(...), actor)`` for every event, ``conversations`` for
transcripts and agent settings; auditors use ``verify`` and ``export`` on the files, or
``python -m enclaved.audit``."""

from enclaved.audit.conversations import Conversations, TranscriptMessage
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.export import copy_log, export
from enclaved.audit.keys import PASSPHRASE_ENV, change_passphrase, passphrase_from_env
from enclaved.audit.records import ACTIONS, OUTCOMES, Action, Actor, AuditRecord, ContentPolicy, Entry, Filters
from enclaved.audit.sealing import VerifyKey, load_verify_key
from enclaved.audit.store import AuditConfig, AuditLog
from enclaved.audit.verify import VerifyResult, verify

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "PASSPHRASE_ENV",
    "Action",
    "Actor",
    "AuditConfig",
    "AuditError",
    "AuditKeyError",
    "AuditLog",
    "AuditRecord",
    "ContentPolicy",
    "Conversations",
    "Entry",
    "Filters",
    "TranscriptMessage",
    "VerifyKey",
    "VerifyResult",
    "change_passphrase",
    "copy_log",
    "export",
    "load_verify_key",
    "passphrase_from_env",
    "verify",
]
