"""The ansible-runner adapter: run one play of ``playbooks/`` and report what it did.

Every run gets a fresh private data directory (0700, removed afterwards) with
``suppress_env_files``; Ansible's own files (ANSIBLE_HOME, local temp, ssh control sockets)
stay inside the run directory. Secrets are never passed as variables: plays get paths to
0600 files. The artifacts are scrubbed of every secret value of the estate and kept as
evidence under ``<run dir>/artifacts/<stage>/``. A failed play raises ``StageFailed`` naming
the host, the task and Ansible's message.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ansible_runner

from migrate.adapters.inventory import control_dir
from migrate.adapters.processes import (
    all_pids,
    environ_value,
    parent_death_launcher,
    pid_alive,
)
from migrate.core import resources
from migrate.core.errors import EnvironmentNotReady, StageFailed
from migrate.core.journal import redact, secret_forms

PLAYBOOKS = resources.folder("playbooks")
RECORD_PREFIX = "record "
MAX_RECORD_CHARS = 2**31  # of one task result in the event stream
PRIVATE_DIR = "private"
OWNER_FILE = "owner.pid"
PLAY_OWNER_ENV = "MIGRATE_PLAY_OWNER"  # in every process of a play: the migrate process's pid
PLAY_RUNS_ENV = "MIGRATE_PLAY_RUNS"  # and the runs folder of its estate
LAUNCHER_DIR = "launcher"
MESSAGE_LIMIT = 2000
SSH_NOISE = re.compile(r"^Shared connection to \S+ closed\.$")


@dataclass(frozen=True)
class Progress:
    """One step of a play, for a progress display."""

    task: str
    host: str | None
    status: str  # ok | changed | failed | unreachable | skipped | start
    ok: int
    changed: int
    failed: int
    system: str | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass
class PlayResult:
    stage: str
    status: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    changed_tasks: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """stdout of the tasks named ``record <what>``: what -> host -> stdout."""
    artifacts: Path | None = None
    duration_s: float = 0.0
    task_times: dict[str, list[float]] = field(default_factory=dict)
    """task name -> [first start, last result], epoch seconds from the events."""

    def span(self, first_task: str, last_task: str) -> float | None:
        """Seconds from ``first_task``'s start to ``last_task``'s last result."""
        first, last = self.task_times.get(first_task), self.task_times.get(last_task)
        if not first or not last or len(last) < 2:
            return None
        return last[1] - first[0]

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "ok": self.ok, "changed": self.changed,
                "failed": self.failed, "unreachable": self.unreachable,
                "changed_tasks": sorted(set(self.changed_tasks)),
                "duration_s": round(self.duration_s, 3)}


@dataclass
class _Failure:
    host: str
    task: str
    message: str


class _Events:
    """Counts events and remembers the first failure and the recorded outputs."""

    def __init__(self, result: PlayResult, progress: ProgressCallback | None) -> None:
        self.result = result
        self.progress = progress
        self.failures: list[_Failure] = []

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        task = data.get("task", "")
        host = data.get("host")
        res = data.get("res") or {}
        status = None
        self._time(kind, task, event.get("created"))
        if kind == "runner_on_ok":
            status = "changed" if res.get("changed") else "ok"
            self.result.ok += 1
            if res.get("changed"):
                self.result.changed += 1
                self.result.changed_tasks.append(f"{host}: {task}")
            if task.lower().startswith(RECORD_PREFIX):
                if not res:
                    self.failures.append(_Failure(
                        host or "?", task, "its output did not reach migrate: it is over "
                        f"the {MAX_RECORD_CHARS} characters an event may carry"))
                self._record(task[len(RECORD_PREFIX):].lower(), host or "?", res)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            status = "failed"
            self.result.failed += 1
            self.failures.append(_Failure(host or "?", task, _message(res)))
        elif kind == "runner_on_unreachable":
            status = "unreachable"
            self.result.unreachable += 1
            self.failures.append(_Failure(host or "?", task, _message(res)))
        elif kind == "runner_on_skipped":
            status = "skipped"
        elif kind == "playbook_on_stats":
            self._stats(data)
        elif kind == "playbook_on_task_start":
            status = "start"
        if status and self.progress:
            self.progress(Progress(task, host, status, self.result.ok, self.result.changed,
                                   self.result.failed + self.result.unreachable))
        return True  # keep the event in the artifacts (scrubbed afterwards)


    def _time(self, kind: str, task: str, created: str | None) -> None:
        if not task or not created:
            return
        at = datetime.fromisoformat(created).timestamp()
        times = self.result.task_times.setdefault(task, [at])
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            times[1:] = [max([at, *times[1:]])]

    def _stats(self, data: dict) -> None:
        """The play's own totals (they count no_log tasks, whose events hide ``changed``)."""
        self.result.ok = sum((data.get("ok") or {}).values())
        self.result.changed = sum((data.get("changed") or {}).values())
        self.result.failed = sum((data.get("failures") or {}).values())
        self.result.unreachable = sum((data.get("dark") or {}).values())

    def _record(self, what: str, host: str, res: dict) -> None:
        """Keep a record task's stdout; a loop's as {item label: stdout}."""
        if "results" in res:
            value: Any = {_label(r): r.get("stdout", "") for r in res["results"]
                          if not r.get("skipped")}
        elif "stdout" in res:
            value = res["stdout"]
        else:
            return
        self.result.records.setdefault(what, {})[host] = value


def _label(item_result: dict) -> str:
    label = item_result.get("_ansible_item_label", item_result.get("item"))
    if isinstance(label, dict):
        label = label.get("name", label)
    return str(label)


def _message(res: dict) -> str:
    failed_items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if failed_items:  # a loop: the failed items' own messages say what is wrong
        return "; ".join(_message(r) for r in failed_items)[:MESSAGE_LIMIT]
    parts = [_without_ssh_noise(str(res.get(key) or ""))
             for key in ("msg", "stderr", "module_stderr")]
    if not any(parts[1:]):  # a script's own message (its stderr comes back in stdout)
        parts.append(_without_ssh_noise(str(res.get("stdout") or "")))
    text = "\n".join(p for p in parts if p) or "no message"
    return text[:MESSAGE_LIMIT]


def _without_ssh_noise(text: str) -> str:
    return "\n".join(line for line in text.strip().splitlines()
                     if not SSH_NOISE.match(line.strip())).strip()


def ansible_playbook_path() -> Path:
    """``ansible-playbook`` of this Python's environment (the venv), not whatever is on PATH."""
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if not candidate.exists():
        raise EnvironmentNotReady("ansible-playbook is not installed next to this Python",
                                  hint="pip install ansible-core ansible ansible-runner")
    return candidate


def run_play(stage: str, inventory: Path, run_dir: Path, secrets: Iterable[str], *,
             extravars: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
             check: bool = False, limit: str | None = None) -> PlayResult:
    """Run ``playbooks/<stage>.yml``; the result, or ``StageFailed`` when a task failed."""
    playbook = PLAYBOOKS / f"{stage}.yml"
    if not playbook.is_file():
        raise StageFailed(f"no playbook {playbook.name} in {PLAYBOOKS}")
    run_dir = Path(run_dir).absolute()
    secret_list = [s for s in secrets if s]
    result = PlayResult(stage=stage, status="unknown")
    events = _Events(result, progress)
    stop_orphaned_plays(run_dir.parent)
    sweep_stale_private_dirs(run_dir.parent)
    private = Path(tempfile.mkdtemp(prefix=f"migrate-{stage}-", dir=_private_parent(run_dir)))
    os.chmod(private, 0o700)
    (private / OWNER_FILE).write_text(f"{os.getpid()}\n")
    try:
        cmdline = "--diff --check" if check else ""
        if limit:
            cmdline += f" --limit {limit}"
        started = time.monotonic()
        runner = ansible_runner.run(
            private_data_dir=str(private), playbook=str(playbook), inventory=str(inventory),
            extravars=extravars or {}, envvars=_environment(run_dir),
            event_handler=events, quiet=True, suppress_env_files=True,
            cmdline=cmdline.strip() or None, ident=stage,
            project_dir=str(PLAYBOOKS),
        )
        result.status = runner.status
        result.duration_s = time.monotonic() - started
        result.artifacts = keep_artifacts(private / "artifacts" / stage,
                                          run_dir / "artifacts" / stage, secret_list)
    finally:
        end_control_masters(control_dir(run_dir))
        shutil.rmtree(private, ignore_errors=True)
    if events.failures or result.status != "successful":
        raise _failed(stage, events.failures, result, secret_list)
    return result


def sweep_stale_private_dirs(runs: Path) -> list[Path]:
    """Remove the private data directories that a killed run left behind (its events, not yet
    scrubbed, may hold secrets): those whose owner process is gone."""
    removed = []
    for private in runs.glob(f"*/{PRIVATE_DIR}/migrate-*"):
        try:
            owner = int((private / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is not None and pid_alive(owner):
            continue
        if owner is None and time.time() - private.stat().st_mtime < 60:
            continue  # being made right now by another system's play
        shutil.rmtree(private, ignore_errors=True)
        removed.append(private)
    return removed


def stop_orphaned_plays(runs: Path) -> list[int]:
    """Terminate what is left of this estate's plays whose migrate process is gone (a
    SIGKILLed run's ssh masters, or a play whose owner died before its death signal was
    armed), so that two plays never act on the same hosts. Another estate's leftovers are
    its own next run's to stop. The pids signalled."""
    estate = str(Path(runs).absolute())
    stopped = []
    for pid in all_pids():
        owner = environ_value(pid, PLAY_OWNER_ENV)
        if not owner or not owner.isdigit() or pid_alive(int(owner)):
            continue
        if environ_value(pid, PLAY_RUNS_ENV) != estate:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        stopped.append(pid)
    return stopped


def _launcher(home: Path) -> Path:
    """A folder holding an ``ansible-playbook`` that ends with the migrate process.

    ansible-runner starts the play in a session of its own that ignores SIGHUP, so neither
    a kill of migrate's process group nor its terminal reaches the play: the launcher asks
    the kernel for SIGTERM when its parent (migrate) dies, then becomes the real
    ``ansible-playbook``."""
    folder = home / LAUNCHER_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    launcher = folder / "ansible-playbook"
    launcher.write_text(parent_death_launcher(ansible_playbook_path(), PLAY_OWNER_ENV))
    launcher.chmod(0o700)
    return folder


def _private_parent(run_dir: Path) -> Path:
    parent = run_dir / PRIVATE_DIR
    parent.mkdir(mode=0o700, exist_ok=True)
    return parent


def _environment(run_dir: Path) -> dict[str, str]:
    home = run_dir / "ansible"
    (home / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)
    control_dir(run_dir).mkdir(exist_ok=True, mode=0o700)
    venv_bin = str(ansible_playbook_path().parent)
    return {
        "PATH": f"{_launcher(home)}:{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        PLAY_OWNER_ENV: str(os.getpid()),
        PLAY_RUNS_ENV: str(run_dir.parent),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir(run_dir)),
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner empties a result over 700,000 characters without a word; a record
        # task's output (a manifest line per file) passes that at a few thousand files.
        "MAX_EVENT_RES": str(MAX_RECORD_CHARS),
    }


def keep_artifacts(source: Path, destination: Path, secrets: list[str]) -> Path:
    """Copy the run's artifacts, every secret value replaced, then check none is left."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True, mode=0o700)
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file():
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = path.read_text(encoding="utf-8", errors="replace")
        target.write_text(redact(text, secrets), encoding="utf-8")
        os.chmod(target, 0o600)
    forms = {form for s in secrets for form in secret_forms(s)}
    leaked = [p for p in destination.rglob("*") if p.is_file()
              and _holds_any(p.read_text(encoding="utf-8", errors="replace"), forms)]
    if leaked:  # pragma: no cover - redact above makes this unreachable unless it regresses
        for path in leaked:
            path.unlink()
        raise StageFailed("a secret survived scrubbing of the artifacts; they were removed")
    return destination


def _holds_any(text: str, forms: set[str]) -> bool:
    return any(form in text for form in forms)


def end_control_masters(control: Path) -> None:
    """End the ssh ControlPersist masters of this run (else they linger for a minute)."""
    if not control.is_dir():
        return
    for socket in control.iterdir():
        if socket.is_socket():
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={socket}",
                            "-O", "exit", "migrate-control-master"],
                           capture_output=True, check=False, timeout=10,
                           stdin=subprocess.DEVNULL)
    if control.name.startswith("migrate-cp-"):
        shutil.rmtree(control, ignore_errors=True)


def _failed(stage: str, failures: list[_Failure], result: PlayResult,
            secrets: list[str]) -> StageFailed:
    if not failures:
        return StageFailed(f"{stage}: the play ended with status {result.status}",
                           hint=f"see the artifacts in {result.artifacts}")
    first = failures[0]
    others = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
    error = StageFailed(
        redact(f"{stage} failed on {first.host}, task '{first.task}': {first.message}{others}",
               secrets),
        hint=f"nothing after this task ran; the play's events are in {result.artifacts}")
    error.host, error.task = first.host, first.task  # type: ignore[attr-defined]
    error.result = result  # type: ignore[attr-defined]
    return error
