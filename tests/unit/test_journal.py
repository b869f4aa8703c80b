from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from migrate.core.journal import Journal, JournalCorrupt, verify_journal


def filled(tmp_path: Path, entries: int = 4) -> Journal:
    journal = Journal(tmp_path / "state", "示例市", secrets=["s3cr3t-value"])
    for index in range(entries):
        journal.append("transfer_files", system=f"sys-{index}", inputs={"n": index},
                       outputs={"bytes": index * 1000}, duration_s=0.5)
    return journal


def test_a_fresh_journal_verifies(tmp_path):
    journal = filled(tmp_path)
    result = verify_journal(journal.path, journal.estate_id())
    assert result.ok and result.entries == 5  # genesis + 4


def test_every_single_byte_edit_is_detected(tmp_path):
    journal = filled(tmp_path, entries=2)
    original = journal.path.read_bytes()
    estate_id = journal.estate_id()
    for offset in range(len(original)):
        edited = bytearray(original)
        edited[offset] = (edited[offset] + 1) % 256
        journal.path.write_bytes(bytes(edited))
        assert not verify_journal(journal.path, estate_id).ok, f"edit at byte {offset} missed"
    journal.path.write_bytes(original)
    assert verify_journal(journal.path, estate_id).ok


def test_the_altered_entry_is_named(tmp_path):
    journal = filled(tmp_path)
    lines = journal.path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace('"bytes":2000', '"bytes":2001')
    journal.path.write_text("".join(lines), encoding="utf-8")
    result = verify_journal(journal.path, journal.estate_id())
    assert not result.ok and result.line == 4
    assert "line 4 (seq 3) was altered" in result.problem


def test_a_removed_entry_is_named(tmp_path):
    journal = filled(tmp_path)
    lines = journal.path.read_text(encoding="utf-8").splitlines(keepends=True)
    del lines[2]
    journal.path.write_text("".join(lines), encoding="utf-8")
    result = verify_journal(journal.path, journal.estate_id())
    assert result.line == 3 and "does not follow seq 1" in result.problem


def test_reordered_entries_are_detected(tmp_path):
    journal = filled(tmp_path)
    lines = journal.path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    journal.path.write_text("".join(lines), encoding="utf-8")
    assert verify_journal(journal.path, journal.estate_id()).line == 3


def test_truncation_is_detected_and_appending_refuses(tmp_path):
    journal = filled(tmp_path)
    data = journal.path.read_bytes()
    journal.path.write_bytes(data[:-40])
    result = verify_journal(journal.path, journal.estate_id())
    assert not result.ok and "cut short" in result.problem
    with pytest.raises(JournalCorrupt):
        journal.append("cutover", system="x")
    assert journal.path.read_bytes() == data[:-40], "a corrupt journal is never appended to"


def test_a_journal_from_another_estate_is_detected(tmp_path):
    mine = filled(tmp_path / "a")
    other = filled(tmp_path / "b")
    shutil.copy(other.path, mine.path)
    result = verify_journal(mine.path, mine.estate_id())
    assert not result.ok and "belongs to another estate" in result.problem


def test_secrets_are_redacted_before_they_reach_the_file(tmp_path):
    journal = Journal(tmp_path / "state", "示例市", secrets=["hunter2-db-password"])
    journal.append("migrate_database", system="a",
                   details={"stderr": "FATAL: password hunter2-db-password rejected"})
    text = journal.path.read_text(encoding="utf-8")
    assert "hunter2" not in text and "[REDACTED]" in text
    assert verify_journal(journal.path, journal.estate_id()).ok


def _append_many(state: str, worker: int) -> None:
    journal = Journal(Path(state), "示例市")
    for index in range(25):
        journal.append("transfer_files", system=f"w{worker}-{index}")


def test_concurrent_appends_keep_the_chain(tmp_path):
    journal = Journal(tmp_path / "state", "示例市")
    journal.append("plan")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(journal.state_dir), w))
               for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    result = verify_journal(journal.path, journal.estate_id())
    assert result.ok and result.entries == 2 + 4 * 25


def test_plan_and_census_are_journaled_and_audit_verify_catches_an_edit(run_cli, estate):
    assert run_cli("plan", estate).code == 0
    assert run_cli("census", estate).code == 0
    result = run_cli("audit", "verify", estate, "--output", "json")
    assert result.code == 0, result.stderr
    journal = estate / ".migrate/journal.jsonl"
    stages = [line.split('"stage":"')[1].split('"')[0]
              for line in journal.read_text(encoding="utf-8").splitlines()]
    assert stages == ["genesis", "plan", "census"]
    journal.write_text(journal.read_text(encoding="utf-8").replace('"census"', '"censu5"'),
                       encoding="utf-8")
    result = run_cli("audit", "verify", estate)
    assert result.code == 4
    assert "line 3 (seq 2) was altered" in result.stderr
