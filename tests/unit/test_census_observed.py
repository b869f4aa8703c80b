"""The census judges by the use discovery observed in the access logs where it has it, and
says so in each reason; the declared figures stand where it has none."""

from __future__ import annotations

import json
from datetime import date

from migrate.core.census import ObservedUse, take_census
from migrate.stages.discovery.use import observed_uses
from tests.factories import system, usage

AS_OF = date(2026, 11, 20)
SEEN = "the access logs, discovery x.json of 2026-11-19"


def observed(users: int | None, last: date | None) -> ObservedUse:
    return ObservedUse(users, last, "2026-10", SEEN)


def census(systems: dict, seen: dict | None = None):
    return take_census(systems, 3, AS_OF, observed=seen)


def test_declared_in_use_but_observed_idle_is_a_zombie():
    systems = {"a-sys": system("a-sys", **usage(5000))}
    assert census(systems).verdicts["a-sys"].disposition == "migrate"
    verdict = census(systems, {"a-sys": observed(0, date(2026, 3, 1))}).verdicts["a-sys"]
    assert verdict.disposition == "decommission"
    (reason,) = verdict.reasons
    assert reason.code == "idle" and "last used 2026-03-01, 264 days" in reason.message
    assert reason.message.endswith(f"; use observed in {SEEN}")
    assert verdict.as_dict()["use"] == {"basis": "observed", "source": SEEN,
                                        "monthly_active_users": 0, "last_used": "2026-03-01"}


def test_declared_idle_but_observed_in_use_migrates_and_says_by_what():
    systems = {"b-sys": system("b-sys", **usage(0, date(2025, 1, 1)))}
    assert census(systems).verdicts["b-sys"].disposition == "decommission"
    verdict = census(systems, {"b-sys": observed(120, date(2026, 11, 18))}).verdicts["b-sys"]
    assert verdict.disposition == "migrate"
    assert "120 monthly active users, last used 2026-11-18; use observed in" in \
        verdict.reasons[0].message


def test_a_figure_the_logs_do_not_give_stays_the_declared_one():
    systems = {"c-sys": system("c-sys", **usage(3, date(2026, 11, 1), usage_scope="internal"))}
    verdict = census(systems, {"c-sys": observed(None, date(2026, 11, 19))}).verdicts["c-sys"]
    assert verdict.disposition == "decommission"  # 3 declared users, internal scope
    assert [r.code for r in verdict.reasons] == ["small_and_rare"]
    assert verdict.as_dict()["use"]["monthly_active_users"] == 3


def test_the_observed_more_used_shadow_survives():
    systems = {"d-one": system("d-one", **usage(900, duplicates=["d-two"])),
               "d-two": system("d-two", **usage(100))}
    assert census(systems).verdicts["d-two"].merge_into == "d-one"
    flipped = census(systems, {"d-one": observed(40, date(2026, 11, 19))})
    assert flipped.verdicts["d-one"].disposition == "merge"
    assert flipped.verdicts["d-one"].merge_into == "d-two"
    assert "40 monthly active users against 100" in flipped.verdicts["d-one"].reasons[0].message


def test_observed_uses_are_read_from_the_discovery_documents(tmp_path):
    hosts = [{"name": "web1", "observed": {"web_access": {
                 "last_request": "2026-11-19T08:00:00+08:00",
                 "monthly_users": {"month": "2026-10", "distinct_clients": 7,
                                   "partial": False}}}},
             {"name": "db1", "observed": {}}]
    (tmp_path / "e-sys.json").write_text(json.dumps(
        {"schema_version": 1, "discovered_at": "2026-11-19T09:00:00+00:00", "hosts": hosts}))
    (tmp_path / "f-sys.json").write_text(json.dumps(
        {"schema_version": 1, "hosts": [{"name": "x", "observed": {}}]}))  # no access log
    (tmp_path / "g-sys.json").write_text(json.dumps({"schema_version": 99, "hosts": hosts}))
    found = observed_uses(tmp_path, ["e-sys", "f-sys", "g-sys", "h-sys"])
    assert list(found) == ["e-sys"]
    assert found["e-sys"]["monthly_active_users"] == 7
    assert found["e-sys"]["last_used"] == "2026-11-19"
    assert found["e-sys"]["month"] == "2026-10"
