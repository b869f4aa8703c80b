"""The evidence runbook's cutover section shows a failed data comparison table by table:
rows and checksums of both sides, which differ, which volatile tables were left out."""

from __future__ import annotations

from migrate.stages.move import compare_tables, parse_table_sums
from migrate.stages.runbook import STAGE_TITLES, write_evidence_runbooks
from tests.runbook.story import TRANSFER_SHAPED

SOURCE = "app.sessions 10 -8123\napp.users 3 4411\napp.cache 7 12\n"
TARGET = "app.sessions 12 5512\napp.users 3 4411\napp.cache 9 13\napp.a|b 1 7\n"


def test_a_failed_cutover_shows_every_table_of_both_sides(tmp_path, example, story):
    estate, plan = example
    compared = compare_tables(parse_table_sums(SOURCE), parse_table_sums(TARGET), {"app.cache"})
    outputs = {
        "databases": {"fybj": {"source": "db1", "target": f"{TRANSFER_SHAPED}-db", **compared}},
        "error": "database fybj differs between db1 and the target after the catch-up",
        "rolled_back": {"result": "ok", "cause": "database fybj differs"}}
    entry = story.append("cutover", system=TRANSFER_SHAPED, result="failed", duration_s=70.0,
                         outputs=outputs)
    out = tmp_path / "runbooks"
    write_evidence_runbooks(estate, plan, story, out, systems=[TRANSFER_SHAPED], formats=["md"])
    text = (out / "evidence" / f"{TRANSFER_SHAPED}.md").read_text(encoding="utf-8")
    cutover = next(part for part in text.split("\n## ")
                   if part.startswith(STAGE_TITLES["cutover"]))
    failed = f"| seq {entry['seq']} (failed): fybj."
    assert (f"{failed}app.sessions | 10 rows, checksum -8123 | 12 rows, checksum 5512 | 否 no |"
            in cutover)
    assert f"{failed}app.users | 3 rows, checksum 4411 | 3 rows, checksum 4411 | 是 yes |" \
        in cutover
    assert (f"{failed}app.cache | 7 rows, checksum 12 | 9 rows, checksum 13 | "
            "not compared (volatile_tables) |") in cutover
    assert f"{failed}app.a\\|b | missing 缺失 | 1 rows, checksum 7 | 否 no |" in cutover
    assert "| fybj.public.visits | 5310 | 5310 | 是 yes |" in cutover  # the older entry's
    assert "rolled back by itself, result ok" in cutover
