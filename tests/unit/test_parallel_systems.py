"""Systems of a wave run side by side; one failing system does not stop the others."""

from __future__ import annotations

import os
import threading

import pytest

from migrate.core.errors import GuardRefused, StageFailed
from migrate.orchestrate.pipeline import for_each_system, parallel_bound, raise_for_failures


def test_systems_run_at_the_same_time_up_to_the_bound() -> None:
    """Each pair of systems must meet at a barrier: run one at a time, the first would wait
    there alone and break it. No wall clock: the counters prove both the overlap and the
    bound."""
    running, peak, lock = 0, 0, threading.Lock()
    pair = threading.Barrier(2, timeout=30)

    def work(system_id: str) -> dict:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        pair.wait()
        with lock:
            running -= 1
        return {"system": system_id, "result": "ok"}

    results = for_each_system(["a", "b", "c", "d"], work, parallel=2, stage="transfer")
    assert [r["result"] for r in results] == ["ok"] * 4, results
    assert peak == 2
    assert [r["system"] for r in results] == ["a", "b", "c", "d"]


def test_a_failing_system_does_not_stop_the_others() -> None:
    def work(system_id: str) -> dict:
        if system_id == "b":
            raise StageFailed("transfer_files failed on web1", hint="look at web1")
        return {"system": system_id, "result": "ok"}

    results = for_each_system(["a", "b", "c"], work, parallel=3, stage="transfer")
    assert [r["result"] for r in results] == ["ok", "failed", "ok"]
    assert results[1]["error"]["message"] == "transfer_files failed on web1"
    assert results[1]["error"]["hint"] == "look at web1"


def test_a_lone_failure_keeps_its_exit_code_and_hint() -> None:
    results = for_each_system(["a"], lambda s: (_ for _ in ()).throw(
        GuardRefused("needs an explicit request", hint="confirm")), stage="decommission_source")
    with pytest.raises(StageFailed) as caught:
        raise_for_failures("decommission_source", results)
    assert caught.value.exit_code == GuardRefused.exit_code
    assert caught.value.hint == "confirm"
    assert "decommission_source of a: needs an explicit request" in caught.value.message


def test_several_failures_are_named_together() -> None:
    def work(system_id: str) -> dict:
        raise StageFailed(f"broken {system_id}")

    results = for_each_system(["a", "b", "c"], work, stage="cutover")
    with pytest.raises(StageFailed) as caught:
        raise_for_failures("cutover", results)
    assert "3 of 3 systems (a, b, c)" in caught.value.message
    assert "b: broken b" in caught.value.message


def test_no_failure_raises_nothing() -> None:
    raise_for_failures("transfer", [{"system": "a", "result": "ok"}])


def test_a_bug_is_not_swallowed() -> None:
    def work(system_id: str) -> dict:
        raise KeyError(system_id)

    with pytest.raises(KeyError):
        for_each_system(["a", "b"], work, stage="transfer")


def test_the_bound_never_exceeds_the_systems() -> None:
    assert parallel_bound(1) == 1
    assert parallel_bound(5, 3) == 3
    assert parallel_bound(3) == min(3, max(2, os.cpu_count() or 2))
