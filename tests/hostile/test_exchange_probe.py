"""The platform's reverse probe cannot be pointed elsewhere, and malformed requests get 400.

Servers run as processes on loopback with real HTTPS, as in tests/exchange. The rebinding
case starts the server through a small driver that gives it a DNS answering 127.0.0.1 to the
first lookup of a name and 127.0.0.2 to every later one, both through the server's resolver
and through ``socket.getaddrinfo``; listeners on both addresses show where the probe went.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import secrets
import selectors
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeClient, ExchangeHTTPError, signed_headers
from migrate.rehearsal.exchange import pki

REPO = Path(__file__).resolve().parents[2]
NAME = "rebind.example"
VETTED, REBOUND = "127.0.0.1", "127.0.0.2"

DRIVER = f'''
import socket, sys
from migrate.rehearsal.exchange import server

real_getaddrinfo = socket.getaddrinfo
lookups = []


def answer():
    lookups.append(1)
    return {VETTED!r} if len(lookups) == 1 else {REBOUND!r}


def getaddrinfo(host, port, *args, **kwargs):
    return real_getaddrinfo(answer() if host == {NAME!r} else host, port, *args, **kwargs)


def resolver(host, port):
    return [info[4][0] for info in getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


real_build = server.build_server


def build(options):
    built = real_build(options)
    built.platform.config.resolver = resolver
    return built


socket.getaddrinfo = getaddrinfo
server.build_server = build
raise SystemExit(server.main(sys.argv[1:]))
'''


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    name_cert: Path  # for NAME, served by the probed listeners
    name_key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = pki.ensure_ca(folder / "ca.pem", folder / "ca.key")
    server = pki.ensure_server_cert(ca, folder / "server.pem", folder / "server.key",
                                    dns_names=["localhost"], ip_addresses=[VETTED])
    named = pki.ensure_server_cert(ca, folder / "name.pem", folder / "name.key",
                                   dns_names=[NAME], ip_addresses=[])
    return Pki(ca.cert_path, server.cert_path, server.key_path, named.cert_path, named.key_path)


@dataclass
class Platform:
    process: subprocess.Popen
    port: int
    log: Path
    ca: Path
    token: str = field(repr=False)

    def client(self, **credentials: str) -> ExchangeClient:
        return ExchangeClient(f"https://localhost:{self.port}", ca_bundle=str(self.ca),
                              **credentials)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def platform(tmp_path: Path, certs: Pki) -> Iterator[Callable[..., Platform]]:
    started: list[Platform] = []

    def start(*extra: str, rebinding: bool = False) -> Platform:
        token = secrets.token_urlsafe(24)
        token_file = tmp_path / f"admin-{len(started)}.token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        command = [str(driver)] if rebinding else ["-m", "migrate.rehearsal.exchange.server"]
        log = tmp_path / f"server-{len(started)}.log"
        args = [sys.executable, *command, "--listen", f"{VETTED}:0",
                "--db", str(tmp_path / f"exchange-{len(started)}.db"),
                "--cert", str(certs.cert), "--key", str(certs.key),
                "--admin-token-file", str(token_file), "--probe-timeout", "2",
                "--probe-ca-bundle", str(certs.ca), *extra]
        with open(log, "wb") as log_handle:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_handle,
                                       stdin=subprocess.DEVNULL, cwd=REPO,
                                       env={**os.environ, "PYTHONPATH": str(REPO)})
        running = Platform(process, 0, log, certs.ca, token)
        started.append(running)
        running.port = listening_port(process, log)
        return running

    yield start
    for running in started:
        running.stop()


def listening_port(process: subprocess.Popen, log: Path) -> int:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=15):
            raise AssertionError(f"the server did not start: {log.read_text()}")
    line = process.stdout.readline()
    assert line, f"the server exited: {log.read_text()}"
    return json.loads(line)["port"]


@dataclass
class Enrolled:
    system_id: str
    client: ExchangeClient
    app_key: str
    secret: str = field(repr=False)


def enroll(running: Platform, base_url: str) -> Enrolled:
    system_id = f"sys-{secrets.token_hex(5)}"
    with running.client(admin_token=running.token) as admin:
        created = admin.create_app(system_id, name="hostile")
    client = running.client(app_key=created["app_key"], app_secret=created["app_secret"])
    client.register_system(system_id, name="社会保险查询系统", department_code="rsj",
                           department_name="市人力资源和社会保障局", base_url=base_url,
                           health_path="/health")
    return Enrolled(system_id, client, created["app_key"], created["app_secret"])


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP(S) listener that records every TCP connection and request it gets."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext | None) -> None:
        self.connections: list[str] = []
        self.hosts: list[str] = []
        super().__init__(address, RecordingHandler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def verify_request(self, request: object, client_address: tuple[str, int]) -> bool:
        self.connections.append(client_address[0])
        return True


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        self.server.hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listeners(certs: Pki) -> Iterator[Callable[[bool], tuple[Recorder, Recorder]]]:
    """One listener on the vetted address and one on the rebound address, same port."""
    started: list[tuple[Recorder, threading.Thread]] = []

    def start(tls: bool) -> tuple[Recorder, Recorder]:
        context = None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certs.name_cert, certs.name_key)
        vetted = Recorder((VETTED, 0), context)
        rebound = Recorder((REBOUND, vetted.server_address[1]), context)
        for recorder in (vetted, rebound):
            thread = threading.Thread(target=recorder.serve_forever, daemon=True)
            thread.start()
            started.append((recorder, thread))
        return vetted, rebound

    yield start
    for recorder, thread in started:
        recorder.shutdown()
        recorder.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_probe_connects_to_the_address_it_vetted(platform, listeners, scheme: str) -> None:
    vetted, rebound = listeners(scheme == "https")
    port = vetted.server_address[1]
    running = platform("--probe-allow-network", f"{VETTED}/32", rebinding=True)
    app = enroll(running, f"{scheme}://{NAME}:{port}")
    with app.client:
        result = app.client.probe_system(app.system_id)
    assert rebound.connections == [], "the probe went to the address of a second lookup"
    assert result["ok"] is True, result
    assert vetted.connections == [VETTED]
    assert vetted.hosts == [f"{NAME}:{port}"]  # and TLS verified the certificate of NAME


def test_probe_is_refused_without_an_allow_list(platform, listeners) -> None:
    vetted, _ = listeners(False)
    running = platform()
    app = enroll(running, f"http://{VETTED}:{vetted.server_address[1]}")
    with app.client, pytest.raises(ExchangeHTTPError) as caught:
        app.client.probe_system(app.system_id)
    assert (caught.value.status, caught.value.code) == (503, "probe_not_configured")
    assert "--probe-allow-network" in caught.value.message
    assert vetted.connections == []


def send(running: Platform, method: str, target: str, headers: list[tuple[str, str | bytes]],
         body: bytes = b"") -> tuple[int, dict]:
    """One request with exactly these header lines, repeated or not ASCII as given."""
    context = ssl.create_default_context(cafile=str(running.ca))
    connection = http.client.HTTPSConnection("localhost", running.port, context=context,
                                             timeout=10)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


WHOAMI = "/api/v1/whoami"


def signed(app: Enrolled, method: str, path: str, body: bytes = b"",
           **changes: str | bytes) -> list[tuple[str, str | bytes]]:
    headers = {**signed_headers(app.app_key, app.secret, method, path, body), **changes}
    return [*headers.items(), ("Content-Length", str(len(body)))]


def malformed_headers(app: Enrolled) -> dict[str, list[tuple[str, str | bytes]]]:
    good = signed(app, "GET", WHOAMI)
    return {
        "5,000-digit X-Timestamp": signed(app, "GET", WHOAMI, **{"X-Timestamp": "9" * 5000}),
        "X-Timestamp of other digits": signed(
            app, "GET", WHOAMI, **{"X-Timestamp": "١٧٩٥٦٠٠٠٠٠".encode()}),
        "X-Signature not ASCII": signed(app, "GET", WHOAMI, **{"X-Signature": "é".encode()}),
        "X-Timestamp twice": [*good, ("X-Timestamp", "1")],
        "Content-Length twice": [*good, ("Content-Length", "5")],
        "5,000-digit Content-Length": [*good[:-1], ("Content-Length", "1" + "0" * 4999)],
    }


def test_malformed_headers_are_a_400(platform) -> None:
    running = platform("--probe-allow-network", f"{VETTED}/32")
    app = enroll(running, f"http://{VETTED}:9")
    app.client.close()  # raw requests from here on
    answers = {case: send(running, "GET", WHOAMI, headers)
               for case, headers in malformed_headers(app).items()}
    wrong = {case: answer for case, answer in answers.items()
             if answer[0] not in (400, 413) or set(answer[1]["error"]) - {"code", "message"}}
    assert not wrong, wrong
    assert answers["5,000-digit X-Timestamp"][1]["error"]["code"] == "invalid_header"
    assert answers["5,000-digit Content-Length"][0] == 413
    assert send(running, "GET", WHOAMI, signed(app, "GET", WHOAMI))[0] == 200
    assert "Traceback" not in running.log.read_text()


MALFORMED_BODIES = {
    "5,000-digit integer": b'{"name": 1' + b"0" * 5000 + b"}",
    "lone surrogate": b'{"name": "\\ud800"}',
    "NaN": b'{"name": NaN}',
    "number out of range": b'{"name": 1e999}',
    "repeated key": b'{"name": "a", "name": "b"}',
    "nesting too deep": b"[" * 100_000 + b"]" * 100_000,
}


def test_malformed_bodies_are_a_400(platform) -> None:
    running = platform("--probe-allow-network", f"{VETTED}/32")
    app = enroll(running, f"http://{VETTED}:9")
    app.client.close()  # raw requests from here on
    path = f"/api/v1/systems/{app.system_id}"
    answers = {case: send(running, "PUT", path, signed(app, "PUT", path, body), body)
               for case, body in MALFORMED_BODIES.items()}
    wrong = {case: answer for case, answer in answers.items()
             if (answer[0], answer[1]["error"]["code"]) != (400, "invalid_json")}
    assert not wrong, wrong
    bad_url = json.dumps({"name": "x", "department": {"code": "rsj", "name": "x"},
                          "base_url": "http://[::1"}).encode()
    status, answer = send(running, "PUT", path, signed(app, "PUT", path, bad_url), bad_url)
    assert (status, answer["error"]["code"]) == (422, "invalid_request")
    assert "Traceback" not in running.log.read_text()


def test_http_level_refusals_keep_the_error_shape(platform) -> None:
    running = platform("--probe-allow-network", f"{VETTED}/32")
    status, answer = send(running, "GET", WHOAMI, [("X-Long", "x" * 70_000)])
    assert (status, answer["error"]["code"]) == (431, "request_header_fields_too_large")
    status, answer = send(running, "PATCH", WHOAMI, [])
    assert (status, answer["error"]["code"]) == (501, "not_implemented")
