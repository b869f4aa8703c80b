"""HTTP answers of a system's service, read on the machine that serves it (python3 of the
machine, no other tool), and the source's answers recorded right before a cutover.

An answer is kept as status, size, sha256 and the ``total`` of a catalogue page, never the
body: the comparison is by digest, and the body holds the department's records.

The baseline is honest about what it proves: it is read from the source while it still
serves, immediately before the cutover freezes it; a write between that moment and the
freeze would show as a difference (the legacy applications here only write on request).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrate.targets.context import Context

# Prints one JSON line per URL: {"url", "status", "bytes", "sha256", "total", "error"}.
FETCH_SCRIPT = r"""
import hashlib, json, sys, urllib.error, urllib.request
for url in sys.argv[1:]:
    answer = {"url": url, "status": None, "bytes": None, "sha256": None, "total": None,
              "error": None, "status_field": None}
    try:
        try:
            response = urllib.request.urlopen(url, timeout=10)
            status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        answer.update(status=status, bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
        try:
            document = json.loads(body)
            if isinstance(document, dict):
                answer["total"] = document.get("total")
                answer["status_field"] = document.get("status")
        except ValueError:
            pass
    except Exception as error:
        answer["error"] = type(error).__name__ + ": " + str(error)
    print(json.dumps(answer), flush=True)
"""


def fetch_command(urls: list[str]) -> str:
    return "python3 -c " + shlex.quote(FETCH_SCRIPT) + " " + " ".join(map(shlex.quote, urls))


def parse_answers(stdout: str) -> dict[str, dict[str, Any]]:
    found = {}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            answer = json.loads(line)
            found[answer["url"]] = answer
    return found


def local_url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


# ---------------------------------------------------------------- the source's baseline


def baseline_path(state_dir: Path, system_id: str) -> Path:
    return state_dir / "verify" / system_id / "source-answers.json"


def read_baseline(state_dir: Path, system_id: str) -> dict | None:
    path = baseline_path(state_dir, system_id)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def record_source_answers(context: Context, system_id: str,
                          timeout: float = 60.0) -> dict | None:
    """Read the catalogue interfaces' sample answers on the source, while it serves; keep
    them for verification. None (and the previous baseline kept) when the source does not
    answer (already cut over, or down)."""
    from migrate.adapters import inventory as inv
    from migrate.adapters.access import source_known_hosts
    from migrate.core import state
    from migrate.stages.verify.context import sample_paths

    estate = context.estate
    system = inv.system_plan(context.plan, system_id)
    manifest = estate.systems[system_id]
    services = {s["name"]: s for s in system["services"]}
    wanted: dict[str, list[tuple[int, str]]] = {}
    for resource in manifest.exchange.resources if manifest.exchange else []:
        if resource.interface and resource.interface.service in services:
            service = services[resource.interface.service]
            for path in sample_paths(resource.interface.path):
                wanted.setdefault(service["source_host"], []).append((service["port"], path))
    if not wanted:
        return None
    addresses = {h["name"]: h["address"] for h in system["source_hosts"]}
    key = state.secrets_dir(estate) / state.secret_name(manifest.source.ssh.key)
    answers: dict[str, dict] = {}
    for host, requests in wanted.items():
        argv = ["ssh", "-F", "/dev/null", "-i", str(key.absolute()), "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={source_known_hosts(context)}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=10", "-p", str(manifest.source.ssh.port),
                f"{manifest.source.ssh.user}@{addresses[host]}",
                fetch_command([local_url(port, path) for port, path in requests])]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        found = parse_answers(done.stdout) if done.returncode == 0 else {}
        for port, path in requests:
            answer = found.get(local_url(port, path))
            if not answer or answer.get("status") != 200:
                return None  # not serving: keep the baseline recorded while it was
            answers[path] = {k: answer[k] for k in ("status", "bytes", "sha256", "total")}
    document = {"system": system_id, "source_host": ", ".join(sorted(wanted)),
                "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "recorded_unix": time.time(), "answers": answers}
    path = baseline_path(context.state_dir, system_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return document
