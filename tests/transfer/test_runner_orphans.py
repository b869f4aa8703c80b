"""No play outlives the migrate process that started it, even under SIGKILL: real
ansible-playbook runs through ansible-runner on this machine (connection local), the
process that started it is killed, and no process of the play is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrate.adapters import ansible as runner
from migrate.adapters.processes import all_pids, cmdline, environ_value

PLAY = """---
- name: Wait_long on this machine
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait a long time
      ansible.builtin.command:
        argv: [/usr/bin/sleep, "{{ seconds }}"]
      changed_when: false
"""
STARTER = """import sys
from pathlib import Path
from migrate.adapters import ansible as runner
runner.PLAYBOOKS = Path(sys.argv[1])
runner.run_play("wait_long", Path(sys.argv[2]), Path(sys.argv[3]), [])
"""


@pytest.fixture
def long_play(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "playbooks"
    (folder / "roles").mkdir(parents=True)
    shutil.copy(runner.PLAYBOOKS / "ansible.cfg", folder / "ansible.cfg")
    (folder / "wait_long.yml").write_text(PLAY)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    here:\n      ansible_connection: local\n"
                         "      seconds: 300\n")
    return folder, inventory


def processes_of(owner: int) -> list[tuple[int, list[str]]]:
    return [(pid, cmdline(pid)) for pid in all_pids()
            if environ_value(pid, runner.PLAY_OWNER_ENV) == str(owner)]


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_play(long_play: tuple[Path, Path], tmp_path: Path) -> subprocess.Popen:
    folder, inventory = long_play
    (tmp_path / "run").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", STARTER, str(folder), str(inventory),
                             str(tmp_path / "run")], start_new_session=True)


def sleeping(owner: int) -> bool:
    return any(args[:1] == ["/usr/bin/sleep"] for _pid, args in processes_of(owner))


@pytest.mark.slow
def test_a_sigkilled_run_leaves_no_process_of_its_play(long_play, tmp_path: Path) -> None:
    starter = start_play(long_play, tmp_path)
    try:
        assert wait_until(lambda: sleeping(starter.pid), 60), "the play's task never started"
        assert any("ansible-playbook" in " ".join(args) for _p, args in processes_of(starter.pid))
        os.killpg(starter.pid, signal.SIGKILL)  # migrate's group: the play is in another
        starter.wait(timeout=10)
        assert wait_until(lambda: not processes_of(starter.pid), 30), processes_of(starter.pid)
    finally:
        for pid, _args in processes_of(starter.pid):
            os.kill(pid, signal.SIGKILL)
        if starter.poll() is None:
            starter.kill()
        starter.wait(timeout=10)


def marked_sleep(owner: int, runs: Path) -> subprocess.Popen:
    return subprocess.Popen(["/usr/bin/sleep", "300"],
                            env={**os.environ, runner.PLAY_OWNER_ENV: str(owner),
                                 runner.PLAY_RUNS_ENV: str(runs)})


def test_the_next_play_stops_what_a_dead_owner_left(tmp_path: Path) -> None:
    """A process still marked with a dead owner's pid (an ssh master, or a play whose owner
    died before the death signal was armed) is ended before the estate's next play starts;
    another estate's leftover is that estate's to stop."""
    dead = subprocess.Popen(["/usr/bin/true"])
    dead.wait()
    leftover = marked_sleep(dead.pid, tmp_path / "runs")
    other_estates = marked_sleep(dead.pid, tmp_path / "other" / "runs")
    try:
        assert runner.stop_orphaned_plays(tmp_path / "runs") == [leftover.pid]
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert other_estates.poll() is None
    finally:
        for process in (leftover, other_estates):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
