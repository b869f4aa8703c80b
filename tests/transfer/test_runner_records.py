"""A record task's output reaches migrate whole, however large (a manifest line per file);
when the event stream cannot carry it, the play fails instead of recording nothing.
Real ansible-playbook runs through ansible-runner, on this machine (connection local)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from migrate.adapters import ansible as runner
from migrate.core.errors import StageFailed

LINES, WIDTH = 12_000, 99  # about 1.2 MB of output: past ansible-runner's default 700,000

PLAY = """---
- name: Record_big on this machine
  hosts: all
  gather_facts: false
  tasks:
    - name: Record big output
      ansible.builtin.command:
        argv: [/usr/bin/python3, "{{ program }}"]
      changed_when: false
"""
PROGRAM = f"""for i in range({LINES}):
    print(f"{{i:08d}} " + "x" * {WIDTH - 9})
"""


@pytest.fixture
def playbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    shutil.copy(runner.PLAYBOOKS / "ansible.cfg", folder / "ansible.cfg")
    (folder / "roles").mkdir()
    (folder / "record_big.yml").write_text(PLAY)
    monkeypatch.setattr(runner, "PLAYBOOKS", folder)
    (tmp_path / "big.py").write_text(PROGRAM)
    (tmp_path / "run").mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    here:\n      ansible_connection: local\n"
                         f"      program: {tmp_path / 'big.py'}\n")
    return inventory


def test_a_large_record_arrives_whole(playbooks: Path, tmp_path: Path) -> None:
    result = runner.run_play("record_big", playbooks, tmp_path / "run", [])
    lines = result.records["big output"]["here"].splitlines()
    assert len(lines) == LINES
    assert lines[-1].startswith(f"{LINES - 1:08d} ") and len(lines[-1]) == WIDTH


def test_a_record_the_events_cannot_carry_fails_the_play(
        playbooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_RECORD_CHARS", 100_000)
    with pytest.raises(StageFailed) as failed:
        runner.run_play("record_big", playbooks, tmp_path / "run", [])
    assert "Record big output" in failed.value.message
    assert "did not reach migrate" in failed.value.message
