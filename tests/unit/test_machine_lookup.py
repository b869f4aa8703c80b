"""Finding a sandbox machine's process in /proc, and not scanning /proc again and again.

Booting and stopping machines polls their process many times a second, from several
threads; a scan reads a file of every process on the host (two with environments), which
made /proc scans a third of the CPU of `migrate run` on the sandbox. These tests use a
fake process table: no machine, no root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrate.adapters.processes import cmdline, environ_value, proc_file
from migrate.rehearsal.sandbox import machines
from migrate.rehearsal.sandbox.layout import upper_dir

NAME = "life"
MACHINE_ID = "0f" * 16


class FakeProcesses:
    """pid -> (argv, parent pid, container_uuid in its environment); counts what is read."""

    def __init__(self, root: Path) -> None:
        nspawn = ["/usr/bin/systemd-nspawn", "-M", machines.machine_name(NAME),
                  f"--overlay=/img:{upper_dir(NAME, root)}:/", "--boot"]
        self.table: dict[int, tuple[list[str], int, str | None]] = {
            10: (nspawn, 1, None),                    # the machine's nspawn
            11: (nspawn, 10, None),                   # nspawn's helper child, same argv
            12: (["/sbin/init"], 10, MACHINE_ID),     # the container's init
            20: (["/usr/bin/python3", "app.py"], 1, None),
        }
        self.scans = 0
        self.environments_read = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(machines, "all_pids", self.all_pids)
        monkeypatch.setattr(machines, "cmdline", lambda pid: self.entry(pid)[0])
        monkeypatch.setattr(machines, "_parent_pid", lambda pid: self.entry(pid)[1])
        monkeypatch.setattr(machines, "_container_uuid", self.container_uuid)
        monkeypatch.setattr(machines, "_machine_id", lambda name, root: MACHINE_ID)

    def entry(self, pid: int) -> tuple[list[str], int, str | None]:
        return self.table.get(pid, ([], 0, None))

    def all_pids(self) -> list[int]:
        self.scans += 1
        return sorted(self.table)

    def container_uuid(self, pid: int) -> str | None:
        self.environments_read += 1
        return self.entry(pid)[2]


@pytest.fixture
def processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeProcesses:
    fake = FakeProcesses(tmp_path)
    fake.install(monkeypatch)
    return fake


def test_a_running_machine_is_its_top_nspawn_found_without_reading_environments(
        processes, tmp_path):
    found = machines.find_machine_process(NAME, tmp_path)
    assert found == machines.MachineProcess(10, is_nspawn=True)
    assert processes.environments_read == 0


def test_a_container_init_whose_nspawn_died_is_found_by_its_environment(processes, tmp_path):
    del processes.table[10], processes.table[11]
    processes.table[12] = (["/sbin/init"], 1, MACHINE_ID)
    found = machines.find_machine_process(NAME, tmp_path)
    assert found == machines.MachineProcess(12, is_nspawn=False)
    assert processes.environments_read > 0


def test_polling_a_machine_seen_running_looks_at_its_pid_only(processes, tmp_path):
    seen = machines.find_machine_process(NAME, tmp_path)
    processes.scans = 0
    for _ in range(20):
        assert machines._current_process(seen, NAME, tmp_path) == seen
    assert processes.scans == 0


def test_polling_notices_the_machine_gone_and_its_orphaned_init(processes, tmp_path):
    seen = machines.find_machine_process(NAME, tmp_path)
    del processes.table[10], processes.table[11]
    processes.table[12] = (["/sbin/init"], 1, MACHINE_ID)
    orphan = machines._current_process(seen, NAME, tmp_path)
    assert orphan == machines.MachineProcess(12, is_nspawn=False)
    processes.scans = 0
    assert machines._current_process(orphan, NAME, tmp_path) == orphan
    assert processes.scans == 0
    del processes.table[12]
    assert machines._current_process(orphan, NAME, tmp_path) is None


def test_a_pid_reused_by_another_process_is_not_taken_for_the_machine(processes, tmp_path):
    seen = machines.find_machine_process(NAME, tmp_path)
    del processes.table[11], processes.table[12]
    processes.table[10] = (["/usr/bin/sleep", "60"], 1, None)
    assert machines._current_process(seen, NAME, tmp_path) is None


def test_proc_files_are_read_whole_and_a_gone_process_reads_as_none():
    own = Path(f"/proc/{os.getpid()}/environ").read_bytes()
    assert proc_file(os.getpid(), "environ") == own and len(own) > 0
    own_argv = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().decode().split("\0")
    assert cmdline(os.getpid()) == [part for part in own_argv if part]
    first = own.split(b"\0")[0].decode()  # as the process started, not os.environ now
    name, _, value = first.partition("=")
    assert environ_value(os.getpid(), name) == value
    gone = 2 ** 22 + 1  # above the kernel's pid_max: never a process
    assert proc_file(gone, "cmdline") is None and cmdline(gone) == []
