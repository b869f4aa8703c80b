"""Discovery on the third-party Java application (Tomcat and MariaDB, tests/foreign/
tomcat.py): the draft manifest validates and holds what a user would otherwise hunt for by
hand, so that completing it takes minutes: the tomcat10 service and its port, the uploads
folder as files, the context file, the WAR and the driver link as configuration, the MariaDB
database with its size and user, the JDBC URL's host as a rewrite, the packages, and the
table the application wrote while discovery watched (files uploaded meanwhile) proposed as
volatile_tables. No secret of the server ends up in what discovery writes."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from migrate.core.safety import within
from migrate.rehearsal.sandbox import hostkeys
from migrate.rehearsal.sandbox.layout import upper_dir
from migrate.stages import trust
from tests.foreign import tomcat
from tests.foreign.estate import discovery_settings
from tests.foreign.tomcat import TomcatServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "fgw-xmsb"
MIGRATE_YAML = discovery_settings("发改委项目申报系统迁移上云")
# what a user still writes by hand: names, the approval, the census, health, sizes per day...
MOST_PLACEHOLDERS = 30
# discovery watches the databases this long (its default is 10 s) while files are uploaded
WATCH_S, UPLOAD_EVERY_S = 3, 0.5


@contextmanager
def uploading(server: TomcatServer) -> Iterator[list[str]]:
    """Someone uploading a file every UPLOAD_EVERY_S seconds through the application (which
    records each in its attachments table) from the first stored one (Tomcat compiles the
    page on its first request) until the block ends; the names stored, removed afterwards."""
    stored: list[str] = []
    first, done = threading.Event(), threading.Event()

    def upload() -> None:
        while not done.is_set():
            name = f"watched-{len(stored)}.txt"
            try:
                status, _ = tomcat.post(
                    server.url(f"/upload.jsp?project=XM2026-002&name={name}"),
                    b"while discovery watches")
            except OSError:  # not answering yet: tried again
                status = 0
            if status == 200:
                stored.append(name)
                first.set()
            done.wait(UPLOAD_EVERY_S)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        assert first.wait(60), "the application stored no upload"
        yield stored
    finally:
        done.set()
        uploader.join()
        server.ssh(f"rm -f {server.uploads}/watched-*.txt")
        server.sql("DELETE FROM attachments WHERE file_name LIKE 'watched-%'")


@pytest.fixture(scope="module")
def discovered(tomcat_server: TomcatServer, tmp_path_factory: pytest.TempPathFactory,
               run_cli_module) -> dict:
    estate = tmp_path_factory.mktemp("tomcat-discovery") / "estate"
    (estate / "systems").mkdir(parents=True)
    (estate / "migrate.yaml").write_text(MIGRATE_YAML, encoding="utf-8")
    key = hostkeys.host_public_key(upper_dir(tomcat_server.name, tomcat_server.root))
    result = run_cli_module("trust", estate, "--host", tomcat_server.address,
                            "--accept", trust.fingerprint_of(key.split()[1]), "--yes")
    assert result.code == 0, result.stderr
    started = time.monotonic()
    with uploading(tomcat_server):
        result = run_cli_module("discover", estate, "--system", SYSTEM, "--host",
                                tomcat_server.address, "--key", tomcat_server.access.key,
                                "--watch", str(WATCH_S), "--output", "json")
    seconds = time.monotonic() - started
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)["systems"][0]
    print(f"\nmigrate discover on the Tomcat server: {seconds:.1f} s")
    draft = yaml.safe_load(Path(outcome["draft"]).read_text(encoding="utf-8"))
    return {"estate": estate, "outcome": outcome, "draft": draft}


@pytest.fixture(scope="module")
def run_cli_module():
    """The CLI in-process for a module fixture (run_cli is per test)."""
    from migrate.cli.main import main
    from tests.conftest import CliResult

    def run(*args: object) -> CliResult:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        code = -1
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
        return CliResult(code, out.getvalue(), err.getvalue())

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CI", "true")
        yield run


def test_the_draft_validates_with_the_service_files_and_database(
        discovered: dict, tomcat_server: TomcatServer):
    outcome, draft = discovered["outcome"], discovered["draft"]
    assert outcome["draft_valid"] is True, outcome["draft_problems"]
    assert draft["source"]["hosts"] == [{"name": tomcat_server.hostname,
                                         "address": tomcat_server.address,
                                         "roles": ["web", "db"]}]
    assert [(s["unit"], s["port"]) for s in draft["workload"]["services"]] == [
        ("tomcat10.service", tomcat_server.port)]  # not mariadb: it moves as a database
    assert any(within(tomcat_server.uploads, f["path"]) for f in draft["workload"]["files"])
    assert not any(f["path"].startswith("/var/lib/mysql") for f in draft["workload"]["files"])
    [database] = draft["workload"]["databases"]
    assert (database["engine"], database["name"], database["user"]) == (
        "mariadb", tomcat_server.database, tomcat_server.user)
    assert database["size_gb"] > 0 and database["password"] == "secret://db-xmsb"


def test_the_draft_copies_what_was_deployed_by_hand_and_rewrites_the_jdbc_host(
        discovered: dict, tomcat_server: TomcatServer):
    outcome, draft = discovered["outcome"], discovered["draft"]
    host = tomcat_server.hostname
    configuration = [(c["host"], c["path"]) for c in draft["workload"]["configuration"]]
    for path in (tomcat_server.context_file, tomcat_server.war, tomcat.DRIVER_LINK,
                 tomcat.DROP_IN, tomcat.TIMER, tomcat.CLEANUP,
                 "/etc/systemd/system/xmsb-cleanup.service",
                 "/etc/systemd/system/timers.target.wants/xmsb-cleanup.timer"):
        assert (host, path) in configuration, configuration
    (instance,) = draft["target"]["instances"]
    assert draft["workload"]["rewrites"] == [
        {"host": host, "file": tomcat_server.context_file, "old": tomcat_server.address,
         "new": "${" + instance["name"] + "}"}]
    proposed = {(r["file"], r["old"]) for r in outcome["rewrites"]}
    assert ("/etc/mysql/mariadb.conf.d/60-xmsb.cnf", tomcat_server.address) in proposed
    assert {"tomcat10", "libmariadb-java"} <= set(instance["packages"]), instance["packages"]
    assert "dash" not in instance["packages"]  # tomcat10's /bin/sh: on every Debian system
    found = {(s["file"], s["key"]) for s in outcome["secrets"]}
    assert (tomcat_server.context_file, "password") in found, found
    assert not any(s["file"] in ("/etc/nsswitch.conf", "/etc/pam.d/common-password")
                   for s in outcome["secrets"]), found


def test_the_draft_says_where_the_database_is_named_and_who_may_log_in(
        discovered: dict, tomcat_server: TomcatServer):
    text = Path(discovered["outcome"]["draft"]).read_text(encoding="utf-8")
    size = next(line for line in text.splitlines() if "size_gb" in line and "tables" in line)
    assert (f"named in {tomcat_server.context_file}:5 as {tomcat_server.address}:3306"
            in size), size
    user = next(line for line in text.splitlines() if 'user: "xmsb"' in line)
    assert f"a grant names the source's address {tomcat_server.address}" in user
    document = json.loads(Path(discovered["outcome"]["path"]).read_text())
    seen = document["hosts"][0]["observed"]
    # the image's PostgreSQL is installed but not running: no databases, not a probe error
    assert seen["postgresql"] is None and document["probe_errors"] == [], document["probe_errors"]
    mariadb = {d["name"]: d for d in seen["mariadb"]["databases"]}
    assert mariadb["xmsb"]["tables"] == 2 and mariadb["xmsb"]["non_innodb_tables"] == 0


def test_the_draft_proposes_the_table_written_while_discovery_watched(
        discovered: dict, tomcat_server: TomcatServer):
    outcome, draft = discovered["outcome"], discovered["draft"]
    host = json.loads(Path(outcome["path"]).read_text())["hosts"][0]
    seen = host["observed"]
    print(f"\nthe MariaDB probe: {host['timings_s']['mariadb']} s, its {WATCH_S} s watch: "
          f"{host['timings_s']['watch']} s")
    xmsb = next(d for d in seen["mariadb"]["databases"] if d["name"] == tomcat_server.database)
    assert xmsb["watched_s"] == WATCH_S
    [written] = xmsb["written_while_watched"]  # projects is only read
    assert written["table"] == "xmsb.attachments", xmsb["written_while_watched"]
    assert written["rows_after"] > written["rows_before"]
    text = Path(outcome["draft"]).read_text(encoding="utf-8")
    line = next(t for t in text.splitlines() if "volatile_tables" in t)
    assert line.endswith(f'volatile_tables: []  # proposal: written during a {WATCH_S} s watch '
                         'while the application served: ["xmsb.attachments"]; copy here those '
                         "it writes to answer reads (caches, sessions), not those its users "
                         "write"), line
    assert outcome["draft_valid"] is True, outcome["draft_problems"]
    assert draft["workload"]["databases"][0]["volatile_tables"] == []


def test_nothing_written_holds_the_password_and_the_user_completes_it(
        discovered: dict, tomcat_server: TomcatServer, run_cli_module):
    estate, outcome = discovered["estate"], discovered["outcome"]
    written = "\n".join(p.read_text(errors="replace") for p in (estate / ".migrate").rglob("*")
                        if p.is_file())
    assert tomcat_server.db_password_file.read_text().strip() not in written
    placeholders = json.loads(Path(outcome["path"]).read_text())["draft"]["placeholders"]
    print(f"\n{len(placeholders)} placeholders: {[p['path'] for p in placeholders]}")
    assert len(placeholders) <= MOST_PLACEHOLDERS
    shutil.copy(outcome["draft"], estate / "systems" / f"{SYSTEM}.yaml")
    result = run_cli_module("validate", estate)
    assert result.code == 0, result.stderr
