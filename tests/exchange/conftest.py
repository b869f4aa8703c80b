"""Fixtures for the exchange platform tests: a real CA, real HTTPS servers on loopback.

Every server is a separate process on an ephemeral port, stopped by its own pid in a
finalizer. Nothing here needs root or leaves the host.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import selectors
import ssl
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeClient
from migrate.rehearsal.exchange import pki

REPO = Path(__file__).resolve().parents[2]
SERVER_PY = REPO / "migrate" / "rehearsal" / "exchange" / "server.py"
CLIENT_PY = REPO / "migrate" / "adapters" / "exchange.py"
START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path  # a CA that did not sign the server: verification must fail


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    db: Path
    log: Path
    admin_token: str = field(repr=False)
    ca_cert: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def admin(self) -> ExchangeClient:
        return ExchangeClient(self.url, ca_bundle=str(self.ca_cert), admin_token=self.admin_token)

    def app(self, app_key: str, app_secret: str) -> ExchangeClient:
        return ExchangeClient(
            self.url, ca_bundle=str(self.ca_cert), app_key=app_key, app_secret=app_secret
        )

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


@pytest.fixture(scope="session")
def sandbox_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = pki.ensure_ca(folder / "exchange-ca.pem", folder / "ca.key")
    server = pki.ensure_server_cert(
        ca,
        folder / "server.pem",
        folder / "server.key",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    other = pki.make_ca(folder / "other-ca.pem", folder / "other-ca.key", common_name="other CA")
    return Pki(ca.cert_path, server.cert_path, server.key_path, other.cert_path)


def read_listening_line(process: subprocess.Popen, log: Path) -> dict:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout=START_TIMEOUT):
            raise AssertionError(f"server did not start in {START_TIMEOUT} s: {log.read_text()}")
    finally:
        selector.close()
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise AssertionError(f"server exited {process.returncode}: {log.read_text()}")
    return json.loads(line)


def launch(
    command: list[str],
    workdir: Path,
    sandbox_pki: Pki,
    *,
    db: Path | None = None,
    auto_approve: bool = False,
    extra_args: tuple[str, ...] = (),
) -> RunningServer:
    token = secrets.token_urlsafe(24)
    token_file = write_private(workdir / f"admin-{uuid.uuid4().hex[:6]}.token", token)
    db = db or workdir / "exchange.db"
    log = workdir / f"server-{uuid.uuid4().hex[:6]}.log"
    args = [
        *command,
        "--listen", "127.0.0.1:0",
        "--db", str(db),
        "--cert", str(sandbox_pki.server_cert),
        "--key", str(sandbox_pki.server_key),
        "--admin-token-file", str(token_file),
        *(["--auto-approve"] if auto_approve else []),
        *extra_args,
    ]  # fmt: skip
    with open(log, "wb") as log_handle:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log_handle, stdin=subprocess.DEVNULL, cwd=workdir
        )
    running = RunningServer(process, 0, db, log, token, sandbox_pki.ca_cert)
    try:
        running.port = read_listening_line(process, log)["port"]
    except BaseException:
        running.stop()
        raise
    return running


MODULE_COMMAND = [sys.executable, "-m", "migrate.rehearsal.exchange.server"]
# Without an allow-list the platform refuses every probe; these tests probe on loopback.
PROBE_LOOPBACK = ("--probe-allow-network", "127.0.0.0/8")


@pytest.fixture
def start_server(tmp_path: Path, sandbox_pki: Pki) -> Iterator[Callable[..., RunningServer]]:
    """Start servers (module form unless ``command`` is given); all stopped at teardown."""
    started: list[RunningServer] = []

    def start(command: list[str] | None = None, **options) -> RunningServer:
        server = launch(command or MODULE_COMMAND, tmp_path, sandbox_pki, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def shared_server(
    tmp_path_factory: pytest.TempPathFactory, sandbox_pki: Pki, name: str, **options
) -> Iterator[RunningServer]:
    server = launch(MODULE_COMMAND, tmp_path_factory.mktemp(name), sandbox_pki, **options)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auto_server(
    tmp_path_factory: pytest.TempPathFactory, sandbox_pki: Pki
) -> Iterator[RunningServer]:
    """Sandbox default: auto-approve on; probes trust the sandbox CA and time out in 1 s."""
    yield from shared_server(
        tmp_path_factory,
        sandbox_pki,
        "auto",
        auto_approve=True,
        extra_args=(
            "--probe-timeout", "1", "--probe-ca-bundle", str(sandbox_pki.ca_cert), *PROBE_LOOPBACK
        ),
    )


@pytest.fixture(scope="session")
def review_server(
    tmp_path_factory: pytest.TempPathFactory, sandbox_pki: Pki
) -> Iterator[RunningServer]:
    """Manual review: resources wait in 待审核 until an admin approves them."""
    yield from shared_server(
        tmp_path_factory, sandbox_pki, "review", auto_approve=False, extra_args=PROBE_LOOPBACK
    )


@dataclass
class Enrolled:
    """An app with its system registered, as a system would be after 接入登记."""

    system_id: str
    app_key: str
    app_secret: str = field(repr=False)
    client: ExchangeClient


def new_system_id() -> str:
    return f"sys-{uuid.uuid4().hex[:10]}"


def enroll(server: RunningServer, base_url: str = "http://127.0.0.1:9") -> Enrolled:
    system_id = new_system_id()
    with server.admin() as admin:
        created = admin.create_app(system_id, name="测试系统")
    client = server.app(created["app_key"], created["app_secret"])
    client.register_system(
        system_id,
        name="社会保险查询系统",
        department_code="rsj",
        department_name="市人力资源和社会保障局",
        base_url=base_url,
        health_path="/health",
    )
    return Enrolled(system_id, created["app_key"], created["app_secret"], client)


@pytest.fixture
def enrolled() -> Iterator[Callable[..., Enrolled]]:
    made: list[Enrolled] = []

    def make(server: RunningServer, base_url: str = "http://127.0.0.1:9") -> Enrolled:
        item = enroll(server, base_url)
        made.append(item)
        return item

    yield make
    for item in made:
        item.client.close()


def resource_doc(code: str | None = None, **changes) -> dict:
    """A catalogue entry shaped like MANIFEST.md's ``exchange.resources`` items."""
    doc = {
        "code": code or f"3/110/{secrets.randbelow(1000):03d}/{secrets.randbelow(10000):04d}",
        "name": "社会保险参保缴费信息",
        "summary": "参保人员的参保状态与缴费记录",
        "format": "service_api",
        "share_type": "conditional",
        "share_condition": "仅限人社、民政、医保部门办理业务时使用",
        "open_type": "none",
        "update_cycle": "daily",
        "interface": {"service": "sbcx-web", "path": "/api/insured"},
        "items": [{"name": "姓名", "type": "string"}, {"name": "缴费月数", "type": "integer"}],
    }
    doc.update(changes)
    return doc


@pytest.fixture
def make_resource() -> Callable[..., dict]:
    return resource_doc


def raw_request(
    server: RunningServer,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
) -> tuple[int, dict]:
    """One request with exactly these headers (for signature and replay tests)."""
    context = ssl.create_default_context(cafile=str(server.ca_cert))
    connection = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture
def send_raw() -> Callable[..., tuple[int, dict]]:
    return raw_request
