"""The foreign wiki's rotated access logs hold three busy months whatever day the tests run
(they are written relative to the session's date)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.foreign.server import usage_history

CLIENT_AND_MONTH = re.compile(r"^(\S+) - - \[\d\d/(\w{3}/\d{4}):")


def busy_months(now: datetime) -> list[str]:
    recent, older = usage_history(now)
    clients: dict[str, set[str]] = {}
    for line in (older + recent).splitlines():
        match = CLIENT_AND_MONTH.match(line)
        assert match, line
        clients.setdefault(match.group(2), set()).add(match.group(1))
    return [month for month, seen in clients.items() if len(seen) >= 30]


def test_three_busy_months_on_every_day_of_a_year() -> None:
    first = datetime(2026, 1, 1, 9, tzinfo=UTC)
    short = {day.date(): busy_months(day) for day in (first + timedelta(days=n)
                                                     for n in range(0, 366, 3))
             if len(busy_months(day)) < 3}
    assert not short, short


def test_yesterday_is_the_recent_log() -> None:
    now = datetime(2026, 12, 2, 9, tzinfo=UTC)  # a Wednesday: Tuesday is yesterday
    recent, older = usage_history(now)
    assert recent.strip() and all("/Dec/2026:" in line for line in recent.splitlines())
    assert "01/Dec/2026" in recent and "01/Dec/2026" not in older


def test_a_weekend_yesterday_leaves_the_recent_log_without_lines() -> None:
    recent, older = usage_history(datetime(2026, 12, 6, 9, tzinfo=UTC))  # a Sunday
    assert recent == "" and older.endswith("\n") and "\n\n" not in older
