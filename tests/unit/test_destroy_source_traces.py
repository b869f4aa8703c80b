"""destroy refuses systems whose move left traces on their source hosts (a transfer or a
cutover that no rollback, decommission or destroy followed), naming each, changing nothing;
--leave-source-traces destroys anyway and the journal keeps what was left. The decision is
read from a real journal in the test's estate; the stacks are stood in for (no engine)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from migrate.core.errors import GuardRefused
from migrate.orchestrate import pipeline
from migrate.stages.provision import StackResult

SYSTEM, OTHER = "wjw-fybj", "scj-qyxy"


class FakeProvisioner:
    """What the pipeline asks of the stacks, recorded; each system's stack destroyed."""

    calls: ClassVar[list[tuple[str, list[str]]]] = []

    def __init__(self, _settings, _progress=None) -> None:
        pass

    def destroy(self, _networks, systems, _keep, operation="destroy") -> list[StackResult]:
        FakeProvisioner.calls.append((operation, [t.key for t in systems]))
        return [StackResult(t.name, operation, {"delete": 2}) for t in systems]


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stacks(monkeypatch) -> list[tuple[str, list[str]]]:
    FakeProvisioner.calls = []
    monkeypatch.setattr(pipeline, "Provisioner", FakeProvisioner)
    monkeypatch.setattr(pipeline, "provision_settings", lambda _context, _path: None)
    return FakeProvisioner.calls


def journal(estate: Path, *entries: tuple[str, str]) -> None:
    """Entries (stage, result) of SYSTEM, appended to the estate's real journal."""
    writer = pipeline.open_context(estate).journal
    for stage, result in entries:
        writer.append(stage, system=SYSTEM, result=result)


def entries(estate: Path) -> list[dict]:
    return list(pipeline.open_context(estate).journal.entries())


@pytest.mark.parametrize("stage, result", [("transfer", "ok"), ("transfer", "failed"),
                                           ("cutover", "ok")])
def test_a_touched_source_is_refused_naming_the_system_and_nothing_is_destroyed(
        estate, stacks, stage, result):
    journal(estate, ("provision", "changed"), ("check_prerequisites", "ok"), (stage, result))
    context = pipeline.open_context(estate)
    assert context.planned  # planned (and journaled) before counting
    before = len(entries(estate))
    for operation in ("destroy", "preview_destroy"):
        with pytest.raises(GuardRefused) as refused:
            pipeline.run_stacks(context, operation, [SYSTEM, OTHER])
        assert f"{SYSTEM}: " in refused.value.message
        assert OTHER not in refused.value.message  # never transferred: not named
        assert f"migrate rollback {estate} --system {SYSTEM} --yes" in refused.value.hint
        assert "--leave-source-traces" in refused.value.hint
    assert stacks == []
    assert len(entries(estate)) == before  # nothing journaled


def test_a_cut_over_system_is_named_as_serving(estate, stacks):
    journal(estate, ("transfer", "ok"), ("cutover", "ok"), ("verify", "ok"))
    with pytest.raises(GuardRefused, match="its targets serve"):
        pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])


@pytest.mark.parametrize("after", [
    [("rollback", "ok")],
    [("cutover", "ok"), ("verify", "ok"), ("decommission_source", "ok")],
    [("destroy", "changed")],
])
def test_rolled_back_decommissioned_or_destroyed_since_is_allowed(estate, stacks, after):
    journal(estate, ("provision", "changed"), ("transfer", "ok"), *after)
    outcome = pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])
    assert stacks == [("destroy", [SYSTEM])]
    assert outcome.source_traces_left == {}


def test_a_cutover_that_rolled_back_by_itself_is_allowed(estate, stacks):
    journal(estate, ("transfer", "ok"))
    pipeline.open_context(estate).journal.append(
        "cutover", system=SYSTEM, result="failed", outputs={"rolled_back": {"result": "ok"}})
    pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])
    assert stacks == [("destroy", [SYSTEM])]


def test_a_failed_rollback_or_a_transfer_after_the_rollback_is_refused(estate, stacks):
    journal(estate, ("transfer", "ok"), ("rollback", "failed"))
    with pytest.raises(GuardRefused):
        pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])
    journal(estate, ("rollback", "ok"), ("transfer", "ok"))
    with pytest.raises(GuardRefused):
        pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])
    assert stacks == []


@pytest.mark.parametrize("stage, result", [("provision", "changed"),
                                           ("check_prerequisites", "ok"),
                                           ("transfer", "check"), ("cutover", "check")])
def test_never_transferred_is_allowed(estate, stacks, stage, result):
    journal(estate, (stage, result))
    pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])
    assert stacks == [("destroy", [SYSTEM])]


def test_leave_source_traces_destroys_and_the_journal_keeps_what_was_left(estate, stacks):
    journal(estate, ("transfer", "ok"))
    context = pipeline.open_context(estate)
    preview = pipeline.run_stacks(context, "preview_destroy", [SYSTEM], leave_source_traces=True)
    assert preview.as_dict()["source_traces_left"][SYSTEM]["stage"] == "transfer"
    outcome = pipeline.run_stacks(context, "destroy", [SYSTEM], leave_source_traces=True)
    assert stacks == [("preview_destroy", [SYSTEM]), ("destroy", [SYSTEM])]
    assert outcome.as_dict()["source_traces_left"][SYSTEM]["result"] == "ok"
    destroyed = [e for e in entries(estate) if e["stage"] == "destroy"]
    assert [e["outputs"]["source_traces_left"]["stage"] for e in destroyed] == ["transfer"]
    # the operator said so once, in the journal: a second destroy is not refused again
    pipeline.run_stacks(pipeline.open_context(estate), "destroy", [SYSTEM])


def test_the_cli_refuses_with_exit_2_and_the_hint_in_json(estate, stacks, run_cli):
    journal(estate, ("transfer", "ok"))
    result = run_cli("destroy", estate, "--yes", "--output", "json")
    assert result.code == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "GuardRefused"
    assert SYSTEM in error["message"] and "rollback" in error["hint"]
    assert stacks == []


def test_the_cli_refuses_on_a_terminal_before_the_preview_and_the_question(
        estate, stacks, run_cli, monkeypatch):
    journal(estate, ("transfer", "ok"))
    monkeypatch.setattr(sys, "stdin", TerminalInput("y\n"))
    result = run_cli("destroy", estate, "--system", SYSTEM)
    assert result.code == 2
    assert "Destroy " not in result.stderr and stacks == []


def test_the_cli_with_the_flag_destroys_and_warns(estate, stacks, run_cli):
    journal(estate, ("transfer", "ok"))
    result = run_cli("destroy", estate, "--system", SYSTEM, "--yes", "--leave-source-traces")
    assert result.code == 0, result.stderr
    assert f"warning: {SYSTEM}'s source hosts keep the move's traces" in result.stderr
    assert stacks == [("destroy", [SYSTEM])]
