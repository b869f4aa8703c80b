"""Faults fired on observable events of a ``migrate run``, not after a sleep.

A run is watched from outside, the way an operator could: its stage lines (stderr), its
journal (stage entries are appended when a stage *ends*), the play directories of its runs
folder (``<state>/runs/<stamp>-<system>-<stage>-<hex>/private/migrate-<play>-*`` exists while
that play runs; its events are under ``artifacts/<play>/job_events``; a play that ended left
``artifacts/<play>`` in the run folder) and the Pulumi file backend's stack locks (held for
the whole of a stack's update). A fault waits for the event that puts it where its test
says, and the test then proves from the same records that the stage had not ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

MIGRATE = Path(sys.executable).parent / "migrate"
POLL_S = 0.1


def state(estate: Path) -> Path:
    return estate / ".migrate"


def keep_only(estate: Path, *systems: str) -> Path:
    """The estate with only these systems' manifests (before its sandbox is up): the sandbox
    then boots their source hosts alone, the run plans and moves them alone."""
    manifests = {path.stem: path for path in (estate / "systems").glob("*.yaml")}
    assert set(systems) <= set(manifests), f"no manifest for {set(systems) - set(manifests)}"
    for name, path in manifests.items():
        if name not in systems:
            path.unlink()
    return estate


def journal(estate: Path) -> list[dict]:
    path = state(estate) / "journal.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ended(estate: Path, stage: str, system: str, since: int = 0) -> list[dict]:
    """The journal entries of ``stage`` for ``system`` (each says the stage ended)."""
    return [e for e in journal(estate)[since:]
            if e["stage"] == stage and e.get("system") == system]


def stage_runs(estate: Path, system: str, stage: str) -> list[Path]:
    """The run folders of a system's stage (one per attempt), oldest first."""
    return sorted((state(estate) / "runs").glob(f"*-{system}-{stage}-*"))


def play_folders(estate: Path, system: str, stage: str, play: str) -> list[Path]:
    """Private folders of ``play`` within the system's ``stage``: one exists while it runs."""
    return [p for run in stage_runs(estate, system, stage)
            for p in (run / "private").glob(f"migrate-{play}-*")]


def play_ended(estate: Path, system: str, stage: str, play: str) -> bool:
    """A play of the stage ran to its end (its artifacts were kept in its run folder)."""
    return any((run / "artifacts" / play).exists() for run in stage_runs(estate, system, stage))


def task_started(estate: Path, system: str, stage: str, play: str, task: str) -> bool:
    """Ansible started ``task`` in the running ``play`` (its task-start event was written)."""
    for folder in play_folders(estate, system, stage, play):
        for path in (folder / "artifacts" / play / "job_events").glob("*.json"):
            try:
                event = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written right now: seen on the next poll
            if event.get("event") in ("playbook_on_task_start", "runner_on_start") \
                    and (event.get("event_data") or {}).get("task") == task:
                return True
    return False


def stack_locks(estate: Path, stack: str) -> list[Path]:
    """Lock files of a stack in the file backend: one exists while an update of it runs
    (and stays when the engine is killed, until the next run cancels it)."""
    locks = state(estate) / "backend" / ".pulumi" / "locks"
    return sorted(locks.glob(f"**/{stack}/*.json"))


class WatchedRun:
    """``migrate run`` in a process group of its own, its stage lines and output read as
    they come (so neither pipe can fill and stall it)."""

    def __init__(self, estate: Path, *args: str, output_json: bool = True) -> None:
        command = [str(MIGRATE), "run", str(estate), *args, "--yes"]
        if output_json:
            command += ["--output", "json"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self.out: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(self.process.stderr,
                                                                   self.lines), daemon=True),
                        threading.Thread(target=self._read, args=(self.process.stdout,
                                                                   self.out), daemon=True)]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def said(self, needle: str) -> bool:
        return any(needle in line for line in list(self.lines))

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 600) -> float:
        """Poll until ``condition`` holds; fails when the run ends first or after
        ``timeout`` seconds. The seconds waited."""
        started = time.monotonic()
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended (exit {self.process.returncode}) before "
                                     f"{what}:\n{self.stderr}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.stderr}")
            time.sleep(POLL_S)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL to the run and everything it started (its process group)."""
        assert self.process.poll() is None, f"the run had ended already:\n{self.stderr}"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.finish(60)

    def finish(self, timeout: float = 1200) -> tuple[int, str]:
        """Exit code and stdout, once the run has ended."""
        code = self.process.wait(timeout=timeout)
        self._close()
        return code, "".join(self.out)

    def _close(self) -> None:
        for reader in self.readers:
            reader.join(timeout=30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def finish_json(self, timeout: float = 1200) -> tuple[int, dict]:
        code, out = self.finish(timeout)
        assert out.strip(), self.stderr
        return code, json.loads(out)

    def stop(self) -> None:
        """Cleanup: kill the run if it is still going."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
        self._close()
