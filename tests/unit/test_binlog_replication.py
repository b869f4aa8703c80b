"""MariaDB's binlog replication, its pure parts: the plan keeps a MariaDB database above
dump_restore_max_gb in step by ``binlog_replication`` (PostgreSQL's by logical replication),
the transfer's secret files hold the replication password and the mysql_native_password hash
the source stores instead, and check_prerequisites' probe names what a source lacks for it
(binlog, ROW, server_id, networking on loopback) with the system, the host and the fix."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import pytest

from migrate.core.credentials import mariadb_native_hash
from migrate.core.model import Database
from migrate.core.plan import Assumptions, database_method
from migrate.core.terms import COPY_METHOD_ZH
from migrate.stages.move.secret_files import replication_files

PROBE = (Path(__file__).resolve().parents[2]
         / "playbooks/roles/check_prerequisites/files/probe_source.py")


def database(engine: str, size_gb: float) -> Database:
    return Database.model_validate({"host": "db1", "engine": engine, "name": "shop",
                                    "size_gb": size_gb, "password": "secret://db-shop"})


@pytest.mark.parametrize(("engine", "size_gb", "method"), [
    ("mariadb", 0.5, "final_dump"),
    ("mariadb", 2, "final_dump"),            # dump_restore_max_gb itself
    ("mariadb", 2.5, "binlog_replication"),
    ("postgresql", 2, "final_dump"),
    ("postgresql", 2.5, "logical_replication"),
])
def test_each_engine_replicates_above_the_dump_threshold(engine: str, size_gb: float,
                                                         method: str) -> None:
    assert database_method(database(engine, size_gb), Assumptions()) == method


def test_the_threshold_is_the_plan_s_assumption() -> None:
    assert database_method(database("mariadb", 3), Assumptions(dump_restore_max_gb=4)) == \
        "final_dump"


def test_the_runbook_names_binlog_replication_in_chinese() -> None:
    assert COPY_METHOD_ZH["binlog_replication"] == "主从复制（binlog）"


def test_the_mysql_native_password_hash_is_mariadb_s() -> None:
    # SELECT PASSWORD('password') on MariaDB 10.11
    assert mariadb_native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def system(method: str) -> dict:
    return {"id": "swj-shop", "data": {"databases": [{"name": "shop", "method": method}]}}


def test_a_replicated_mariadb_database_gets_a_password_and_its_hash_0600(
        tmp_path: Path) -> None:
    files = replication_files(tmp_path, system("binlog_replication"))["shop"]
    password = Path(files["password_file"]).read_text().strip()
    assert len(password) >= 32
    assert Path(files["verifier_file"]).read_text().strip() == mariadb_native_hash(password)
    for key in ("password_file", "verifier_file"):
        assert stat.S_IMODE(Path(files[key]).stat().st_mode) == 0o600
    again = replication_files(tmp_path, system("binlog_replication"))["shop"]
    assert Path(again["password_file"]).read_text().strip() == password  # made once


def test_a_dumped_database_gets_no_replication_password(tmp_path: Path) -> None:
    assert replication_files(tmp_path, system("final_dump")) == {}


def load_probe():
    spec = importlib.util.spec_from_file_location("probe_source", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


READY = {"log_bin": "ON", "binlog_format": "ROW", "skip_networking": "OFF",
         "server_id": "20", "bind_address": "0.0.0.0", "version": "10.11.6-MariaDB-0+deb12u1-log"}


def test_a_source_ready_for_binlog_replication_has_no_problem() -> None:
    assert load_probe().binlog_problems(READY) == []


def test_debian_s_default_mariadb_lacks_every_setting_replication_needs() -> None:
    lacking = load_probe().binlog_problems({**READY, "log_bin": "OFF",
                                            "binlog_format": "MIXED", "server_id": "0",
                                            "bind_address": "127.0.0.1"})
    assert lacking == ["log_bin ON (is OFF)", "binlog_format ROW (is MIXED)",
                       "a non-zero server_id (is 0)"]


@pytest.mark.parametrize(("bind_address", "reached"), [
    ("127.0.0.1", True),          # Debian's default: the replication tunnel ends there
    ("0.0.0.0", True), ("*", True), ("::", True), ("", True), ("localhost", True),
    ("192.0.2.20,127.0.0.1", True),
    ("192.0.2.20", False),        # only its own address: 127.0.0.1 answers nothing
    ("::1", False),
])
def test_the_source_listens_where_the_replication_tunnel_connects(bind_address: str,
                                                                  reached: bool) -> None:
    lacking = load_probe().binlog_problems({**READY, "bind_address": bind_address})
    assert lacking == ([] if reached else [
        "bind_address admitting 127.0.0.1, where the replication tunnel reaches it "
        f"(is {bind_address})"])


def test_mysql_has_no_gtid_migrate_can_follow() -> None:
    assert load_probe().binlog_problems({**READY, "version": "8.0.36"}) == \
        ["MariaDB's GTID (the server is 8.0.36)"]


def probe_with(monkeypatch: pytest.MonkeyPatch, answer: str):
    probe = load_probe()
    calls: list[str] = []
    monkeypatch.setattr(probe, "run", lambda argv, stdin="", env=None: (
        calls.append(stdin) or (0, answer, "")))
    return probe, calls


def test_the_refusal_names_system_host_settings_and_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer = "\n".join(f"{k}\t{v}" for k, v in {**READY, "log_bin": "OFF"}.items())
    probe, _ = probe_with(monkeypatch, answer)
    problems: list[str] = []
    probe.check_binlog("swj-shop", [{"name": "shop", "method": "binlog_replication"}],
                       "shop01 (192.0.2.20)", problems)
    (problem,) = problems
    assert problem.startswith("swj-shop: MariaDB on shop01 (192.0.2.20) cannot be replicated "
                              "(binlog_replication of shop): it needs log_bin ON (is OFF)")
    assert "restart MariaDB in the department's maintenance window" in problem


def test_a_dumped_database_needs_no_binlog(monkeypatch: pytest.MonkeyPatch) -> None:
    probe, calls = probe_with(monkeypatch, "")
    problems: list[str] = []
    probe.check_binlog("swj-shop", [{"name": "shop", "method": "final_dump"}], "shop01",
                       problems)
    assert (problems, calls) == ([], [])
