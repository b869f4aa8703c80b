"""move_mariadb.sh's functions run here, without its mode switch, against a fake ``mariadb``
client that appends the SQL it gets to a log and answers one fixed line: what the hostile
tests of the script read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks/files/move_mariadb.sh"

FAKE_CLIENT = """#!/bin/sh
cat >> "$LOG"
echo "$ANSWER"
"""


def functions() -> str:
    text = SCRIPT.read_text()
    return text[:text.index('\nmode="${1:-}"')]


def run(tmp_path: Path, call: str, *args: str, stdin: str = "",
        answer: str = "1") -> tuple[subprocess.CompletedProcess, str]:
    """``call`` (bash, its arguments ``args``) after the script's functions; the process and
    the SQL the client got. The client answers ``answer`` to every statement."""
    client = tmp_path / "bin" / "mariadb"
    client.parent.mkdir(exist_ok=True)
    client.write_text(FAKE_CLIENT)
    client.chmod(0o755)
    log = tmp_path / "sql.log"
    log.write_text("")
    done = subprocess.run(["bash", "-c", functions() + "\n" + call, "test", *args],
                          input=stdin, capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": f"{client.parent}:/usr/bin:/bin", "LOG": str(log),
                               "ANSWER": answer})
    return done, log.read_text()
