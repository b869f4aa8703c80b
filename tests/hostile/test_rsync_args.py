"""File tree paths against the playbooks' rsync and manifest commands: a path is one argument
from end to end, never text for a shell or a sed program, whatever characters it holds.

The final sync runs move.sh here with ``ssh`` to the target replaced by a stand-in that runs
the remote rsync in a mount namespace of its own, where the destination folder is mounted
over the source folder: the same path names another folder "there", as on a real target.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
MOVE = PLAYBOOKS / "files/move.sh"
MANIFEST_TASKS = PLAYBOOKS / "roles/transfer_files/tasks/manifest.yml"

RSH_SHIM = """#!/bin/bash
# ssh to the target: the remote command runs here, with $DST mounted over $SRC
if [ "$1" = -l ]; then shift 2; fi
shift
printf '%s\\0' "$*" >> "$RSH_LOG"
exec unshare --mount --propagation private \\
    sh -c 'mount --bind "$DST" "$SRC" && exec sh -c "$0"' "$*"
"""


def rsync_invocations(text: str) -> list[str]:
    """Each rsync command of a play or script, from "rsync" to the end of its argument list."""
    found = []
    for match in re.finditer(r"""(?m)(^\s*rsync\s|\[\s*'rsync',|"rsync",|- rsync$)""", text):
        rest = text[match.start():]
        end = re.search(r"\]\s*}}|\n\s*\n|\n\S|\n\s*-\s", rest[1:])
        found.append(rest[: end.start() + 1 if end else len(rest)])
    return found


def test_every_rsync_of_the_playbooks_protects_its_arguments() -> None:
    files = [p for p in PLAYBOOKS.rglob("*") if p.suffix in (".yml", ".sh", ".py")]
    invocations = {(str(p.relative_to(ROOT)), i): command for p in files
                   for i, command in enumerate(rsync_invocations(p.read_text()))}
    assert len(invocations) >= 3  # the transfer, the final sync, the configuration copy
    unprotected = [where for where, command in invocations.items()
                   if "--protect-args" not in command]
    assert unprotected == []


def can_unshare() -> bool:
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return probe.returncode == 0 and shutil.which("rsync") is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting in a namespace of its own needs root")
def test_the_final_sync_sends_odd_paths_as_data(tmp_path: Path) -> None:
    if not can_unshare():
        pytest.skip("unshare --mount or rsync is not available here")
    source, target = tmp_path / "src", tmp_path / "dst"
    trees = [source / "with space", source / "new\nline", source / "quote'$(touch pwned)"]
    for tree in trees:
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "file one.txt").write_text(f"in {tree.name}\n")
    target.mkdir()
    shim, log = tmp_path / "ssh", tmp_path / "rsh.log"
    shim.write_text(RSH_SHIM)
    shim.chmod(0o755)
    env = {**os.environ, "MIGRATE_SSH": str(shim), "RSH_LOG": str(log),
           "SRC": str(source), "DST": str(target)}

    done = subprocess.run(["bash", str(MOVE), "final", "192.0.2.10",
                           *(f"tree:{tree}" for tree in trees)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["changed"]
    for tree in trees:
        copied = target / tree.name / "sub" / "file one.txt"
        assert copied.read_text() == f"in {tree.name}\n"
    remote_commands = log.read_text().split("\0")
    assert not [c for c in remote_commands for tree in trees if tree.name in c]
    assert not list(tmp_path.rglob("pwned"))


def manifest_script() -> str:
    [task] = yaml.safe_load(MANIFEST_TASKS.read_text())
    return task["vars"]["transfer_files_manifest_script"]


def test_the_manifest_prefixes_each_line_with_the_tree_as_data(tmp_path: Path) -> None:
    # A "|" ends the old sed program's replacement; its "e" flag runs the line as a command.
    tree = tmp_path / "t;touch pwned;#|e;#"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")

    done = subprocess.run(["bash", "-c", manifest_script(), "manifest", str(tree)],
                          capture_output=True, text=True, timeout=60, check=False)

    assert not list(tmp_path.rglob("pwned")), "the tree's name ran a command"
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith(f"{tree}\t") and line.endswith("  ./a.txt")
