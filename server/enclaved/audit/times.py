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
    ValueError if it is not one, or if it is out of range once in UTC (year 1 at +14:00)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range in UTC") from None


def utc_now() -> datetime:
    return datetime.now(UTC)
