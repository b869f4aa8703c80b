"""End to end on the host: a throwaway PostgreSQL cluster loaded by the generated seed
script, and the legacy application serving rsj-sbcx from it over loopback.

Needs Debian's ``postgresql`` (initdb, pg_ctl, psql) and ``python3-psycopg2``; skipped
with the package to install when they are missing. Runs as root (the cluster then belongs
to the ``postgres`` user, as on the machines) or as any other user.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.rehearsal.legacy import units
from migrate.rehearsal.legacy.seed import (
    HostSeed,
    checksum_query,
    expected_digests,
    write_into_root,
)
from tests.legacy.helpers import make_seeded_estate

pytestmark = pytest.mark.slow

PG_LIB = Path("/usr/lib/postgresql")  # Debian's: one bin/ per major version
SCALE = 64 * 1024  # 40 GB of uploads -> 2.5 MiB, 12 GB of database -> 768 KiB


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_pg_bin() -> Path:
    versions = sorted((p for p in PG_LIB.glob("*/bin") if p.parent.name.isdigit()),
                      key=lambda p: int(p.parent.name), reverse=True)
    for folder in versions:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                "install the Debian package 'postgresql' (apt-get install postgresql)")


def find_app_python() -> str:
    for candidate in ("/usr/bin/python3", sys.executable):
        probe = subprocess.run([candidate, "-c", "import psycopg2"], capture_output=True,
                               check=False)
        if probe.returncode == 0:
            return candidate
    pytest.skip("no python3 with psycopg2: install the Debian package 'python3-psycopg2'")


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a free loopback port."""

    bin: Path
    base: Path
    port: int
    owner: str | None  # run as this user (when we are root), else as ourselves

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def sockets(self) -> Path:
        return self.base / "sockets"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGHOST": str(self.sockets), "PGPORT": str(self.port),
                "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def run(self, *argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        command = ["runuser", "-u", self.owner, "--", *argv] if self.owner else list(argv)
        return subprocess.run(command, env=self.env(), capture_output=True, text=True,
                              check=check, timeout=120, **kwargs)

    def init(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-E", "UTF8", "--locale=C",
                 "--auth-local=peer", "--auth-host=scram-sha-256")

    def start(self) -> None:
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.sockets}")
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                 str(self.base / "server.log"), "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                     "stop", check=False)

    def psql(self, database: str, sql: str) -> str:
        done = self.run(str(self.bin / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                        "-d", database, "-c", sql)
        return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pg_bin = find_pg_bin()
    owner = None
    if os.geteuid() == 0:
        if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root needs the 'postgres' user (Debian package postgresql)")
        owner = "postgres"
    base = Path(tempfile.mkdtemp(prefix="legacy-pg-"))
    if owner:
        shutil.chown(base, owner)
    made = Cluster(pg_bin, base, free_port(), owner)
    made.run("mkdir", "-m", "0700", str(made.sockets))
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Stack:
    cluster: Cluster
    db_seed: HostSeed
    web_seed: HostSeed
    web_root: Path
    port: int
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get_json(self, path: str) -> tuple[int, dict]:
        status, body = self.request("GET", path)
        return status, json.loads(body)


def run_seed_script(cluster: Cluster, root: Path) -> subprocess.CompletedProcess:
    # As root the script itself switches to postgres (runuser), as on the machine.
    return subprocess.run(["bash", str(root / units.SEED_SCRIPT.lstrip("/"))],
                          env={**cluster.env(), "LEGACY_ROOT": str(root)},
                          capture_output=True, text=True, timeout=300, check=False)


def local_config(stack_root: Path, seed: HostSeed, cluster: Cluster, port: int) -> Path:
    """The generated config, pointed at the tmp root, the test cluster and a free port."""
    config = json.loads(seed.file("/etc/legacy/sbcx-web.json").content())
    config["listen"] = {"address": "127.0.0.1", "port": port}
    config["database"].update(host="127.0.0.1", port=cluster.port,
                              password_file=str(stack_root / "etc/legacy/secrets/db-sbcx"))
    for tree in config["files"]:
        tree["root"] = str(stack_root / tree["root"].lstrip("/"))
    path = stack_root / "etc/legacy/sbcx-web.local.json"
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return path


def wait_until_serving(stack: Stack, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"app.py exited: {stack.log.read_text()[-2000:]}")
        try:
            stack.request("GET", "/health")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("app.py did not answer within 15 s")


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    python = find_app_python()
    base = tmp_path_factory.mktemp("legacy-stack")
    estate = make_seeded_estate(base)
    seeds = estate.seeds("rsj-sbcx", scale=SCALE)
    db_root, web_root = base / "db1", base / "web1"
    write_into_root(seeds["db1"], db_root)
    write_into_root(seeds["web1"], web_root)
    seeded = run_seed_script(cluster, db_root)
    assert seeded.returncode == 0, seeded.stderr
    assert "loaded with data set" in seeded.stdout
    port = free_port()
    config = local_config(web_root, seeds["web1"], cluster, port)
    log = base / "app.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([python, str(web_root / "opt/legacy/app.py"), "--config",
                                    str(config)], stdout=log_file, stderr=log_file)
    made = Stack(cluster, seeds["db1"], seeds["web1"], web_root, port, process, log)
    try:
        wait_until_serving(made)
        yield made
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def median_ms(stack: Stack, path: str, times: int = 50) -> float:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        status, _ = stack.request("GET", path)
        took.append((time.perf_counter() - started) * 1000)
        assert status == 200
    return statistics.median(took)


def test_health_reports_database_and_files(stack: Stack) -> None:
    status, health = stack.get_json("/health")
    assert status == 200
    assert health == {"status": "ok", "system": {"id": "rsj-sbcx", "name": "社会保险查询系统"},
                      "service": "sbcx-web", "database": "ok", "files": "ok",
                      "read_only": False}


def test_health_is_an_error_while_tables_are_missing(stack: Stack) -> None:
    stack.cluster.psql("sbcx", 'ALTER TABLE "insured" RENAME TO "insured_loading"')
    try:
        status, health = stack.get_json("/health")
        assert status == 503 and health["database"] == "error"
        status, body = stack.request("GET", "/api/insured")
        assert status == 503 and json.loads(body)["error"] == "not_ready"
    finally:
        stack.cluster.psql("sbcx", 'ALTER TABLE "insured_loading" RENAME TO "insured"')
    assert stack.get_json("/health")[1]["database"] == "ok"


def test_api_pages_are_stable_and_complete(stack: Stack) -> None:
    expected = expected_digests(stack.db_seed)["tables"]["sbcx.insured"]
    first = stack.request("GET", "/api/insured?limit=50&offset=100")
    second = stack.request("GET", "/api/insured?limit=50&offset=100")
    assert first[0] == 200 and first == second  # same data, same bytes
    page = json.loads(first[1])
    assert page["total"] == expected["rows"] and len(page["items"]) == 50
    assert [item["id"] for item in page["items"]] == list(range(101, 151))
    ids, offset = [], 0
    while True:
        status, chunk = stack.get_json(f"/api/insured?limit=1000&offset={offset}")
        assert status == 200
        if not chunk["items"]:
            break
        ids += [item["id"] for item in chunk["items"]]
        offset += 1000
    assert ids == list(range(1, expected["rows"] + 1))
    assert stack.request("GET", "/api/insured?limit=0")[0] == 400
    assert stack.request("GET", "/api/insured?limit=abc")[0] == 400


def test_single_row_equals_the_generated_row(stack: Stack) -> None:
    table = next(t for t in stack.db_seed.databases[0].tables if t.name == "insured")
    generated = table.rows[41]
    status, row = stack.get_json("/api/insured/42")
    assert status == 200
    assert row == {"id": 42, "姓名": generated[1], "缴费月数": int(generated[2])}
    assert stack.request("GET", "/api/insured/999999999")[0] == 404
    assert stack.request("GET", "/api/unknown")[0] == 404


def test_file_listing_matches_expected_digests(stack: Stack) -> None:
    expected = expected_digests(stack.web_seed)["files"]
    status, listing = stack.get_json("/files?manifest=1")
    assert status == 200
    local_prefix = str(stack.web_root)
    served = {e["path"][len(local_prefix):]: e["sha256"] for e in listing["files"]}
    assert served == expected
    entry = listing["files"][3]
    status, body = stack.request("GET", "/files/" + entry["name"])
    assert status == 200 and hashlib.sha256(body).hexdigest() == entry["sha256"]
    for escape in ("/files/uploads/../../../etc/passwd", "/files/uploads/%2e%2e/%2e%2e/x",
                   "/files/other/a", "/files/uploads//etc/passwd"):
        assert stack.request("GET", escape)[0] in (400, 404), escape


def test_database_checksums_match_expected_digests(stack: Stack) -> None:
    expected = expected_digests(stack.db_seed)["tables"]
    assert set(expected) == {"sbcx.insured", "sbcx.legacy_records"}
    for key, digest in expected.items():
        rows, checksum = stack.cluster.psql("sbcx", checksum_query(key.split(".", 1)[1])) \
            .split("|")
        assert (int(rows), checksum) == (digest["rows"], digest["checksum"]), key


def test_seed_script_is_idempotent(stack: Stack) -> None:
    again = run_seed_script(stack.cluster, stack.web_root.parent / "db1")
    assert again.returncode == 0, again.stderr
    assert "already holds data set" in again.stdout
    rows = expected_digests(stack.db_seed)["tables"]["sbcx.insured"]["rows"]
    assert stack.cluster.psql("sbcx", 'SELECT count(*) FROM "insured"') == str(rows)


def test_latency_on_loopback(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    health = median_ms(stack, "/health")
    page = median_ms(stack, "/api/insured?limit=50&offset=0")
    with capsys.disabled():
        print(f"\nlegacy app latency (median of 50): /health {health:.2f} ms, "
              f"/api/insured page of 50 {page:.2f} ms")
    assert health < 500 and page < 500


def test_writes_then_read_only_then_database_down(stack: Stack) -> None:
    total = stack.get_json("/api/insured")[1]["total"]
    try:
        write_then_read_only_then_database_down(stack, total)
    finally:  # the module's other tests share the cluster and its rows, in any order
        if not (stack.cluster.data / "postmaster.pid").exists():
            stack.cluster.start()
        stack.cluster.psql("postgres", "ALTER DATABASE sbcx RESET default_transaction_read_only")
        stack.cluster.psql("sbcx", f"DELETE FROM insured WHERE id > {int(total)}")
    assert health_comes_back(stack), "the app did not serve again once its database was back"


def write_then_read_only_then_database_down(stack: Stack, total: int) -> None:
    status, body = stack.request("POST", "/api/insured", {"姓名": "测试员", "缴费月数": 7})
    assert status == 201, body
    row = json.loads(body)
    assert row["姓名"] == "测试员" and row["id"] == total + 1
    assert stack.get_json(f"/api/insured/{row['id']}")[1] == row
    assert stack.request("POST", "/api/insured", {"不存在": 1})[0] == 400
    assert stack.request("POST", "/api/insured", {"缴费月数": "many"})[0] == 400

    read_only_then_database_down(stack, total)


def health_comes_back(stack: Stack, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, health = stack.get_json("/health")
        if status == 200 and health["status"] == "ok":
            return True
        time.sleep(0.1)
    return False


def read_only_then_database_down(stack: Stack, total: int) -> None:
    stack.cluster.psql("postgres", "ALTER DATABASE sbcx SET default_transaction_read_only = on")
    status, health = stack.get_json("/health")
    assert status == 200 and health["status"] == "read_only" and health["read_only"] is True
    status, body = stack.request("POST", "/api/insured", {"姓名": "冻结后", "缴费月数": 1})
    assert status == 503 and json.loads(body)["error"] == "read_only"
    assert stack.get_json("/api/insured")[1]["total"] == total + 1  # reads still work

    stack.cluster.stop()
    status, health = stack.get_json("/health")
    assert status == 503 and health["database"] == "error" and health["status"] == "error"
    assert stack.request("GET", "/api/insured")[0] == 503
    log = stack.log.read_text(encoding="utf-8")
    password = (stack.web_root / "etc/legacy/secrets/db-sbcx").read_text()
    assert password not in log
    assert all(json.loads(line)["event"] for line in log.splitlines() if line.strip())
