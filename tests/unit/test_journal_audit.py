"""The tampering corpus: what an auditor tries on a journal, each caught and named."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from migrate.core import signing
from migrate.core.canonical import canonical_json, format_number
from migrate.core.errors import EnvironmentNotReady
from migrate.core.journal import (
    STATUS_LEGACY,
    STATUS_SIGNED,
    Journal,
    checkpoint_hash,
    entry_hash,
    external_checkpoints_path,
    verify_journal,
)


@pytest.fixture(autouse=True)
def keys_outside(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATE_KEY_DIR", str(tmp_path / "home" / "keys"))
    monkeypatch.setenv("MIGRATE_CHECKPOINT_DIR", str(tmp_path / "home" / "checkpoints"))
    monkeypatch.delenv("MIGRATE_SIGNING_KEY", raising=False)
    monkeypatch.setenv("MIGRATE_OPERATOR", "张伟（市大数据局运维）")


def story(root: Path, title: str = "示例市") -> Journal:
    journal = Journal(root / "state", title)
    journal.append("provision", system="a", result="changed", duration_s=40.0)
    journal.append("transfer", system="a", result="failed", outputs={"error": "rsync 23"})
    journal.append("transfer", system="a", outputs={"bytes": 1200, "ratio": 0.25})
    journal.append("cutover", system="a", outputs={"downtime_s": 74.5})
    journal.append("verify", system="a", outputs={"checks": []})
    return journal


def lines(journal: Journal) -> list[dict]:
    return [orjson.loads(line) for line in journal.path.read_bytes().splitlines()]


def write(path: Path, records: list[dict]) -> None:
    path.write_bytes(b"".join(canonical_json(r) + b"\n" for r in records))


def verify(journal: Journal, **kwargs):
    return verify_journal(journal.path, journal.estate_id(), **kwargs)


def rechain(entries: list[dict], key: Ed25519PrivateKey | None = None) -> list[dict]:
    """What a forger does: recompute every hash and link (and signature, with a key)."""
    previous = "0" * 64
    for entry in entries:
        entry["prev"] = previous
        entry["hash"] = entry_hash(entry)
        if key is not None:
            entry["sig"] = signing.sign(key, "journal-entry", entry["hash"])
        previous = entry["hash"]
    return entries


def test_a_signed_journal_verifies_with_its_checkpoints(tmp_path):
    journal = story(tmp_path)
    result = verify(journal)
    assert result.ok and result.status == STATUS_SIGNED, result.problem
    assert result.entries == 6 and result.checkpoints == 2
    first = lines(journal)[0]
    assert first["details"]["public_key"] == journal.public_key()
    assert all(e["operator"] == "张伟（市大数据局运维）" and "@" in e["login"]
               for e in lines(journal))


def test_the_key_is_kept_outside_the_state_folder(tmp_path, monkeypatch):
    journal = story(tmp_path)
    assert (tmp_path / "home" / "keys" / f"{journal.estate_id()}.pem").is_file()
    assert not any(p.suffix == ".pem" for p in journal.state_dir.rglob("*"))
    monkeypatch.setenv("MIGRATE_SIGNING_KEY", str(journal.state_dir / "key.pem"))
    with pytest.raises(EnvironmentNotReady, match="inside the state folder"):
        journal.append("plan")


def test_an_edited_field_names_its_entry(tmp_path):
    journal = story(tmp_path)
    entries = lines(journal)
    entries[2]["result"] = "ok"
    write(journal.path, entries)
    result = verify(journal)
    assert not result.ok and result.check == "hash" and result.line == 3
    assert "line 3 (seq 2) was altered" in result.problem


def test_deleting_the_last_entry_is_truncation(tmp_path):
    journal = story(tmp_path)
    write(journal.path, lines(journal)[:-1])
    result = verify(journal)
    assert not result.ok and result.check == "truncated"
    assert "the journal has 5 entries but checkpoint" in result.problem
    assert "signed 6" in result.problem and "removed (truncated)" in result.problem


def test_deleting_the_last_three_entries_is_truncation(tmp_path):
    journal = story(tmp_path)
    write(journal.path, lines(journal)[:-3])
    result = verify(journal)
    assert not result.ok and result.check == "truncated" and "has 3 entries" in result.problem


def test_a_rewrite_with_recomputed_hashes_fails_its_signature(tmp_path):
    journal = story(tmp_path)
    entries = lines(journal)
    entries[2]["result"] = "ok"
    write(journal.path, rechain(entries))
    result = verify(journal)
    assert not result.ok and result.check == "signature" and result.line == 3
    assert "signature does not verify" in result.problem


def test_a_rewrite_signed_with_another_key_is_caught_by_the_pinned_key(tmp_path):
    journal = story(tmp_path)
    forger = Ed25519PrivateKey.generate()
    public = signing.public_text(forger.public_key())
    entries = lines(journal)
    entries[2]["result"] = "ok"
    entries[0]["details"] = {"public_key": public, "key_id": signing.key_id(public)}
    for entry in entries:
        entry["key_id"] = signing.key_id(public)
    write(journal.path, rechain(entries, forger))
    result = verify(journal)
    assert not result.ok and result.check == "key"
    assert "not the estate's key" in result.problem


def test_a_forged_rewrite_is_caught_by_the_external_checkpoints(tmp_path, monkeypatch):
    """An auditor's machine has no private key: the checkpoints kept outside the estate
    (or handed over) still catch a journal and checkpoint file re-signed by a forger."""
    journal = story(tmp_path)
    handed_over = tmp_path / "handed-over.jsonl"
    shutil.copy(external_checkpoints_path(journal.estate_id()), handed_over)
    monkeypatch.setenv("MIGRATE_KEY_DIR", str(tmp_path / "auditor-keys"))
    forger = Ed25519PrivateKey.generate()
    public = signing.public_text(forger.public_key())
    entries = lines(journal)
    entries[2]["result"] = "ok"
    entries[0]["details"] = {"public_key": public, "key_id": signing.key_id(public)}
    for entry in entries:
        entry["key_id"] = signing.key_id(public)
    write(journal.path, rechain(entries, forger))
    checkpoints = lines_of(journal.checkpoints_path)
    for record in checkpoints:
        record["key_id"] = signing.key_id(public)
        record["head_hash"] = entries[record["head_seq"]]["hash"]
    write(journal.checkpoints_path, rechain_checkpoints(checkpoints, forger))
    external_checkpoints_path(journal.estate_id()).unlink()
    assert verify(journal).ok, "without anything kept elsewhere a key-holder's rewrite passes"
    result = verify(journal, checkpoints=[handed_over])
    assert not result.ok and result.check == "checkpoint"
    assert str(handed_over) in result.problem and "signature does not verify" in result.problem
    pinned = verify(journal, public_key=original_key(tmp_path))
    assert not pinned.ok and pinned.check == "key"


def original_key(tmp_path: Path) -> str:
    pem = next((tmp_path / "home" / "keys").glob("*.pem"))
    return signing.public_text(signing.load_key(pem).public_key())


def lines_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def rechain_checkpoints(records: list[dict], key: Ed25519PrivateKey) -> list[dict]:
    previous = "0" * 64
    for record in records:
        record["prev"] = previous
        record["hash"] = checkpoint_hash(record)
        record["sig"] = signing.sign(key, "journal-checkpoint", record["hash"])
        previous = record["hash"]
    return records


def test_another_estates_journal_is_named(tmp_path):
    mine = story(tmp_path / "a")
    other = story(tmp_path / "b", "另一市")
    shutil.copy(other.path, mine.path)
    result = verify(mine)
    assert not result.ok and result.check == "estate" and "另一市" in result.problem


def test_another_estates_whole_state_folder_is_caught_by_a_handed_over_checkpoint(tmp_path):
    mine = story(tmp_path / "a")
    handed_over = tmp_path / "handed-over.jsonl"
    shutil.copy(mine.checkpoints_path, handed_over)
    other = story(tmp_path / "b", "另一市")
    for name in ("journal.jsonl", "estate.json", "checkpoints.jsonl"):
        shutil.copy(other.state_dir / name, mine.state_dir / name)
    result = verify(mine, checkpoints=[handed_over])
    assert not result.ok and result.check == "estate"
    assert str(handed_over) in result.problem and "another estate" in result.problem


def test_a_forged_operator_is_named(tmp_path):
    journal = story(tmp_path)
    entries = lines(journal)
    entries[4]["operator"] = "李四"
    write(journal.path, entries)
    assert verify(journal).check == "hash"
    write(journal.path, rechain(entries))
    result = verify(journal)
    assert result.check == "signature" and "line 5 (seq 4)" in result.problem


def test_a_dropped_checkpoint_is_named(tmp_path):
    journal = story(tmp_path)
    records = lines_of(journal.checkpoints_path)
    write(journal.checkpoints_path, records[:2] + records[3:])
    result = verify(journal)
    assert not result.ok and result.check == "checkpoint"
    assert "checkpoint 3 does not follow checkpoint 1" in result.problem


def test_a_dropped_last_checkpoint_leaves_entries_uncovered(tmp_path):
    journal = story(tmp_path)
    write(journal.checkpoints_path, lines_of(journal.checkpoints_path)[:-1])
    result = verify(journal)
    assert not result.ok and result.check == "checkpoint"
    assert "entries seq 5 to 5 are covered by no checkpoint" in result.problem


def test_a_deleted_checkpoint_file_is_named(tmp_path):
    journal = story(tmp_path)
    journal.checkpoints_path.unlink()
    result = verify(journal)
    assert not result.ok and "checkpoint file" in result.problem and "missing" in result.problem


def test_a_bad_signature_is_named(tmp_path):
    journal = story(tmp_path)
    entries = lines(journal)
    other = lines(journal)[3]["sig"]
    entries[4]["sig"] = other
    write(journal.path, entries)
    result = verify(journal)
    assert result.check == "signature" and "line 5 (seq 4)" in result.problem


def test_an_edited_checkpoint_is_named(tmp_path):
    journal = story(tmp_path)
    records = lines_of(journal.checkpoints_path)
    records[-1]["entries"] = 3
    write(journal.checkpoints_path, records)
    result = verify(journal)
    assert result.check == "checkpoint" and "line 6 was altered" in result.problem


def test_a_journal_and_its_checkpoints_truncated_together_are_caught_outside(tmp_path):
    journal = story(tmp_path)
    write(journal.path, lines(journal)[:-2])
    write(journal.checkpoints_path, lines_of(journal.checkpoints_path)[:-2])
    result = verify(journal)
    assert not result.ok and result.check == "truncated"
    assert str(external_checkpoints_path(journal.estate_id())) in result.problem


def legacy_journal(root: Path) -> Journal:
    """A schema 1 journal as migrate wrote them before signing."""
    journal = Journal(root / "state", "示例市")
    estate_id = journal.estate_id()
    previous, records = "0" * 64, []
    for seq, stage in enumerate(("genesis", "plan", "census")):
        entry = {"schema_version": 1, "seq": seq, "prev": previous, "estate_id": estate_id,
                 "estate": "示例市", "at": "2026-11-20T01:00:00.000Z", "actor": "root@h",
                 "stage": stage, "system": None, "result": "ok", "inputs": {}, "outputs": {},
                 "duration_s": None, "details": {}}
        entry["hash"] = hashlib.sha256(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
                                       ).hexdigest()
        records.append(entry)
        previous = entry["hash"]
    journal.path.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
                                      for r in records))
    return journal


def test_a_legacy_journal_verifies_as_unsigned_then_gets_signed(tmp_path):
    journal = legacy_journal(tmp_path)
    result = verify(journal)
    assert result.ok and result.status == STATUS_LEGACY and result.warnings
    journal.append("plan")
    after = verify(journal)
    assert after.ok and after.status.startswith("signed from seq 3"), after.problem
    stages = [e["stage"] for e in lines(journal)]
    assert stages == ["genesis", "plan", "census", "signing_begins", "plan"]
    assert lines(journal)[3]["details"]["legacy_head"] == lines(journal)[2]["hash"]


def test_a_signed_journal_cannot_be_downgraded_to_legacy(tmp_path):
    signed = story(tmp_path / "a")
    legacy = legacy_journal(tmp_path / "b")
    shutil.copy(legacy.path, signed.path)
    (signed.state_dir / "estate.json").write_bytes((legacy.state_dir / "estate.json").read_bytes())
    shutil.copy(signed.checkpoints_path, legacy.checkpoints_path)
    result = verify(legacy)
    assert not result.ok and result.check == "key" and "unsigned" in result.problem


def test_an_unsigned_entry_after_signing_began_is_named(tmp_path):
    journal = story(tmp_path)
    entries = lines(journal)
    forged = dict(entries[-1], schema_version=1, seq=6, prev=entries[-1]["hash"])
    forged.pop("sig")
    forged["hash"] = entry_hash(forged)
    write(journal.path, [*entries, forged])
    result = verify(journal)
    assert result.check == "signature" and "unsigned (schema 1) entry after signing" \
        in result.problem


def test_appending_without_the_key_refuses(tmp_path, monkeypatch):
    journal = story(tmp_path)
    monkeypatch.setenv("MIGRATE_KEY_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(EnvironmentNotReady, match="private key is not at"):
        journal.append("plan")
    assert verify(journal).ok


def test_rfc8785_numbers_and_ordering():
    assert canonical_json({"b": 1, "a": [1.0, 0.1, 1e21, 1e-7, -0.0]}) == \
        b'{"a":[1,0.1,1e+21,1e-7,0],"b":1}'
    assert format_number(333333333.33333329) == "333333333.3333333"
    assert format_number(1e23) == "1e+23" and format_number(5e-324) == "5e-324"
    # UTF-16 order: U+1F600 (a surrogate pair, D83D...) sorts before U+FB01
    assert canonical_json({"\ufb01": 1, "\U0001f600": 2}) == \
        json.dumps({"\U0001f600": 2, "\ufb01": 1}, ensure_ascii=False,
                   separators=(",", ":")).encode()
    assert canonical_json("\u0001\n\"") == b'"\\u0001\\n\\""'


def test_a_handed_over_checkpoint_catches_what_local_copies_do_not(run_cli, estate, tmp_path):
    assert run_cli("plan", estate).code == 0
    assert run_cli("census", estate).code == 0
    handed = tmp_path / "bureau" / "checkpoints.jsonl"
    handed.parent.mkdir()
    assert run_cli("audit", "checkpoint", estate, "--to", handed).code == 0
    key = tmp_path / "bureau" / "key.pem"
    assert run_cli("audit", "key", estate, "--to", key).code == 0
    assert key.read_text(encoding="ascii").startswith("-----BEGIN PUBLIC KEY-----")
    ok = run_cli("audit", "verify", estate, "--public-key", key, "--checkpoint", handed)
    assert ok.code == 0, ok.stderr
    state = estate / ".migrate"
    journal = Journal(state, "示例市")
    write(journal.path, lines(journal)[:-1])
    write(journal.checkpoints_path, lines_of(journal.checkpoints_path)[:-1])
    external_checkpoints_path(journal.estate_id()).unlink()
    result = run_cli("audit", "verify", estate, "--checkpoint", handed, "--output", "json")
    assert result.code == 4
    document = json.loads(result.stdout)
    assert document["check"] == "truncated" and str(handed) in document["problem"]
    assert document["error"]["exit_code"] == 4


def test_a_removed_outside_copy_is_a_warning_where_the_key_is(tmp_path):
    journal = story(tmp_path)
    external_checkpoints_path(journal.estate_id()).unlink()
    result = verify(journal)
    assert result.ok and result.checkpoints == 1
    assert any("copy of the checkpoints" in w for w in result.warnings)
