"""The evidence bundle: one tar.gz an auditor can take away and check on another machine.

``export_bundle`` writes, under one top folder: the runbooks (plan and evidence, Markdown and
HTML) and the progress report, as the runbook and report stages render them (the orchestration
hands their renderers in: ``Renderers``), the journal with its checkpoints, identity and
public key, the plan, the census lists and every kept artifact the evidence runbooks cite;
links between them are relative, so they work wherever the bundle is unpacked.
``MANIFEST.sha256`` lists every file with its SHA-256 (``sha256sum -c MANIFEST.sha256`` reads
it) and ``MANIFEST.sha256.sig`` is its Ed25519 signature with the journal's key.
``verify_bundle`` unpacks safely and checks the manifest, its signature and the journal
(docs/journal-format.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from migrate.core import signing
from migrate.core.errors import MigrateError
from migrate.core.journal import (
    CHECKPOINTS_NAME,
    IDENTITY_NAME,
    JOURNAL_NAME,
    Journal,
    JournalCorrupt,
    Verification,
    digest_file,
    verify_journal,
)
from migrate.core.loader import Estate

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
BUNDLE_INFO = "bundle.json"
MANIFEST_PURPOSE = "evidence-manifest"


class BundleInvalid(JournalCorrupt):
    """An evidence bundle that does not verify (same exit code as a corrupt journal)."""


@dataclass(frozen=True)
class Exported:
    path: Path
    files: int
    bytes: int
    journal: Verification
    manifest_digest: str

    def as_dict(self) -> dict:
        return {"archive": str(self.path), "files": self.files, "bytes": self.bytes,
                "manifest_sha256": self.manifest_digest, "journal": self.journal.as_dict()}


@dataclass(frozen=True)
class Renderers:
    """What other stages put into the bundle, handed in by the orchestration: the kept files
    the runbooks cite (``cited_artifacts(entries)``, relative to the state folder), the
    runbooks (``runbooks(journal, folder, artifacts_dir, verification)``) and the report
    (``report(entries, folder, verification)``), each from the journal's snapshot."""

    cited_artifacts: Callable[[list[dict]], list[str]]
    runbooks: Callable[[Journal, Path, Path, Verification], object]
    report: Callable[[list[dict], Path, Verification], object]


@dataclass
class BundleCheck:
    ok: bool
    root: str
    files: int = 0
    problem: str | None = None
    journal: Verification | None = None
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "bundle": self.root, "files": self.files,
                "problem": self.problem, "estate": self.info.get("estate"),
                "journal": self.journal.as_dict() if self.journal else None}


# ---------------------------------------------------------------- export


def export_bundle(estate: Estate, plan: dict, journal: Journal, output: Path, as_of: date,
                  secrets: list[str], renderers: Renderers) -> Exported:
    """Write the bundle to ``output`` (a .tar.gz); refused when the journal does not verify
    or a file to include holds a secret value."""
    with tempfile.TemporaryDirectory(prefix="migrate-evidence-") as scratch:
        name = f"evidence-{journal.estate_id()[:8]}-{as_of.isoformat()}"
        root = Path(scratch) / name
        verification = snapshot_journal(journal, root / "journal")
        if not verification.ok:
            raise JournalCorrupt(f"the journal does not verify, no evidence exported: "
                                 f"{verification.problem}",
                                 "run 'migrate audit verify' and restore the journal first")
        snapshot = Journal(root / "journal", estate.settings.estate)
        entries = list(snapshot.entries())
        copy_artifacts(journal.state_dir, renderers.cited_artifacts(entries), root / "artifacts")
        copy_census_lists(journal.state_dir, root / "census")
        (root / "plan.json").write_text(json.dumps(plan, ensure_ascii=False, indent=2,
                                                   sort_keys=True) + "\n", encoding="utf-8")
        renderers.runbooks(snapshot, root / "runbooks", root / "artifacts", verification)
        renderers.report(entries, root / "report", verification)
        write_info(root, estate, journal, verification, as_of)
        write_readme(root, estate, as_of)
        refuse_secrets(root, secrets)
        digest = write_manifest(root, signing.load_key(journal.key_path()))
        files = len(manifest_lines(root / MANIFEST))
        size = pack(root, output)
    return Exported(output, files, size, verification, digest)


def snapshot_journal(journal: Journal, folder: Path) -> Verification:
    """Copy journal, checkpoints and identity while no one appends (the appenders' lock),
    then verify the copy as a snapshot; the public key goes beside it as PEM."""
    folder.mkdir(parents=True)
    with open(journal.path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        for name in (JOURNAL_NAME, CHECKPOINTS_NAME, IDENTITY_NAME):
            if (journal.state_dir / name).is_file():
                shutil.copy2(journal.state_dir / name, folder / name)
    public = journal.public_key()
    if public:
        (folder / "public-key.pem").write_text(signing.public_pem(public), encoding="ascii")
    estate_id = json.loads((folder / IDENTITY_NAME).read_text(encoding="utf-8"))["estate_id"]
    return verify_journal(folder / JOURNAL_NAME, estate_id, snapshot=True)


def copy_artifacts(state_dir: Path, cited: list[str], target: Path) -> None:
    """Each cited artifact that exists, at the same relative path (never from outside the
    state folder, never following a link out of it)."""
    base = state_dir.resolve()
    for relative in cited:
        source = (state_dir / relative)
        if not source.exists() or not source.resolve().is_relative_to(base):
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True,
                            ignore=_symlinks)
        elif not source.is_symlink():
            shutil.copy2(source, destination)


def _symlinks(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if (Path(folder) / n).is_symlink()}


def copy_census_lists(state_dir: Path, target: Path) -> None:
    census = state_dir / "reports" / "census"
    if census.is_dir():
        shutil.copytree(census, target)


def write_info(root: Path, estate: Estate, journal: Journal, verification: Verification,
               as_of: date) -> None:
    info = {"kind": "migrate.evidence", "schema_version": 1,
            "estate": estate.settings.estate,
            "estate_id": journal.estate_id(), "as_of": as_of.isoformat(),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "operator": signing.operator_name(), "journal_entries": verification.entries,
            "journal_head": verification.last_hash, "journal_status": verification.status,
            "key_id": verification.key_id, "public_key": verification.public_key}
    (root / BUNDLE_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2,
                                               sort_keys=True) + "\n", encoding="utf-8")


def write_readme(root: Path, estate: Estate, as_of: date) -> None:
    text = f"""# 迁移证据包 Evidence bundle: {estate.settings.estate} ({as_of.isoformat()})

- [运行手册目录 Runbooks](runbooks/index.html) ([Markdown](runbooks/index.md))
- [进度报告 Progress report](report/report.html) ([Markdown](report/report.md),
  [JSON](report/report.json), CSV in `report/csv/`)
- 运行日志 Run journal: `journal/journal.jsonl`, checkpoints `journal/checkpoints.jsonl`,
  public key `journal/public-key.pem`
- 迁移计划 Plan: `plan.json`; 自查清单 census lists: `census/`; kept artifacts: `artifacts/`

## 核验 How to verify

```sh
migrate audit verify THIS-ARCHIVE.tar.gz        # manifest, signature, journal, checkpoints
sha256sum -c MANIFEST.sha256                    # the hashes alone, without migrate
```

`MANIFEST.sha256.sig` signs the manifest with the journal's Ed25519 key (see
`bundle.json` for its id); docs/journal-format.md of migrate describes every rule.
"""
    (root / "README.md").write_text(text, encoding="utf-8")


def refuse_secrets(root: Path, secrets: list[str]) -> None:
    """No secret value may leave in the bundle: the file is named, never the value."""
    from migrate.core.journal import secret_forms

    forms = [f.encode("utf-8") for s in secrets if s for f in secret_forms(s)]
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(form in data for form in forms):
                raise MigrateError(f"{path.relative_to(root)} would carry a secret value into "
                                   "the evidence bundle; nothing was exported",
                                   "scrub the artifact (or rotate the secret) and export again")


def write_manifest(root: Path, key) -> str:
    lines = [f"{digest_file(path).removeprefix('sha256:')}  {path.relative_to(root).as_posix()}"
             for path in sorted(root.rglob("*")) if path.is_file()]
    manifest = ("\n".join(lines) + "\n").encode("utf-8")
    (root / MANIFEST).write_bytes(manifest)
    digest = hashlib.sha256(manifest).hexdigest()
    public = signing.public_text(key.public_key())
    signature = {"purpose": MANIFEST_PURPOSE, "manifest_sha256": digest, "public_key": public,
                 "key_id": signing.key_id(public),
                 "sig": signing.sign(key, MANIFEST_PURPOSE, digest)}
    (root / SIGNATURE).write_text(json.dumps(signature, indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")
    return digest


def pack(root: Path, output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for path in [root, *sorted(root.rglob("*"))]:
            archive.add(path, arcname=path.relative_to(root.parent).as_posix(), recursive=False)
    partial.replace(output)
    return output.stat().st_size


# ---------------------------------------------------------------- verify


def verify_bundle(archive: Path, public_key: str | None = None,
                  checkpoints: list[Path] | None = None) -> BundleCheck:
    """Unpack ``archive`` into a private folder (no links, no paths out of it) and check it."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="migrate-verify-") as scratch:
        try:
            root = unpack(archive, Path(scratch))
        except (tarfile.TarError, OSError) as error:
            return BundleCheck(False, str(archive), problem=f"the archive cannot be unpacked "
                               f"safely: {error}")
        check = verify_folder(root, public_key, checkpoints or [])
    check.info["seconds"] = round(time.monotonic() - started, 3)
    return check


def unpack(archive: Path, target: Path) -> Path:
    with tarfile.open(archive, "r:gz") as bundle:
        members = bundle.getmembers()
        bad = [m.name for m in members if not (m.isfile() or m.isdir())]
        if bad:
            raise tarfile.TarError(f"it holds links or devices ({bad[0]})")
        bundle.extractall(target, filter="data")
    tops = [p for p in target.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise tarfile.TarError("it must hold exactly one top folder")
    return tops[0]


def verify_folder(root: Path, public_key: str | None, checkpoints: list[Path]) -> BundleCheck:
    """Manifest (every file listed, none unlisted, each hash equal), its signature, then the
    journal against its checkpoints; the manifest and the journal must be signed by the same
    key, the one given (``--public-key``) or else this machine's for the estate, if any."""
    where = root.name
    try:
        info = json.loads((root / BUNDLE_INFO).read_text(encoding="utf-8"))
        listed = check_manifest(root)
        signer = check_signature(root, public_key)
    except (OSError, ValueError, KeyError) as error:
        return BundleCheck(False, where, problem=f"{type(error).__name__}: {error}")
    except BundleInvalid as error:
        return BundleCheck(False, where, problem=error.message)
    result = verify_journal(root / "journal" / JOURNAL_NAME, info.get("estate_id"),
                            public_key=public_key, checkpoints=checkpoints, snapshot=True)
    problem = None if result.ok else f"journal/{JOURNAL_NAME}: {result.problem}"
    if result.ok and result.public_key != signer:
        problem = (f"{SIGNATURE} is signed with key {signing.key_id(signer)} but the journal "
                   f"with {result.key_id}")
    elif result.ok and result.last_hash != info.get("journal_head"):
        problem = (f"{BUNDLE_INFO} names journal head {info.get('journal_head')} but the "
                   f"journal ends at {result.last_hash}")
    return BundleCheck(problem is None, where, listed, problem, result, info)


def manifest_lines(path: Path) -> dict[str, str]:
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise BundleInvalid(f"{MANIFEST} line {number} is not '<sha256>  <path>'")
        found[name] = digest
    return found


def check_manifest(root: Path) -> int:
    listed = manifest_lines(root / MANIFEST)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for name in sorted(set(listed) - present):
        raise BundleInvalid(f"{name} is listed in {MANIFEST} but missing from the bundle")
    for name in sorted(present - set(listed) - {MANIFEST, SIGNATURE}):
        raise BundleInvalid(f"{name} is in the bundle but not in {MANIFEST} (added)")
    for name, digest in sorted(listed.items()):
        if digest_file(root / name).removeprefix("sha256:") != digest:
            raise BundleInvalid(f"{name} was altered: its sha256 differs from {MANIFEST}")
    return len(listed)


def check_signature(root: Path, expected: str | None) -> str:
    """The manifest's signature, by the key expected (given, or the bundle's journal key)."""
    signature = json.loads((root / SIGNATURE).read_text(encoding="utf-8"))
    digest = hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()
    public_text = expected or signature.get("public_key")
    public = signing.public_from_text(public_text)
    if public is None:
        raise BundleInvalid(f"{SIGNATURE} names no usable public key")
    if signature.get("public_key") != public_text:
        raise BundleInvalid(f"{SIGNATURE} is signed with key {signature.get('key_id')}, not "
                            f"{signing.key_id(public_text)}")
    if not signing.signature_ok(public, MANIFEST_PURPOSE, digest, signature.get("sig")):
        raise BundleInvalid(f"{SIGNATURE}: the signature of {MANIFEST} does not verify with "
                            f"key {signing.key_id(public_text)} (the manifest was changed)")
    return public_text
