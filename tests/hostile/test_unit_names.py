"""Unit names against move.sh's systemctl calls: a name is never read as an option ("--"
before every unit list) and the cutover record stays JSON whatever the name holds.

systemctl is a stand-in here that records its arguments and answers as a running, enabled
unit would.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

MOVE = Path(__file__).resolve().parents[2] / "playbooks/files/move.sh"
UNITS = ["-H.service", 'odd"name.service', "plain.service"]

SYSTEMCTL = """#!/bin/bash
printf '%s\\x1f' "$@" >> "$SYSTEMCTL_LOG"
printf '\\n' >> "$SYSTEMCTL_LOG"
case "$1" in
    show) printf 'ActiveState=active\\nUnitFileState=enabled\\n' ;;
esac
"""


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "systemctl").write_text(SYSTEMCTL)
    (folder / "systemctl").chmod(0o755)
    return folder


def move(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    log = folder / "systemctl.log"
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "SYSTEMCTL_LOG": str(log)}
    done = subprocess.run(["bash", str(MOVE), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()] \
        if log.exists() else []
    return done, calls


def units_read_as_options(calls: list[list[str]]) -> list[list[str]]:
    """The calls that name a unit before any "--"."""
    return [call for call in calls
            if any(unit in call[: call.index("--") if "--" in call else len(call)]
                   for unit in UNITS)]


def test_freeze_hands_units_to_systemctl_after_dashes(systemctl: Path, tmp_path: Path) -> None:
    record = tmp_path / "state" / "cutover.json"

    done, calls = move(systemctl, "freeze", str(record), *UNITS)

    assert done.returncode == 0, done.stderr
    assert units_read_as_options(calls) == []
    assert ["stop", "--", *UNITS] in calls
    assert list(json.loads(record.read_text())) == UNITS


def test_persist_hands_units_to_systemctl_after_dashes(systemctl: Path) -> None:
    done, calls = move(systemctl, "persist", "disable", *UNITS)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["changed"]
    assert units_read_as_options(calls) == []
    assert ["disable", "--quiet", "--", *UNITS] in calls
