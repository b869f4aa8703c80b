"""The run journal: append-only JSON Lines, one entry per stage and system, hash-chained.

Each entry carries the hash of the previous one and its own hash over its canonical JSON
(sorted keys, no whitespace), so any edit, removal, reordering or truncation is found by
``verify_journal``. The first entry (``genesis``) names the estate the journal belongs to;
the estate's id is kept beside it in ``estate.json`` so a journal copied from another estate
is caught too. No command deletes or rewrites the journal.
"""

from __future__ import annotations

import fcntl
import functools
import getpass
import hashlib
import json
import os
import re
import socket
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from migrate.errors import MigrateError

JOURNAL_NAME = "journal.jsonl"
IDENTITY_NAME = "estate.json"
JOURNAL_SCHEMA_VERSION = 1
ZERO_HASH = "0" * 64
REDACTED = "[REDACTED]"


class JournalCorrupt(MigrateError):
    """The journal does not verify: an entry was altered, removed, reordered or truncated."""

    exit_code = 4


def canonical(entry: dict) -> bytes:
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def entry_hash(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    return digest_bytes(path.read_bytes())


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every occurrence of a secret value, however deep, by a marker: the value as
    is and as the project's artifacts write it (see ``secret_forms``)."""
    pattern = _secrets_pattern(tuple(s for s in secrets if s))
    return value if pattern is None else _redact_with(value, pattern)


def secret_forms(secret: str) -> set[str]:
    """How ``secret`` can appear in what the project writes: as is, shell-quoted (Ansible's
    ``quote`` filter: ' becomes '"'"', or '\\'' in other shells' style), in a Python repr,
    and JSON-escaped up to three times deep (ansible-runner's job events hold the display
    text, which holds a task result as JSON, which holds a command's JSON output), with
    non-ASCII as it is or as \\uXXXX in either case."""
    forms = {secret, secret.replace("'", "'\"'\"'"), secret.replace("'", "'\\''"),
             repr(secret)[1:-1]}
    for _ in range(3):
        forms |= {escaped for form in forms for escaped in _json_escapes(form)}
    return forms


def _json_escapes(text: str) -> set[str]:
    ascii_only = json.dumps(text)[1:-1]
    upper = re.sub(r"\\u[0-9a-f]{4}", lambda m: m.group(0).upper().replace("\\U", "\\u"),
                   ascii_only)
    return {json.dumps(text, ensure_ascii=False)[1:-1], ascii_only, upper}


@functools.lru_cache(maxsize=16)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in secret_forms(secret)}
    if not forms:
        return None
    # Longest first, so an escaped form is replaced whole and not only its raw middle.
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _redact_with(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {_redact_with(k, pattern): _redact_with(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_with(v, pattern) for v in value]
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class Journal:
    """The journal of one estate, in its state directory."""

    state_dir: Path
    estate_title: str
    secrets: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.state_dir / JOURNAL_NAME

    @property
    def identity_path(self) -> Path:
        return self.state_dir / IDENTITY_NAME

    def estate_id(self) -> str:
        """The estate's id, made on first use and kept in the state directory."""
        if self.identity_path.is_file():
            return orjson.loads(self.identity_path.read_bytes())["estate_id"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        identity = {"estate_id": str(uuid.uuid4()), "estate": self.estate_title}
        with open(self.identity_path, "xb") as handle:
            handle.write(orjson.dumps(identity, option=orjson.OPT_INDENT_2) + b"\n")
        return identity["estate_id"]

    def append(self, stage: str, *, system: str | None = None, result: str = "ok",
               inputs: dict | None = None, outputs: dict | None = None,
               duration_s: float | None = None, details: dict | None = None) -> dict:
        """Append one entry under an exclusive lock, chained to the last one."""
        estate_id = self.estate_id()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            last = _last_entry(handle)
            if last is None:
                last = self._write(handle, self._entry(0, ZERO_HASH, estate_id, "genesis",
                                                       None, "ok", {}, {}, None, {}))
            entry = self._entry(last["seq"] + 1, last["hash"], estate_id, stage, system,
                                result, inputs or {}, outputs or {}, duration_s, details or {})
            return self._write(handle, entry)

    def _entry(self, seq: int, prev: str, estate_id: str, stage: str, system: str | None,
               result: str, inputs: dict, outputs: dict, duration_s: float | None,
               details: dict) -> dict:
        entry = {
            "schema_version": JOURNAL_SCHEMA_VERSION,
            "seq": seq,
            "prev": prev,
            "estate_id": estate_id,
            "estate": self.estate_title,
            "at": _now(),
            "actor": _actor(),
            "stage": stage,
            "system": system,
            "result": result,
            "inputs": inputs,
            "outputs": outputs,
            "duration_s": None if duration_s is None else round(duration_s, 3),
            "details": details,
        }
        entry = redact(entry, self.secrets)
        entry["hash"] = entry_hash(entry)
        return entry

    @staticmethod
    def _write(handle: Any, entry: dict) -> dict:
        handle.write(canonical(entry) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
        return entry

    def entries(self) -> Iterator[dict]:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as handle:
            for line in handle:
                if line.strip():
                    yield orjson.loads(line)


def _last_entry(handle: Any) -> dict | None:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return None
    block = min(size, 65536)
    while True:
        handle.seek(size - block)
        tail = handle.read(block)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or block == size:
            break
        block = min(size, block * 2)
    try:
        return orjson.loads(lines[-1])
    except orjson.JSONDecodeError:
        raise JournalCorrupt(
            f"the last entry of the journal is not valid JSON ({handle.name})",
            "the journal was truncated or edited; run 'migrate audit verify' and restore it "
            "from a backup; nothing was appended") from None


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    last_hash: str | None
    problem: str | None = None
    line: int | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "last_hash": self.last_hash,
                "problem": self.problem, "line": self.line}


def verify_journal(path: Path, estate_id: str | None) -> Verification:
    """Recompute the chain; name the first line that was altered, removed or reordered."""
    if not path.is_file():
        return Verification(False, 0, None, f"no journal at {path}", None)
    previous_hash, previous_seq, count = ZERO_HASH, -1, 0
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        lines = raw.split(b"\n")
        return Verification(False, len(lines) - 1, None,
                            f"line {len(lines)} is cut short (no end of line): the journal "
                            "was truncated", len(lines))
    for number, line in enumerate(raw.split(b"\n")[:-1], 1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            return _bad(count, previous_hash, number, "is not valid JSON (edited or truncated)")
        if not isinstance(entry, dict) or "hash" not in entry:
            return _bad(count, previous_hash, number, "is not a journal entry")
        if entry_hash(entry) != entry["hash"]:
            return _bad(count, previous_hash, number,
                        f"(seq {entry.get('seq')}) was altered: its content does not match "
                        "its hash")
        if entry.get("prev") != previous_hash or entry.get("seq") != previous_seq + 1:
            return _bad(count, previous_hash, number,
                        f"(seq {entry.get('seq')}) does not follow seq {previous_seq}: an entry "
                        "before it was removed, or entries were reordered")
        if number == 1 and entry.get("stage") != "genesis":
            return _bad(count, previous_hash, number, "is not the genesis entry")
        if estate_id is not None and entry.get("estate_id") != estate_id:
            return _bad(count, previous_hash, number,
                        f"belongs to another estate ({entry.get('estate')!r}, id "
                        f"{entry.get('estate_id')})")
        previous_hash, previous_seq, count = entry["hash"], entry["seq"], count + 1
    if count == 0:
        return Verification(False, 0, None, "the journal is empty", None)
    return Verification(True, count, previous_hash)


def _bad(count: int, last_hash: str, line: int, what: str) -> Verification:
    return Verification(False, count, last_hash, f"line {line} {what}", line)
