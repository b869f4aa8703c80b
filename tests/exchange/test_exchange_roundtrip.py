"""Data exchange round trip, reverse probe and persistence across a restart."""

from __future__ import annotations

import hashlib
import http.server
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeClient, ExchangeHTTPError, ExchangeUnreachable

HEALTH_BODY = "ok: 社会保险查询系统".encode()


class HealthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, HEALTH_BODY) if self.path == "/health" else (503, b"down")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[Callable[..., str]]:
    """Start small HTTP(S) servers on loopback; returns their base URLs."""
    started: list[tuple[http.server.HTTPServer, threading.Thread]] = []

    def start(context: ssl.SSLContext | None = None) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        scheme = "https" if context else "http"
        host = "localhost" if context else "127.0.0.1"
        return f"{scheme}://{host}:{server.server_address[1]}"

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def linked_resource(server, enrolled, make_resource):
    app = enrolled(server)
    doc = make_resource()
    assert app.client.put_resource(doc)["state"] == "linked"
    return app, doc["code"]


def test_publish_and_read_back(auto_server, enrolled, make_resource) -> None:
    app, code = linked_resource(auto_server, enrolled, make_resource)
    payload = {"姓名": "张三", "缴费月数": 36, "nested": [1, 2.5, None, True]}
    before = time.time()
    published = app.client.publish_record(code, payload)
    record = app.client.read_record(code, published["id"])
    after = time.time()
    assert record["payload"] == payload
    assert record["resource_code"] == code
    assert before - 1 <= published["received_at"] <= record["served_at"] <= after + 1


def test_round_trip_latency_on_loopback(auto_server, enrolled, make_resource) -> None:
    app, code = linked_resource(auto_server, enrolled, make_resource)
    trips = [app.client.round_trip(code) for _ in range(50)]
    assert all(trip.payload_matches for trip in trips)
    assert len({trip.record_id for trip in trips}) == 50
    median = statistics.median(trip.total_ms for trip in trips)
    print(f"\nexchange round trip on loopback: median {median:.2f} ms over 50")
    assert 0 < median < 500


def test_records_are_private_to_the_resource_owner(auto_server, enrolled, make_resource) -> None:
    app, code = linked_resource(auto_server, enrolled, make_resource)
    record_id = app.client.publish_record(code, {"a": 1})["id"]
    other = enrolled(auto_server)
    with pytest.raises(ExchangeHTTPError) as caught:
        other.client.read_record(code, record_id)
    assert caught.value.status == 404
    with pytest.raises(ExchangeHTTPError, match="record_not_found"):
        app.client.read_record(code, "0" * 32)


def test_reverse_probe_of_a_healthy_system(auto_server, enrolled, health_server) -> None:
    app = enrolled(auto_server, base_url=health_server())
    result = app.client.probe_system(app.system_id)
    assert result["ok"] is True
    assert result["status"] == 200
    assert result["body_sha256"] == hashlib.sha256(HEALTH_BODY).hexdigest()
    assert result["body_bytes"] == len(HEALTH_BODY)
    assert result["latency_ms"] > 0
    assert app.client.get_system(app.system_id)["last_probe"]["ok"] is True


def test_reverse_probe_reports_an_unhealthy_status(auto_server, enrolled, health_server) -> None:
    app = enrolled(auto_server, base_url=health_server())
    app.client.register_system(
        app.system_id,
        name="x",
        department_code="rsj",
        department_name="x",
        base_url=health_server(),
        health_path="/not-health",
    )
    result = app.client.probe_system(app.system_id)
    assert (result["ok"], result["status"]) == (False, 503)
    assert "503" in result["error"]


def test_reverse_probe_of_a_closed_port_fails_fast(auto_server, enrolled) -> None:
    app = enrolled(auto_server, base_url=f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    result = app.client.probe_system(app.system_id)
    assert time.monotonic() - started < 3
    assert result["ok"] is False and result["status"] is None
    assert "refused" in result["error"].lower()
    assert app.client.get_system(app.system_id)["last_probe"]["ok"] is False


def test_reverse_probe_of_a_silent_server_times_out(auto_server, enrolled, silent_listener) -> None:
    app = enrolled(auto_server, base_url=f"http://127.0.0.1:{silent_listener}")
    started = time.monotonic()
    result = app.client.probe_system(app.system_id)  # the platform's probe timeout is 1 s
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 4
    assert result["ok"] is False
    assert "timed out" in result["error"]


def https_context(sandbox_pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sandbox_pki.server_cert, sandbox_pki.server_key)
    return context


def test_reverse_probe_verifies_https(
    auto_server, review_server, enrolled, health_server, sandbox_pki
) -> None:
    base_url = health_server(https_context(sandbox_pki))
    trusting = enrolled(auto_server, base_url=base_url)  # started with --probe-ca-bundle
    assert trusting.client.probe_system(trusting.system_id)["ok"] is True

    untrusting = enrolled(review_server, base_url=base_url)  # system CAs only
    result = untrusting.client.probe_system(untrusting.system_id)
    assert result["ok"] is False
    assert "TLS verification failed" in result["error"]


def test_probe_refuses_addresses_outside_allowed_networks(
    start_server, enrolled, health_server
) -> None:
    server = start_server(extra_args=("--probe-allow-network", "198.51.100.0/24"))
    app = enrolled(server, base_url=health_server())
    result = app.client.probe_system(app.system_id)
    assert result["ok"] is False
    assert "outside the networks" in result["error"]


def test_registrations_survive_a_restart(
    start_server, enrolled, make_resource, tmp_path: Path
) -> None:
    db = tmp_path / "persist.db"
    first = start_server(db=db, auto_approve=False)
    app = enrolled(first)
    doc = make_resource()
    app.client.put_resource(doc)
    app.client.close()
    first.stop()

    second = start_server(db=db, auto_approve=True)
    with second.app(app.app_key, app.app_secret) as client:
        assert client.whoami()["system_id"] == app.system_id
        assert client.get_system(app.system_id)["name"] == "社会保险查询系统"
        assert client.get_resource(doc["code"])["state"] == "pending_review"
        with second.admin() as admin:
            assert app.app_key in [entry["app_key"] for entry in admin.list_apps()]
            admin.approve_resource(doc["code"])
        trip = client.round_trip(doc["code"])
        assert trip.payload_matches


def test_concurrent_clients_are_served(auto_server, enrolled, make_resource) -> None:
    apps = [linked_resource(auto_server, enrolled, make_resource) for _ in range(4)]
    failures: list[BaseException] = []

    def exchange(app, code: str) -> None:
        try:
            with auto_server.app(app.app_key, app.app_secret) as client:
                for _ in range(10):
                    assert client.round_trip(code).payload_matches
                    client.put_resource(make_resource(code=code))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=exchange, args=pair) for pair in apps * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)


def test_client_gives_up_on_a_silent_or_closed_platform(silent_listener, sandbox_pki) -> None:
    silent = ExchangeClient(
        f"https://localhost:{silent_listener}", ca_bundle=str(sandbox_pki.ca_cert), timeout=1
    )
    started = time.monotonic()
    with silent, pytest.raises(ExchangeUnreachable, match="did not answer"):
        silent.health()
    assert time.monotonic() - started < 4
    closed = ExchangeClient(
        f"https://localhost:{closed_port()}", ca_bundle=str(sandbox_pki.ca_cert)
    )
    with closed, pytest.raises(ExchangeUnreachable, match="cannot reach"):
        closed.health()
