"""One context per command (issue 18): the plan computed and the journal opened once, however
many stages the command calls; and one failure record from where a stage's error is caught to
the run summary and the command's own error, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.adapters import ansible
from migrate.adapters.inventory import read_inventory
from migrate.core import state
from migrate.core.errors import EXIT_INVALID_INPUT, GuardRefused, StageFailed, StageFailure
from migrate.orchestrate import pipeline
from migrate.orchestrate import run as runs
from migrate.stages.verify import run as verify_run
from migrate.targets import context as context_module

SYSTEM = "wjw-fybj"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often a journal is opened and a plan built, whoever does it."""
    counts = {"journal": 0, "plan": 0}
    journal, build_plan = state.Journal, pipeline.build_plan

    def open_journal(*args, **kwargs):
        counts["journal"] += 1
        return journal(*args, **kwargs)

    def plan(*args, **kwargs):
        counts["plan"] += 1
        return build_plan(*args, **kwargs)

    monkeypatch.setattr(state, "Journal", open_journal)
    monkeypatch.setattr(pipeline, "build_plan", plan)
    return counts


@pytest.mark.parametrize(("command", "plans"), [
    (("census",), 0), (("plan",), 1), (("runbook",), 1), (("report",), 1)])
def test_a_command_opens_the_journal_once_and_plans_at_most_once(
        estate: Path, run_cli, opened: dict[str, int], command: tuple[str, ...],
        plans: int) -> None:
    assert run_cli("plan", estate).code == 0  # the reviewed plan the stages work to
    opened.update(journal=0, plan=0)
    result = run_cli(*command, estate, "-o", "json")
    assert result.code == 0, result.stderr
    assert opened == {"journal": 1, "plan": plans}


def test_the_context_makes_each_part_once_and_only_when_asked(
        estate: Path, opened: dict[str, int]) -> None:
    context = pipeline.open_context(estate)
    assert opened == {"journal": 0, "plan": 0}  # a command that never needs them
    assert context.planned is context.planned and context.journal is context.journal
    assert context.target is context.target
    assert context.plan_path == context.state_dir / "plan.json"
    assert opened == {"journal": 1, "plan": 1}


def refused(_system_id: str) -> dict:
    raise GuardRefused("refusing to connect to 192.0.2.7", hint="keep it on this host")


def test_a_caught_error_is_one_record_up_to_the_command_s_error() -> None:
    (result,) = pipeline.for_each_system([SYSTEM], refused, stage="transfer")
    failure = result.failure
    assert (failure.system, failure.stage, failure.kind) == (SYSTEM, "transfer", "GuardRefused")
    assert (failure.message, failure.hint, failure.exit_code) == (
        "refusing to connect to 192.0.2.7", "keep it on this host", EXIT_INVALID_INPUT)
    assert {k: v for k, v in result.items() if k != "duration_s"} == {
        "system": SYSTEM, "stage": "transfer", "result": "failed",
        "error": {"type": "GuardRefused", "message": failure.message, "hint": failure.hint,
                  "exit_code": EXIT_INVALID_INPUT}, "problems": []}
    with pytest.raises(StageFailed) as raised:
        pipeline.raise_for_failures("transfer", [result])
    assert raised.value.failure is failure
    assert raised.value.message == f"transfer of {SYSTEM}: refusing to connect to 192.0.2.7"
    assert (raised.value.hint, raised.value.exit_code) == (failure.hint, EXIT_INVALID_INPUT)


def test_a_failed_verification_carries_a_record_and_prints_its_error_as_a_stage_s() -> None:
    document = {"system": SYSTEM, "result": "failed", "error": "2 checks failed",
                "hint": "see result.json", "checks": [], "duration_s": 3.5}
    result = pipeline.verification_result(dict(document))
    assert result == {"system": SYSTEM, "stage": "verify", "result": "failed", "checks": [],
                      "error": {"type": "StageFailed", "message": "2 checks failed",
                                "hint": "see result.json", "exit_code": StageFailed.exit_code},
                      "problems": [], "duration_s": 3.5}
    assert result.failure == StageFailure(SYSTEM, "verify", "StageFailed", "2 checks failed",
                                          "see result.json", StageFailed.exit_code, 3.5)


def runner(estate: Path, monkeypatch: pytest.MonkeyPatch, results: list[dict]
           ) -> runs.Runner:
    monkeypatch.setattr(pipeline, "move", lambda *_args, **_kwargs: results)
    return runs.Runner(pipeline.open_context(estate), str(estate), None, None)


def test_the_run_summary_holds_the_record_the_stage_s_error_made(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (failed,) = pipeline.for_each_system([SYSTEM], refused, stage="cutover")
    run = runs.SystemRun(SYSTEM, 1)
    assert runner(estate, monkeypatch, [failed]).run_stage(1, run, "cutover") is False
    assert run.failure is failed.failure
    assert (run.failed_stage, run.error) == ("cutover", failed.failure.message)
    assert run.as_dict()["stages"][-1]["detail"] == failed.failure.message
    assert run.as_dict()["error"] == failed.failure.error_dict()  # the command error's shape


def test_a_stage_that_raises_in_a_run_is_recorded_with_its_hint_and_exit_code(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def register(*_args, **_kwargs):
        raise StageFailed("the platform said 503", hint="try again later")

    monkeypatch.setattr(pipeline, "register_systems", register)
    run = runs.SystemRun(SYSTEM, 1)
    assert runner(estate, monkeypatch, []).run_stage(1, run, "register") is False
    assert run.failure == StageFailure(SYSTEM, "register", "StageFailed",
                                       "the platform said 503", "try again later",
                                       StageFailed.exit_code, run.failure.duration_s)


def test_a_move_command_prints_the_record_as_its_error(
        estate: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate.stages import move

    def refused_transfer(*_args, **_kwargs):
        refused(SYSTEM)

    monkeypatch.setattr(pipeline, "provisioned_targets", lambda _context, _sid: {})
    monkeypatch.setattr(pipeline, "guard_system", lambda *_args: None)
    monkeypatch.setattr(move, "transfer", refused_transfer)  # pipeline.move looks it up there
    result = run_cli("transfer", estate, "--system", SYSTEM, "--yes", "-o", "json")
    assert result.code == EXIT_INVALID_INPUT, result.stderr
    document = json.loads(result.stdout)
    assert document["error"]["message"] == (f"transfer of {SYSTEM}: refusing to connect to "
                                            "192.0.2.7")
    assert document["error"]["hint"] == "keep it on this host"
    (system,) = document["systems"]
    assert system["error"] == {"type": "GuardRefused", "message": "refusing to connect to "
                               "192.0.2.7", "hint": "keep it on this host",
                               "exit_code": EXIT_INVALID_INPUT}


# ---- the stages work with what the context holds, never deriving it again from the estate

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3vFd9ZqGq0Yb0m8Jt3tE6n8zq4JjTzC0tXvV0Yh8Qv"
TARGETS = {"web": {"address": "192.0.2.11", "host_key": KEY},
           "db": {"address": "192.0.2.12", "host_key": KEY}}
SOURCES = ("192.168.90.21", "192.168.90.22")


class RecordingTarget:
    """The cloud target a context holds: what the stages asked of it."""

    def __init__(self, key: Path) -> None:
        self.key, self.asked = key, 0

    def operator_key_path(self, _estate: object) -> Path:
        self.asked += 1
        return self.key


class RecordingSurroundings:
    """The surroundings a context holds: the addresses guarded, the source keys' file."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts, self.guarded = known_hosts, []

    def guard_address(self, address: str, _allowed: object = ()) -> None:
        self.guarded.append(address)

    def source_known_hosts(self, _estate: object) -> Path:
        return self.known_hosts

    def package_mirror_url(self, _estate: object) -> str:
        return "http://192.0.2.40/debian"


@pytest.fixture
def held(estate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The example estate with its secrets; the target and surroundings its contexts make
    are recorders (the real ones, anywhere else, would refuse or differ), its systems'
    targets in TEST-NET-1, no play run: each records its inventory and known_hosts."""
    secrets = estate / "secrets"
    secrets.mkdir(mode=0o700)
    for name in ("ssh-wjw", "db-fybj", "exchange-wjw-fybj"):
        (secrets / name).write_text(f"{name}-not-a-real-secret-0123456789abcdef\n")
        (secrets / name).chmod(0o600)
    known = tmp_path / "source_known_hosts"
    known.write_text("".join(f"{address} {KEY}\n" for address in SOURCES))
    target = RecordingTarget(tmp_path / "operator_key")
    around = RecordingSurroundings(known)
    monkeypatch.setattr(context_module, "target_of", lambda _estate: target)
    monkeypatch.setattr(context_module, "surroundings_of", lambda _estate: around)
    monkeypatch.setattr(pipeline, "provisioned_targets", lambda _context, _sid: dict(TARGETS))
    plays: list[tuple] = []

    def play(stage: str, inventory: Path, run_dir: Path, *_args, **_kwargs):
        plays.append((stage, read_inventory(inventory), (run_dir / "known_hosts").read_text()))
        return ansible.PlayResult(stage, "successful")

    monkeypatch.setattr(ansible, "run_play", play)
    # the targets' host key check before the first play: no key exchange leaves the host
    monkeypatch.setattr("migrate.adapters.access.pinned_key_mismatch", lambda *_a, **_k: None)
    return target, around, plays


def test_a_move_uses_the_target_surroundings_journal_and_runs_dir_its_context_holds(
        estate: Path, held: tuple, opened: dict[str, int]) -> None:
    target, around, plays = held
    context = pipeline.open_context(estate)
    (result,) = pipeline.move(context, "transfer", [SYSTEM])
    assert result["result"] == "ok", result
    assert [stage for stage, *_ in plays] == [
        "check_prerequisites", "prepare_target", "transfer_files", "migrate_database"]
    _stage, inventory, known_hosts = plays[0]
    hosts = inventory["all"]["children"]["target"]["hosts"].values()
    assert {h["ansible_ssh_private_key_file"] for h in hosts} == {str(target.key)}
    assert known_hosts.splitlines()[:2] == [f"{address} {KEY}" for address in SOURCES]
    assert set(around.guarded) == {*SOURCES, "192.0.2.11", "192.0.2.12"}
    assert Path(result["run_dir"]).parent == context.runs_dir.absolute()
    assert opened["journal"] == 1  # the plan's, the cut-over check's and the stage's entry
    assert [e["stage"] for e in context.journal.entries()][-1] == "transfer"


def test_verification_uses_the_operator_key_and_guard_its_context_holds(
        estate: Path, tmp_path: Path, held: tuple, opened: dict[str, int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    target, around, _plays = held

    def suites(run_dir: Path, _context_file: Path, junit: Path, _suites=None):
        junit.write_text('<testsuite><testcase classname="test_host" name="test_up"/>'
                         "</testsuite>")
        return verify_run.subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(verify_run, "run_pytest", suites)
    monkeypatch.setattr(verify_run, "close_masters", lambda *_args: None)
    context = pipeline.open_context(estate)
    (result,) = pipeline.verify_systems(context, [SYSTEM])
    assert result["result"] == "ok", result
    ssh_config = (Path(result["run_dir"]) / "ssh_config").read_text()
    assert f"IdentityFile {target.key}\n" in ssh_config and target.asked == 1
    assert set(around.guarded) == {"192.0.2.11", "192.0.2.12"}
    assert Path(result["run_dir"]).parent == context.runs_dir.absolute()
    assert opened["journal"] == 1
    assert [e["stage"] for e in context.journal.entries()][-1] == "verify"
