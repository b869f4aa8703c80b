"""The run journal: append-only JSON Lines, one entry per stage and system, hash-chained
and signed (docs/journal-format.md is the reference an auditor verifies against).

Each entry carries the hash of the previous one, its own SHA-256 over its RFC 8785 canonical
JSON (``migrate.core.canonical``) and an Ed25519 signature of that hash, made with a key kept
outside the estate (``migrate.core.signing``). The first entry (``genesis``) names the estate and
holds the public key; the estate's id is kept beside it in ``estate.json`` so a journal copied
from another estate is caught too. After every append a signed checkpoint (entry count and
head hash) goes to ``checkpoints.jsonl`` in the state folder and to a copy outside the estate,
so truncation and whole rewrites are found against them. Journals written before signing
(schema 1) still verify, reported as unsigned (legacy); the next append seals them with a
``signing_begins`` entry. No command deletes or rewrites the journal.
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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from migrate.core import signing
from migrate.core.canonical import NotCanonical, canonical_json
from migrate.core.errors import EnvironmentNotReady, MigrateError

JOURNAL_NAME = "journal.jsonl"
IDENTITY_NAME = "estate.json"
CHECKPOINTS_NAME = "checkpoints.jsonl"
JOURNAL_SCHEMA_VERSION = 2
LEGACY_SCHEMA_VERSION = 1
CHECKPOINT_SCHEMA_VERSION = 1
ZERO_HASH = "0" * 64
REDACTED = "[REDACTED]"
KEY_STAGES = ("genesis", "signing_begins")  # entries that carry the journal's public key


class JournalCorrupt(MigrateError):
    """The journal does not verify: an entry was altered, removed, reordered or truncated."""

    exit_code = 4


def canonical(entry: dict) -> bytes:
    """An entry's bytes on disk and under its hash: RFC 8785 (``migrate.core.canonical``)."""
    return canonical_json(entry)


def entry_hash(entry: dict) -> str:
    """SHA-256 (hex) over the entry without ``hash`` and ``sig``; schema 1 entries (legacy,
    unsigned) were hashed over orjson's sorted bytes, and still are."""
    if entry.get("schema_version") == LEGACY_SCHEMA_VERSION:
        body = {k: v for k, v in entry.items() if k != "hash"}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    return hashlib.sha256(canonical(body)).hexdigest()


def checkpoint_hash(checkpoint: dict) -> str:
    body = {k: v for k, v in checkpoint.items() if k not in ("hash", "sig")}
    return hashlib.sha256(canonical(body)).hexdigest()


def external_checkpoints_path(estate_id: str) -> Path:
    """The copy of the checkpoints kept outside the estate (MIGRATE_CHECKPOINT_DIR, else
    ``~/.local/state/migrate/checkpoints``)."""
    folder = os.environ.get("MIGRATE_CHECKPOINT_DIR")
    base = Path(folder) if folder else signing.state_home() / "checkpoints"
    return base / f"{estate_id}.jsonl"


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


def _login() -> str:
    """The account and machine (kept beside the operator's name, which it never replaces)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _json_ready(entry: dict) -> dict:
    """What callers pass (dates, tuples, UUIDs...) as the plain JSON the entry will hold."""
    return orjson.loads(orjson.dumps(entry))


@dataclass
class Journal:
    """The journal of one estate, in its state directory."""

    state_dir: Path
    estate_title: str
    secrets: list[str] = field(default_factory=list)
    operator: str | None = None

    @property
    def path(self) -> Path:
        return self.state_dir / JOURNAL_NAME

    @property
    def identity_path(self) -> Path:
        return self.state_dir / IDENTITY_NAME

    @property
    def checkpoints_path(self) -> Path:
        return self.state_dir / CHECKPOINTS_NAME

    def estate_id(self) -> str:
        """The estate's id, made on first use and kept in the state directory."""
        if self.identity_path.is_file():
            return orjson.loads(self.identity_path.read_bytes())["estate_id"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        identity = {"estate_id": str(uuid.uuid4()), "estate": self.estate_title}
        with open(self.identity_path, "xb") as handle:
            handle.write(orjson.dumps(identity, option=orjson.OPT_INDENT_2) + b"\n")
        return identity["estate_id"]

    def key_path(self) -> Path:
        path = signing.key_path(self.estate_id())
        signing.refuse_key_inside(path, self.state_dir)
        return path

    def public_key(self) -> str | None:
        """The journal's public key (``ed25519:<base64>``) from its key entry, if signed."""
        for entry in self.entries():
            if entry.get("stage") in KEY_STAGES and entry.get("schema_version") == 2:
                return (entry.get("details") or {}).get("public_key")
        return None

    def append(self, stage: str, *, system: str | None = None, result: str = "ok",
               inputs: dict | None = None, outputs: dict | None = None,
               duration_s: float | None = None, details: dict | None = None) -> dict:
        """Append one signed entry under an exclusive lock, chained to the last one, then a
        signed checkpoint."""
        estate_id = self.estate_id()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            last = _last_entry(handle)
            key, last = self._signing_key(handle, last, estate_id)
            entry = self._entry(key, last["seq"] + 1, last["hash"], estate_id, stage, system,
                                result, inputs or {}, outputs or {}, duration_s, details or {})
            self._write(handle, entry)
            self._checkpoint(key, entry, estate_id)
            return entry

    def _signing_key(self, handle: Any, last: dict | None, estate_id: str) -> tuple[Any, dict]:
        """The key to sign with, and the entry to chain to: a new journal begins with a
        genesis entry holding the public key, a legacy one with ``signing_begins``."""
        path = self.key_path()
        if last is None or last.get("schema_version") == LEGACY_SCHEMA_VERSION:
            key = signing.load_or_make_key(path)
            public = signing.public_text(key.public_key())
            details = {"public_key": public, "key_id": signing.key_id(public)}
            if last is None:
                first = self._entry(key, 0, ZERO_HASH, estate_id, "genesis", None, "ok", {}, {},
                                    None, details)
            else:
                details |= {"legacy_entries": last["seq"] + 1, "legacy_head": last["hash"]}
                first = self._entry(key, last["seq"] + 1, last["hash"], estate_id,
                                    "signing_begins", None, "ok", {}, {}, None, details)
            self._write(handle, first)
            self._checkpoint(key, first, estate_id)
            return key, first
        if not path.is_file():
            raise EnvironmentNotReady(
                f"the journal is signed with key {last.get('key_id')}, whose private key is not "
                f"at {path}",
                hint="copy the estate's key file there (or set MIGRATE_SIGNING_KEY to it); only "
                     "the holder of the key can append to this journal")
        key = signing.load_key(path)
        held = signing.key_id(signing.public_text(key.public_key()))
        if held != last.get("key_id"):
            raise EnvironmentNotReady(
                f"the key at {path} ({held}) is not the one this journal is signed with "
                f"({last.get('key_id')})",
                hint="use the estate's own key file (MIGRATE_SIGNING_KEY); nothing was appended")
        return key, last

    def _entry(self, key: Any, seq: int, prev: str, estate_id: str, stage: str,
               system: str | None, result: str, inputs: dict, outputs: dict,
               duration_s: float | None, details: dict) -> dict:
        public = signing.public_text(key.public_key())
        entry = {
            "schema_version": JOURNAL_SCHEMA_VERSION,
            "seq": seq,
            "prev": prev,
            "estate_id": estate_id,
            "estate": self.estate_title,
            "at": _now(),
            "operator": signing.operator_name(self.operator),
            "login": _login(),
            "stage": stage,
            "system": system,
            "result": result,
            "inputs": inputs,
            "outputs": outputs,
            "duration_s": None if duration_s is None else round(duration_s, 3),
            "details": details,
            "key_id": signing.key_id(public),
        }
        entry = _json_ready(redact(entry, self.secrets))
        entry["hash"] = entry_hash(entry)
        entry["sig"] = signing.sign(key, "journal-entry", entry["hash"])
        return entry

    def _checkpoint(self, key: Any, head: dict, estate_id: str) -> None:
        """A signed record of the journal's length and head, in the state folder and in the
        copy outside the estate (each file chained on its own)."""
        for path in (self.checkpoints_path, external_checkpoints_path(estate_id)):
            try:
                self._checkpoint_into(path, key, head, estate_id)
            except OSError as error:
                raise EnvironmentNotReady(
                    f"the journal's checkpoint cannot be written to {path}: {error.strerror}",
                    hint="make the folder writable, or set MIGRATE_CHECKPOINT_DIR to one that "
                         "is (outside the estate)") from None
            except orjson.JSONDecodeError:
                raise JournalCorrupt(f"the last checkpoint in {path} is not valid JSON",
                                     "run 'migrate audit verify'; restore the file from a "
                                     "backup") from None

    def _checkpoint_into(self, path: Path, key: Any, head: dict, estate_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            previous = _last_line(handle)
            record = {"schema_version": CHECKPOINT_SCHEMA_VERSION,
                      "kind": "migrate.journal.checkpoint", "estate_id": estate_id,
                      "n": previous["n"] + 1 if previous else 0,
                      "prev": previous["hash"] if previous else ZERO_HASH,
                      "entries": head["seq"] + 1, "head_seq": head["seq"],
                      "head_hash": head["hash"], "at": _now(), "key_id": head["key_id"]}
            record["hash"] = checkpoint_hash(record)
            record["sig"] = signing.sign(key, "journal-checkpoint", record["hash"])
            self._write(handle, record)

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

    def verify(self, *, public_key: str | None = None,
               checkpoints: Iterable[Path] = ()) -> Verification:
        """``migrate audit verify`` on this journal, without creating its identity file."""
        estate_id = self.estate_id() if self.identity_path.is_file() else None
        return verify_journal(self.path, estate_id, public_key=public_key,
                              checkpoints=checkpoints)


def _last_line(handle: Any) -> dict | None:
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
    return orjson.loads(lines[-1])


def _last_entry(handle: Any) -> dict | None:
    try:
        return _last_line(handle)
    except orjson.JSONDecodeError:
        raise JournalCorrupt(
            f"the last entry of the journal is not valid JSON ({handle.name})",
            "the journal was truncated or edited; run 'migrate audit verify' and restore it "
            "from a backup; nothing was appended") from None


# ---------------------------------------------------------------- verification

STATUS_SIGNED = "signed"
STATUS_LEGACY = "unsigned (legacy)"
STATUS_PARTLY = "signed from seq {seq}; the {count} entries before are unsigned (legacy)"
STATUS_FAILED = "does not verify"


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    last_hash: str | None
    problem: str | None = None
    line: int | None = None
    check: str | None = None  # which check failed: json, entry, hash, signature, chain, ...
    status: str = STATUS_FAILED
    key_id: str | None = None
    public_key: str | None = None
    checkpoints: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def signed(self) -> bool:
        return self.ok and self.status == STATUS_SIGNED

    def as_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "last_hash": self.last_hash,
                "problem": self.problem, "line": self.line, "check": self.check,
                "status": self.status, "key_id": self.key_id, "public_key": self.public_key,
                "checkpoints": self.checkpoints, "warnings": list(self.warnings)}


def verification_summary(verification: Verification) -> str:
    """One line on whether the journal verifies, as the runbooks and the report print it."""
    if not verification.ok:
        return f"未通过 FAILED ({verification.check}): {verification.problem}"
    signed = verification.key_id or "no key"
    return (f"通过 passed: {verification.entries} entries, {verification.status} "
            f"(key {signed}), {verification.checkpoints} checkpoint files agree")


def entries_until(entries: Iterable[dict], as_of: date | None) -> list[dict]:
    """Entries up to the end of ``as_of`` (UTC date of ``at``), all when ``as_of`` is None."""
    if as_of is None:
        return list(entries)
    limit = as_of.isoformat()
    return [e for e in entries if str(e.get("at", ""))[:10] <= limit]


class _Failed(Exception):
    def __init__(self, check: str, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.check, self.problem, self.line = check, problem, line


@dataclass
class _Chain:
    """What a pass over the journal found so far."""

    hashes: list[str] = field(default_factory=list)
    public: Any = None
    public_text: str | None = None
    signed_from: int | None = None
    estate_id: str | None = None


def verify_journal(path: Path, estate_id: str | None, *, public_key: str | None = None,
                   checkpoints: Iterable[Path] = (), snapshot: bool = False) -> Verification:
    """Check the chain, each entry's hash and signature, and the checkpoints (the state
    folder's, the copy outside the estate, and any given); name the first thing that fails.
    ``public_key`` pins the key the journal must be signed with (else this machine's key for
    the estate, when it has one). A ``snapshot`` (an exported copy) is checked against its
    own checkpoints and those given only: this machine's later ones would call it short."""
    if not path.is_file():
        return Verification(False, 0, None, f"no journal at {path}", None, "missing")
    chain = _Chain()
    try:
        _check_entries(path.read_bytes(), estate_id, chain)
        pinned = public_key or _local_public_key(estate_id or _first_estate_id(path))
        _check_key(chain, pinned)
        files = _checkpoint_files(path, None if snapshot else estate_id or _first_estate_id(path),
                                  checkpoints)
        counted = _check_checkpoints(files, chain, path.parent / CHECKPOINTS_NAME)
    except _Failed as failed:
        last = chain.hashes[-1] if chain.hashes else None
        return Verification(False, len(chain.hashes), last, failed.problem, failed.line,
                            failed.check, key_id=_key_id(chain), public_key=chain.public_text)
    warnings = _warnings(chain)
    if not snapshot:
        warnings += _missing_external_copy(estate_id or _first_estate_id(path), chain)
    return Verification(True, len(chain.hashes), chain.hashes[-1], status=_status(chain),
                        key_id=_key_id(chain), public_key=chain.public_text,
                        checkpoints=counted, warnings=warnings)


def _missing_external_copy(estate_id: str | None, chain: _Chain) -> tuple[str, ...]:
    """A machine that holds the key has signed here, so it should hold the outside copy of
    the checkpoints too (only a warning: the key may have been copied to a new machine)."""
    if not estate_id or chain.public is None or _local_public_key(estate_id) is None:
        return ()
    copy = external_checkpoints_path(estate_id)
    if copy.is_file():
        return ()
    return (f"this machine holds the estate's signing key but not its copy of the checkpoints "
            f"({copy}): if it signed here, that copy was removed",)


def _key_id(chain: _Chain) -> str | None:
    return signing.key_id(chain.public_text) if chain.public_text else None


def _status(chain: _Chain) -> str:
    if chain.signed_from is None:
        return STATUS_LEGACY
    if chain.signed_from == 0:
        return STATUS_SIGNED
    return STATUS_PARTLY.format(seq=chain.signed_from, count=chain.signed_from)


def _warnings(chain: _Chain) -> tuple[str, ...]:
    if chain.signed_from is None:
        return ("the journal is unsigned (legacy, schema 1): its hash chain holds, but "
                "whoever can write the file could have rewritten it whole; the next command "
                "that journals signs it from then on",)
    if chain.signed_from:
        return (f"entries 0 to {chain.signed_from - 1} were written before signing began "
                "(legacy): the signed entry that follows seals their hash, nothing older",)
    return ()


def _check_entries(raw: bytes, estate_id: str | None, chain: _Chain) -> None:
    if raw and not raw.endswith(b"\n"):
        count = raw.count(b"\n") + 1
        raise _Failed("truncated", f"line {count} is cut short (no end of line): the journal "
                      "was truncated", count)
    lines = raw.split(b"\n")[:-1]
    if not lines:
        raise _Failed("empty", "the journal is empty")
    for number, line in enumerate(lines, 1):
        _check_entry(number, _parse(number, line), estate_id, chain)


def _parse(number: int, line: bytes) -> dict:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _Failed("json", f"line {number} is not valid JSON (edited or truncated)",
                      number) from None
    if not isinstance(entry, dict) or "hash" not in entry:
        raise _Failed("entry", f"line {number} is not a journal entry", number)
    return entry


def _check_entry(number: int, entry: dict, estate_id: str | None, chain: _Chain) -> None:
    seq, where = entry.get("seq"), f"line {number} (seq {entry.get('seq')})"
    try:
        computed = entry_hash(entry)
    except NotCanonical as error:
        raise _Failed("hash", f"{where} cannot be hashed: {error}", number) from None
    if computed != entry["hash"]:
        raise _Failed("hash", f"{where} was altered: its content does not match its hash",
                      number)
    _check_signature(number, where, entry, chain)
    previous = chain.hashes[-1] if chain.hashes else ZERO_HASH
    if entry.get("prev") != previous or seq != len(chain.hashes):
        raise _Failed("chain", f"{where} does not follow seq {len(chain.hashes) - 1}: an "
                      "entry before it was removed, or entries were reordered", number)
    if number == 1 and entry.get("stage") != "genesis":
        raise _Failed("genesis", f"line {number} is not the genesis entry", number)
    if estate_id is not None and entry.get("estate_id") != estate_id:
        raise _Failed("estate", f"{where} belongs to another estate ({entry.get('estate')!r}, "
                      f"id {entry.get('estate_id')}; this estate is {estate_id})", number)
    chain.hashes.append(entry["hash"])
    chain.estate_id = chain.estate_id or entry.get("estate_id")


def _check_signature(number: int, where: str, entry: dict, chain: _Chain) -> None:
    version = entry.get("schema_version")
    if version == LEGACY_SCHEMA_VERSION:
        if chain.public is not None:
            raise _Failed("signature", f"{where} is an unsigned (schema 1) entry after signing "
                          f"began at seq {chain.signed_from}: inserted or downgraded", number)
        return
    if version != JOURNAL_SCHEMA_VERSION:
        raise _Failed("entry", f"{where} has unknown schema_version {version!r}", number)
    if chain.public is None:
        _begin_signing(number, where, entry, chain)
    if entry.get("key_id") != _key_id(chain):
        raise _Failed("signature", f"{where} names key {entry.get('key_id')}, not the "
                      f"journal's key {_key_id(chain)}", number)
    if not signing.signature_ok(chain.public, "journal-entry", entry["hash"], entry.get("sig")):
        raise _Failed("signature", f"{where}: the signature does not verify with the "
                      f"journal's key {_key_id(chain)} (rewritten without the key, or forged)",
                      number)


def _begin_signing(number: int, where: str, entry: dict, chain: _Chain) -> None:
    """The first signed entry must be the one that holds the public key."""
    details = entry.get("details") or {}
    public = signing.public_from_text(details.get("public_key"))
    if entry.get("stage") not in KEY_STAGES or public is None:
        raise _Failed("signature", f"{where} is signed, but no entry before it holds the "
                      "journal's public key (genesis or signing_begins)", number)
    chain.public, chain.public_text = public, details["public_key"]
    chain.signed_from = entry.get("seq")


def _local_public_key(estate_id: str | None) -> str | None:
    """This machine's key for the estate, if it holds one: a journal signed with any other
    key was replaced."""
    if not estate_id:
        return None
    path = signing.key_path(estate_id)
    if not path.is_file():
        return None
    try:
        return signing.public_text(signing.load_key(path).public_key())
    except MigrateError:
        return None


def _check_key(chain: _Chain, pinned: str | None) -> None:
    if pinned is None:
        return
    if chain.public_text is None:
        raise _Failed("key", f"the journal is unsigned, but it should be signed with key "
                      f"{signing.key_id(pinned)}: a signed journal was replaced by an "
                      "unsigned one")
    if chain.public_text != pinned:
        raise _Failed("key", f"the journal is signed with key {_key_id(chain)}, not the "
                      f"estate's key {signing.key_id(pinned)}: it was replaced or rewritten "
                      "with another key")


def _first_estate_id(path: Path) -> str | None:
    with open(path, "rb") as handle:
        try:
            first = orjson.loads(handle.readline() or b"{}")
        except orjson.JSONDecodeError:
            return None
    return first.get("estate_id") if isinstance(first, dict) else None


def _checkpoint_files(path: Path, estate_id: str | None, given: Iterable[Path]) -> list[Path]:
    files = [path.parent / CHECKPOINTS_NAME]
    if estate_id:
        files.append(external_checkpoints_path(estate_id))
    files += [Path(p) for p in given]
    return list(dict.fromkeys(files))


def _check_checkpoints(files: list[Path], chain: _Chain, own: Path) -> int:
    """Every checkpoint of every file: signed with the journal's key, chained within its
    file, and matching the journal (so it was neither truncated nor rewritten since). The
    state folder's own file must cover the whole signed journal."""
    present = [f for f in files if f.is_file()]
    if chain.public is None:
        if present and any(f.stat().st_size for f in present):
            raise _Failed("key", f"the journal is unsigned but {present[0]} holds signed "
                          "checkpoints: a signed journal was replaced by an unsigned one")
        return 0
    counted = 0
    for path in files:
        if not path.is_file():
            if path == own:
                raise _Failed("checkpoint", f"the checkpoint file {path} is missing")
            continue
        last = _check_checkpoint_file(path, chain)
        counted += 1
        if path == own:
            _check_coverage(path, last, chain)
    return counted


def _check_checkpoint_file(path: Path, chain: _Chain) -> dict | None:
    previous: dict | None = None
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        where = f"checkpoint file {path} line {number}"
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise _Failed("checkpoint", f"{where} is not valid JSON") from None
        if not isinstance(record, dict) or checkpoint_hash(record) != record.get("hash"):
            raise _Failed("checkpoint", f"{where} was altered: its content does not match "
                          "its hash")
        if record.get("estate_id") != chain.estate_id:
            raise _Failed("estate", f"{where} is a checkpoint of another estate (id "
                          f"{record.get('estate_id')}); the journal is estate {chain.estate_id}'s: "
                          "the journal was swapped for another estate's")
        if not signing.signature_ok(chain.public, "journal-checkpoint", record["hash"],
                                    record.get("sig")):
            raise _Failed("checkpoint", f"{where} (checkpoint {record.get('n')}): the "
                          f"signature does not verify with the journal's key {_key_id(chain)}")
        _check_checkpoint_order(where, record, previous)
        _check_against_journal(where, record, chain)
        previous = record
    return previous


def _check_checkpoint_order(where: str, record: dict, previous: dict | None) -> None:
    if previous is None:
        return
    if record.get("n") != previous["n"] + 1 or record.get("prev") != previous["hash"]:
        raise _Failed("checkpoint", f"{where}: checkpoint {record.get('n')} does not follow "
                      f"checkpoint {previous['n']}: a checkpoint was removed or reordered")


def _check_against_journal(where: str, record: dict, chain: _Chain) -> None:
    count, head = record.get("entries"), record.get("head_hash")
    n = record.get("n")
    if not isinstance(count, int) or count > len(chain.hashes):
        raise _Failed("truncated", f"the journal has {len(chain.hashes)} entries but "
                      f"checkpoint {n} ({where}, {record.get('at')}) signed {count}: entries "
                      f"after seq {len(chain.hashes) - 1} were removed (truncated)")
    if chain.hashes[count - 1] != head:
        raise _Failed("rewritten", f"entry seq {count - 1} has hash {chain.hashes[count - 1]} "
                      f"but checkpoint {n} ({where}, {record.get('at')}) signed {head}: the "
                      "journal was rewritten after that checkpoint")


def _check_coverage(path: Path, last: dict | None, chain: _Chain) -> None:
    covered = last["entries"] if last else 0
    if covered < len(chain.hashes):
        raise _Failed("checkpoint", f"entries seq {covered} to {len(chain.hashes) - 1} are "
                      f"covered by no checkpoint in {path}: its last checkpoint was removed, "
                      "or entries were added without migrate")
