"""Time values accepted by identity.pki: epoch seconds or time-zone-aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from identity.pki.errors import PkiError


def as_utc(now: float | datetime) -> datetime:
    """Return ``now`` as an aware UTC datetime.

    Raises PkiError(reason="naive_datetime"): a naive datetime's zone is a guess, and
    comparing it with certificate times would otherwise raise TypeError mid-verification.
    """
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise PkiError("datetime must carry a time zone", reason="naive_datetime")
        return now.astimezone(UTC)
    return datetime.fromtimestamp(now, tz=UTC)
