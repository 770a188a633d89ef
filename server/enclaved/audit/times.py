"""How the audit log writes and reads times: UTC, fixed width, so the text sorts like the time.

Its own module because the keyring (key creation dates) and the records both use it."""

from __future__ import annotations

from datetime import UTC, datetime

from enclaved.errors import InvalidArgument

# Fixed width, so the text sorts like the time and SQL can compare it directly.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidArgument("audit times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-11-22``, ``2026-11-22T10:00:00Z``), UTC where it names no zone;
    ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
