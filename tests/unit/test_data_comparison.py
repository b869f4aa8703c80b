"""The cutover's data comparison (migrate.stages.move.comparison): per-table sums of both sides
parsed, compared table by table, every differing table named (bounded) in the error, kept in
the failed cutover's journal entry next to the rollback."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from migrate.adapters import ansible as runner
from migrate.core.errors import StageFailed
from migrate.core.journal import Journal
from migrate.stages import move
from migrate.stages.move import (
    compare_tables,
    differing_message,
    parse_table_sums,
    raise_for_differing_databases,
)

SOURCE_SUMS = ("app.sessions 10 -8123\n"
               "app.users 3 4411\n"
               "app.cache 7 12\n"
               "public.my table 2 99\n")
TARGET_SUMS = ("app.sessions 12 5512\n"
               "app.users 3 4411\n"
               "app.cache 9 13\n"
               "public.my table 2 99\n"
               "public.extra 1 7\n")


def test_sums_lines_are_parsed_with_names_that_hold_spaces() -> None:
    parsed = parse_table_sums(SOURCE_SUMS + "not a sums line\n\n")
    assert parsed == {"app.sessions": {"rows": 10, "checksum": "-8123"},
                      "app.users": {"rows": 3, "checksum": "4411"},
                      "app.cache": {"rows": 7, "checksum": "12"},
                      "public.my table": {"rows": 2, "checksum": "99"}}


def test_each_table_is_compared_and_the_volatile_ones_left_out() -> None:
    compared = compare_tables(parse_table_sums(SOURCE_SUMS), parse_table_sums(TARGET_SUMS),
                              {"app.cache", "public.sessions"})
    assert compared["differing"] == ["app.sessions", "public.extra"]
    assert compared["not_compared"] == ["app.cache"]
    assert compared["volatile_unmatched"] == ["public.sessions"]
    assert compared["equal"] is False
    assert compared["tables"]["app.sessions"] == {"rows": 10, "checksum": "-8123"}
    assert compared["target_tables"]["app.sessions"] == {"rows": 12, "checksum": "5512"}
    same = compare_tables(parse_table_sums(SOURCE_SUMS), parse_table_sums(SOURCE_SUMS), set())
    assert same["equal"] is True and same["differing"] == []


def summary_of(database: str, here: str, there: str, volatile: set[str]) -> dict:
    return {database: {"source": "db1", "target": "sys-db",
                       **compare_tables(parse_table_sums(here), parse_table_sums(there),
                                        volatile)}}


def test_the_error_names_each_differing_table_with_both_sides() -> None:
    summary = summary_of("fybj", SOURCE_SUMS, TARGET_SUMS, {"app.cache"})
    with pytest.raises(StageFailed) as failed:
        raise_for_differing_databases(summary)
    message = failed.value.message
    assert message.startswith("database fybj differs between db1 and sys-db after the "
                              "catch-up: 2 tables differ: ")
    assert ('"app.sessions" source 10 rows, checksum -8123, target 12 rows, checksum 5512'
            in message)
    assert '"public.extra" source missing, target 1 rows, checksum 7' in message
    assert "app.cache" not in message and "app.users" not in message


def test_the_error_names_at_most_ten_tables_then_counts_the_rest() -> None:
    here = "".join(f"s.t{i:02} {i} {i}\n" for i in range(8))
    there = "".join(f"s.t{i:02} {i + 1} {i}\n" for i in range(8))
    summary = {**summary_of("one", here, there, set()), **summary_of("two", here, there, set())}
    message = differing_message(summary)
    assert message.count(" source ") == 10
    assert '"s.t07"' in message.split(". database two")[0]
    assert message.endswith('"s.t01" source 1 rows, checksum 1, target 2 rows, checksum 1; '
                            "and 6 more")
    assert differing_message(summary, shown=8).endswith("8 tables differ: 8 not named here")


def test_the_hint_points_a_public_volatile_name_at_the_schema_that_has_the_table() -> None:
    summary = summary_of("fybj", SOURCE_SUMS, TARGET_SUMS, {"app.cache", "public.sessions"})
    with pytest.raises(StageFailed) as failed:
        raise_for_differing_databases(summary)
    assert ("volatile_tables of fybj names public.sessions, which it does not have: write "
            '"app.sessions"') in failed.value.hint


def test_equal_databases_raise_nothing() -> None:
    raise_for_differing_databases(summary_of("fybj", SOURCE_SUMS, SOURCE_SUMS, set()))


def test_a_hostile_table_name_is_shown_escaped() -> None:
    here = "app.x\x1b[2Jy 1 1\n"
    message = differing_message(summary_of("fybj", here, "", set()))
    assert "\x1b" not in message and '"app.x\\u001b[2Jy"' in message


# ---------------------------------------------------------------- the failed cutover's entry


class FakeSession(SimpleNamespace):
    def play(self, stage: str, result: move.StageResult) -> runner.PlayResult:
        self.played.append(stage)
        records = {}
        if stage == "cutover":
            records = {"files manifest": {},
                       "database checksums": {"db1": {"fybj": SOURCE_SUMS},
                                              "sys-db": {"fybj": TARGET_SUMS}}}
        done = runner.PlayResult(stage, "successful", records=records)
        result.plays.append(done)
        return done


def test_a_failed_cutover_journals_every_table_and_rolls_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = {"systems": [{"id": "sys", "source_hosts": [{"name": "db1", "moves_to": "db"}],
                         "data": {"databases": [{"name": "fybj",
                                                 "volatile_tables": ["app.cache"]}]}}]}
    journal = Journal(tmp_path / "state", "test estate")
    session = FakeSession(context=SimpleNamespace(journal=journal), plan=plan, system_id="sys",
                          run_id="r1", run_dir=tmp_path / "run", check=False, inputs={},
                          played=[])
    # The module, not the package's attribute of that name (the stage function): the cutover
    # looks open_session up in its own module.
    cutover_module = importlib.import_module("migrate.stages.move.cutover")
    monkeypatch.setattr(cutover_module, "open_session", lambda *_args, **_kw: session)

    with pytest.raises(StageFailed, match=r"app\.sessions"):
        move.cutover(session.context, "sys", {})  # type: ignore[arg-type]

    assert session.played == ["check_prerequisites", "cutover", "rollback"]
    entry = [e for e in journal.entries() if e["stage"] == "cutover"][-1]
    assert entry["result"] == "failed"
    databases = entry["outputs"]["databases"]["fybj"]
    assert databases["differing"] == ["app.sessions", "public.extra"]
    assert databases["target_tables"]["app.sessions"]["rows"] == 12
    assert entry["outputs"]["rolled_back"]["result"] == "ok"
    assert "app.sessions" in entry["outputs"]["error"]


def test_verification_parses_the_target_s_sums_as_the_cutover_did() -> None:
    from migrate.stages.verify.suites.test_data import table_sums

    text = SOURCE_SUMS + "not a sums line\n"
    assert table_sums(text) == parse_table_sums(text)
    assert "public.my table" in table_sums(text)
