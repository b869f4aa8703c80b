from __future__ import annotations

from datetime import date

from migrate.core.census import Thresholds, take_census
from tests.factories import system, usage

AS_OF = date(2026, 11, 20)


def census_of(*systems, level: int = 3, thresholds: Thresholds | None = None):
    return take_census({s.id: s for s in systems}, level, AS_OF, thresholds or Thresholds())


def codes(verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def test_a_system_in_use_migrates():
    verdict = census_of(system("rsj-a")).verdicts["rsj-a"]
    assert verdict.disposition == "migrate"


def test_classified_is_refused_even_when_idle():
    s = system("gaj-a", classification="classified", **usage(0, None))
    verdict = census_of(s).verdicts["gaj-a"]
    assert verdict.disposition == "refuse"
    assert codes(verdict) == ["classified"]


def test_above_the_cloud_level_is_refused_with_the_level_reported():
    verdict = census_of(system("yjj-a", protection_level=4), level=3).verdicts["yjj-a"]
    assert verdict.disposition == "refuse"
    assert codes(verdict) == ["above_cloud_level"]
    assert verdict.reasons[0].threshold == {"cloud_protection_level": 3}


def test_at_the_cloud_level_is_not_refused():
    assert census_of(system("a-a", protection_level=3)).verdicts["a-a"].disposition == "migrate"


def test_idle_exactly_at_the_threshold_is_a_zombie_one_day_less_is_not():
    t = Thresholds(idle_days=180)
    at = system("a-a", **usage(500, date(2026, 5, 24)))  # 180 days before AS_OF
    before = system("b-b", **usage(500, date(2026, 5, 25)))
    result = census_of(at, before, thresholds=t)
    assert result.verdicts["a-a"].disposition == "decommission"
    assert "threshold 180 days" in result.verdicts["a-a"].reasons[0].message
    assert result.verdicts["b-b"].disposition == "migrate"


def test_never_used_is_idle():
    assert codes(census_of(system("a-a", **usage(0, None))).verdicts["a-a"])[0] == "idle"


def test_replaceable_by_another_system_is_a_zombie():
    verdict = census_of(system("a-a", census={"replaceable_by": "b-b"}),
                        system("b-b")).verdicts["a-a"]
    assert verdict.disposition == "decommission"
    assert codes(verdict) == ["replaceable"]


def test_inactive_maintenance_needs_low_use_too():
    stopped = {"maintenance": {"active": False}}
    low = system("a-a", **usage(49, **stopped))
    busy = system("b-b", **usage(50, **stopped))
    result = census_of(low, busy)
    assert codes(result.verdicts["a-a"]) == ["unmaintained"]
    assert result.verdicts["b-b"].disposition == "migrate"


def test_small_scope_and_rare_use():
    small = system("a-a", **usage(9, usage_scope="internal"))
    public = system("b-b", **usage(9, usage_scope="public"))
    result = census_of(small, public)
    assert codes(result.verdicts["a-a"]) == ["small_and_rare"]
    assert result.verdicts["b-b"].disposition == "migrate"


def test_thresholds_come_from_one_place():
    s = system("a-a", **usage(9, usage_scope="internal"))
    assert census_of(s, thresholds=Thresholds(small_scope_monthly_users=5)).verdicts[
        "a-a"].disposition == "migrate"


def test_shadow_pair_the_less_used_one_merges_into_the_other():
    big = system("scj-a", **usage(23000, duplicates=["fgw-b"]))
    small = system("fgw-b", **usage(640))
    result = census_of(big, small)
    assert result.verdicts["scj-a"].disposition == "migrate"
    assert result.verdicts["fgw-b"].disposition == "merge"
    assert result.verdicts["fgw-b"].merge_into == "scj-a"


def test_shadow_listing_works_in_either_direction_and_in_groups():
    a = system("a-a", **usage(10))
    b = system("b-b", **usage(30, duplicates=["a-a"]))
    c = system("c-c", **usage(20, duplicates=["a-a"]))
    result = census_of(a, b, c)
    assert [result.verdicts[x].disposition for x in ("a-a", "b-b", "c-c")] == [
        "merge", "migrate", "merge"]
    assert result.verdicts["c-c"].merge_into == "b-b"


def test_shadow_tie_goes_by_later_last_use():
    a = system("a-a", **usage(100, date(2026, 11, 1), duplicates=["b-b"]))
    b = system("b-b", **usage(100, date(2026, 11, 10)))
    assert census_of(a, b).verdicts["a-a"].merge_into == "b-b"


def test_a_zombie_is_not_a_merge_survivor():
    zombie = system("a-a", **usage(5000, date(2025, 1, 1), duplicates=["b-b"]))
    other = system("b-b", **usage(100))
    result = census_of(zombie, other)
    assert result.verdicts["a-a"].disposition == "decommission"
    assert result.verdicts["b-b"].disposition == "migrate"


def test_census_json_shape_for_ci():
    document = census_of(system("a-a"), system("b-b", classification="classified")).as_dict()
    assert [s["id"] for s in document["systems"]] == ["a-a", "b-b"]
    assert set(document["systems"][1]) >= {"id", "disposition", "reasons"}
    assert document["systems"][1]["reasons"][0].startswith("classified:")
    assert document["counts"] == {"migrate": 1, "decommission": 0, "merge": 0, "refuse": 1}
