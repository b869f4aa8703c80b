"""The source's replication account of a replicated database: one per system and database
(two databases on one source host, of one system or of two, never share one, nor its
password), made once in Python from a digest of the two names and handed to the plays with the
password files; the scripts take no other name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrate.core.model import SYSTEM_ID_PATTERN
from migrate.stages.move.secret_files import replication_account, replication_files

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "playbooks/files/move.sh", ROOT / "playbooks/files/move_mariadb.sh"]
# An unquoted name both engines take: PostgreSQL's 63 bytes, MariaDB's 80 characters (and
# MySQL's 32).
PORTABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
HOSTILE_DB = "shop'; DROP ROLE postgres; --\n`x` \"y\" %_/.."


def test_the_account_is_stable() -> None:
    assert replication_account("swj-shop", "shop") == replication_account("swj-shop", "shop")
    # pinned: a transfer, its cutover and its decommission months apart name one account
    assert replication_account("swj-shop", "shop") == "migrate_repl_a278de5795e5ac40"


def test_two_databases_of_one_system_get_two_accounts() -> None:
    assert replication_account("swj-shop", "shop") != replication_account("swj-shop", "orders")


def test_one_database_name_in_two_systems_gets_two_accounts() -> None:
    assert replication_account("swj-shop", "shop") != replication_account("swj-mall", "shop")
    # "system/database": a system id holds no "/", so the pair is not ambiguous
    assert not re.fullmatch(SYSTEM_ID_PATTERN, "swj/shop")
    assert replication_account("swj-a", "b/c") != replication_account("swj-a-b", "c")


@pytest.mark.parametrize("database", ["shop", HOSTILE_DB, "migrate_replicator", "x" * 200, ""])
def test_the_account_is_a_name_both_engines_take_and_holds_neither_name(database: str) -> None:
    account = replication_account("swj-shop", database)
    assert PORTABLE_NAME.fullmatch(account), account
    assert len(account.encode()) <= 32
    assert "swj" not in account and "shop" not in account
    assert account != "migrate_replicator"  # never an earlier version's shared account


def test_the_scripts_take_exactly_the_names_python_makes() -> None:
    account = replication_account("swj-shop", HOSTILE_DB)
    for script in SCRIPTS:
        patterns = re.findall(r'=~ \^(migrate_repl_[^ ]*)\$ \]\]', script.read_text())
        assert patterns == ["migrate_repl_[0-9a-f]{16}"], script.name
        assert re.fullmatch(patterns[0], account)


def test_each_replicated_database_gets_its_own_account_with_its_files(tmp_path: Path) -> None:
    system = {"id": "swj-shop", "data": {"databases": [
        {"name": "shop", "method": "logical_replication"},
        {"name": "orders", "method": "logical_replication"},
        {"name": "stock", "method": "binlog_replication"},
        {"name": "logs", "method": "final_dump"}]}}
    found = replication_files(tmp_path, system)
    assert sorted(found) == ["orders", "shop", "stock"]
    for name, files in found.items():
        assert files["account"] == replication_account("swj-shop", name)
        assert set(files) == {"account", "password_file", "verifier_file"}
    assert len({files["account"] for files in found.values()}) == 3
    passwords = {Path(files["password_file"]).read_text() for files in found.values()}
    assert len(passwords) == 3
