"""The generated inventory and the runner's artifact scrubbing, without machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.adapters import ansible as runner
from migrate.adapters.inventory import control_dir, read_inventory, write_inventory
from migrate.core.errors import InvalidInput, StageFailed
from migrate.orchestrate.pipeline import make_plan, open_context

SOURCE_KEYS = ("192.168.90.21 ssh-ed25519 AAAAsourceweb1\n"
               "192.168.90.22,db1 ssh-ed25519 AAAAsourcedb1\n")
TARGETS = {"web": {"address": "10.20.53.159", "host_key": "ssh-ed25519 AAAAtargetweb root@web"},
           "db": {"address": "10.20.53.157", "host_key": "ssh-ed25519 AAAAtargetdb"}}


@pytest.fixture
def moved(estate: Path, tmp_path: Path) -> tuple:
    context = open_context(estate)
    plan = make_plan(context, write=False).plan
    known = tmp_path / "sandbox_known_hosts"
    known.write_text(SOURCE_KEYS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return context, plan, known, run_dir


def test_inventory_groups_hosts_and_strict_host_keys(moved: tuple) -> None:
    context, plan, known, run_dir = moved
    path = write_inventory(context, plan, "wjw-fybj", TARGETS, run_dir, known)
    document = read_inventory(path)["all"]
    sources = document["children"]["source"]["hosts"]
    targets = document["children"]["target"]["hosts"]
    assert set(sources) == {"web1", "db1"}
    assert set(targets) == {"wjw-fybj-web", "wjw-fybj-db"}
    assert sources["web1"]["moves_to"] == "web"
    assert sources["web1"]["target_address"] == "10.20.53.159"
    assert sources["web1"]["files"][0]["path"] == "/srv/fybj/certificates"
    assert sources["db1"]["databases"][0]["name"] == "fybj"
    assert sources["web1"]["ansible_ssh_private_key_file"].endswith("/secrets/ssh-wjw")
    assert targets["wjw-fybj-db"]["replaces"] == ["db1"]
    assert targets["wjw-fybj-web"]["services"][0]["unit"] == "fybj-web.service"
    assert document["vars"]["address_map"]["192.168.90.22"] == "10.20.53.157"
    args = document["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args
    assert f"UserKnownHostsFile={run_dir / 'known_hosts'}" in args
    assert f"ControlPath={control_dir(run_dir)}/%C" in args
    assert (run_dir / "known_hosts").read_text().splitlines() == [
        "192.168.90.21 ssh-ed25519 AAAAsourceweb1",
        "192.168.90.22 ssh-ed25519 AAAAsourcedb1",
        "10.20.53.157 ssh-ed25519 AAAAtargetdb",
        "10.20.53.159 ssh-ed25519 AAAAtargetweb",
    ]
    assert path.stat().st_mode & 0o077 == 0


def test_writing_the_inventory_leaves_no_socket_folder_behind(moved: tuple) -> None:
    """A long run dir's sockets go to a short twin in the temporary folder; each play makes
    and removes it, so an inventory that no play used leaves nothing there."""
    context, plan, known, run_dir = moved
    deep = run_dir / ("x" * 80)
    deep.mkdir()
    write_inventory(context, plan, "wjw-fybj", TARGETS, deep, known)
    assert control_dir(deep).parent != deep
    assert not control_dir(deep).exists()


def test_a_source_without_a_known_host_key_is_refused(moved: tuple) -> None:
    context, plan, known, run_dir = moved
    known.write_text("192.168.90.21 ssh-ed25519 AAAAsourceweb1\n")
    with pytest.raises(StageFailed, match=r"no host key of source host db1 \(192.168.90.22\)"):
        write_inventory(context, plan, "wjw-fybj", TARGETS, run_dir, known)


def test_a_missing_target_or_system_is_invalid_input(moved: tuple) -> None:
    context, plan, known, run_dir = moved
    with pytest.raises(InvalidInput, match="instance\\(s\\) db"):
        write_inventory(context, plan, "wjw-fybj", {"web": TARGETS["web"]}, run_dir, known)
    with pytest.raises(InvalidInput, match="not in the plan"):
        write_inventory(context, plan, "no-such-system", TARGETS, run_dir, known)


def test_long_run_dirs_get_a_short_control_dir(tmp_path: Path) -> None:
    long_dir = tmp_path / ("x" * 90)
    assert len(str(control_dir(long_dir))) + 41 < 108
    assert control_dir(Path("/r/1")) == Path("/r/1/cp")


def test_kept_artifacts_never_hold_a_secret(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "job_events").mkdir(parents=True)
    (raw / "job_events" / "1.json").write_text('{"stdout": "password=S3cret-Value-1"}')
    (raw / "stdout").write_text("key S3cret-Value-1 and Other-Secret-2\n")
    kept = runner.keep_artifacts(raw, tmp_path / "kept", ["S3cret-Value-1", "Other-Secret-2"])
    texts = [p.read_text() for p in kept.rglob("*") if p.is_file()]
    assert len(texts) == 2
    assert all("S3cret" not in t and "Other-Secret" not in t for t in texts)
    assert all((p.stat().st_mode & 0o077) == 0 for p in kept.rglob("*") if p.is_file())


def test_a_failed_loop_reports_its_items_messages() -> None:
    res = {"msg": "One or more items failed", "results": [
        {"failed": False, "msg": "fine"},
        {"failed": True, "msg": "source path /srv/x does not exist"}]}
    assert runner._message(res) == "source path /srv/x does not exist"


def test_task_times_give_the_span_between_two_tasks() -> None:
    from migrate.adapters.ansible import PlayResult, _Events

    result = PlayResult("cutover", "unknown")
    events = _Events(result, None)

    def event(kind: str, task: str, host: str, at: str) -> None:
        events({"event": kind, "created": f"2026-11-25T20:00:{at}",
                "event_data": {"task": task, "host": host, "res": {}}})

    event("playbook_on_task_start", "freeze", "", "00.000000")
    event("runner_on_ok", "freeze", "web1", "00.400000")
    event("playbook_on_task_start", "start", "", "01.000000")
    event("runner_on_ok", "start", "web", "02.750000")
    event("runner_on_ok", "start", "db", "02.250000")
    assert result.span("freeze", "start") == 2.75
    assert result.span("freeze", "missing") is None


def test_private_dirs_a_killed_run_left_are_swept_and_live_ones_kept(tmp_path) -> None:
    import os
    import subprocess

    from migrate.adapters.ansible import OWNER_FILE, sweep_stale_private_dirs

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / "run-a" / "private" / "migrate-cutover-x"
    live = tmp_path / "run-b" / "private" / "migrate-transfer_files-y"
    orphan = tmp_path / "run-c" / "private" / "migrate-verify-z"
    for folder, pid in ((left, dead.pid), (live, os.getpid()), (orphan, None)):
        (folder / "artifacts").mkdir(parents=True)
        (folder / "artifacts" / "event.json").write_text("secret value")
        if pid is not None:
            (folder / OWNER_FILE).write_text(f"{pid}\n")
    old = 1_000_000_000
    os.utime(orphan, (old, old))
    assert sorted(sweep_stale_private_dirs(tmp_path)) == sorted([left, orphan])
    assert not left.exists() and not orphan.exists() and live.exists()


def test_postgresql_listens_beyond_loopback_only_where_the_plan_opens_it() -> None:
    from migrate.adapters.inventory import postgresql_listen
    from migrate.orchestrate.pipeline import make_plan, open_context
    from tests.conftest import EXAMPLE_ESTATE

    plan = make_plan(open_context(EXAMPLE_ESTATE), write=False).plan
    systems = {s["id"]: s for s in plan["systems"]}
    assert postgresql_listen(systems["wjw-fybj"], "db") == "*"          # web connects
    assert postgresql_listen(systems["mzj-shjz"], "app") == "localhost"  # app and db together
