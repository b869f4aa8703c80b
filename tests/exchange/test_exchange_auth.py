"""Apps and request authentication: HMAC signature, clock skew, nonce replay, revocation."""

from __future__ import annotations

import hashlib
import json
import stat
import time
from pathlib import Path

import pytest

from migrate.adapters.exchange import ExchangeHTTPError, sign, signed_headers
from migrate.rehearsal.exchange.server import sign as server_sign

WHOAMI = "/api/v1/whoami"


def test_create_app_returns_secret_once_and_list_never_does(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    assert len(app.app_secret) >= 32
    with auto_server.admin() as admin:
        listed = {entry["app_key"]: entry for entry in admin.list_apps()}
    entry = listed[app.app_key]
    assert entry["system_id"] == app.system_id
    assert entry["status"] == "active"
    assert "app_secret" not in entry
    assert app.app_secret not in json.dumps(list(listed.values()))


def test_duplicate_app_is_a_conflict(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    with auto_server.admin() as admin, pytest.raises(ExchangeHTTPError) as caught:
        admin.create_app(app.system_id)
    assert (caught.value.status, caught.value.code) == (409, "app_exists")


def test_signed_request_is_accepted(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    me = app.client.whoami()
    assert me == {**me, "app_key": app.app_key, "system_id": app.system_id}


def test_exact_replay_is_rejected(auto_server, enrolled, send_raw) -> None:
    app = enrolled(auto_server)
    headers = signed_headers(app.app_key, app.app_secret, "GET", WHOAMI, b"")
    assert send_raw(auto_server, "GET", WHOAMI, headers)[0] == 200
    status, body = send_raw(auto_server, "GET", WHOAMI, headers)
    assert (status, body["error"]["code"]) == (401, "replayed_nonce")


@pytest.mark.parametrize("skew", [-301 - 60, 301 + 60])
def test_stale_timestamp_is_rejected(auto_server, enrolled, send_raw, skew: int) -> None:
    app = enrolled(auto_server)
    headers = signed_headers(app.app_key, app.app_secret, "GET", WHOAMI, b"", time.time() + skew)
    status, body = send_raw(auto_server, "GET", WHOAMI, headers)
    assert (status, body["error"]["code"]) == (401, "stale_timestamp")
    assert "stale" in body["error"]["message"]


def test_timestamp_inside_the_window_is_accepted(auto_server, enrolled, send_raw) -> None:
    app = enrolled(auto_server)
    headers = signed_headers(app.app_key, app.app_secret, "GET", WHOAMI, b"", time.time() - 200)
    assert send_raw(auto_server, "GET", WHOAMI, headers)[0] == 200


def test_signature_binds_path_query_and_body(auto_server, enrolled, send_raw) -> None:
    app = enrolled(auto_server)
    for_other_path = signed_headers(app.app_key, app.app_secret, "GET", "/api/v1/resources", b"")
    status, body = send_raw(auto_server, "GET", WHOAMI, for_other_path)
    assert (status, body["error"]["code"]) == (401, "bad_signature")

    without_query = signed_headers(app.app_key, app.app_secret, "GET", "/api/v1/resources", b"")
    status, body = send_raw(auto_server, "GET", "/api/v1/resources?state=linked", without_query)
    assert (status, body["error"]["code"]) == (401, "bad_signature")

    path = f"/api/v1/systems/{app.system_id}"
    signed_body = json.dumps({"name": "a"}).encode()
    headers = signed_headers(app.app_key, app.app_secret, "PUT", path, signed_body)
    status, body = send_raw(auto_server, "PUT", path, headers, json.dumps({"name": "b"}).encode())
    assert (status, body["error"]["code"]) == (401, "bad_signature")


def test_wrong_secret_is_a_bad_signature(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    with (
        auto_server.app(app.app_key, "x" * 43) as wrong,
        pytest.raises(ExchangeHTTPError) as caught,
    ):
        wrong.whoami()
    assert (caught.value.status, caught.value.code) == (401, "bad_signature")
    assert "secret" in (caught.value.hint or "")


def test_unknown_key_and_missing_headers_are_rejected(auto_server, send_raw) -> None:
    headers = signed_headers("nobody-here", "y" * 43, "GET", WHOAMI, b"")
    status, body = send_raw(auto_server, "GET", WHOAMI, headers)
    assert (status, body["error"]["code"]) == (401, "invalid_app_key")
    status, body = send_raw(auto_server, "GET", WHOAMI, {})
    assert (status, body["error"]["code"]) == (401, "missing_signature")


def test_revoked_key_is_rejected(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    with auto_server.admin() as admin:
        revoked = admin.revoke_app(app.app_key)
    assert revoked["status"] == "revoked"
    with pytest.raises(ExchangeHTTPError) as caught:
        app.client.whoami()
    assert (caught.value.status, caught.value.code) == (401, "invalid_app_key")


def test_rotation_invalidates_the_old_secret(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    with auto_server.admin() as admin:
        rotated = admin.rotate_app(app.app_key)
    assert rotated["app_secret"] != app.app_secret
    with pytest.raises(ExchangeHTTPError, match="bad_signature"):
        app.client.whoami()
    with auto_server.app(app.app_key, rotated["app_secret"]) as fresh:
        assert fresh.whoami()["app_key"] == app.app_key


def test_admin_endpoints_need_the_admin_token(auto_server, enrolled, send_raw) -> None:
    status, body = send_raw(
        auto_server, "GET", "/api/v1/admin/apps", {"Authorization": "Bearer wrong-token"}
    )
    assert (status, body["error"]["code"]) == (401, "invalid_admin_token")
    app = enrolled(auto_server)  # an app signature is not an admin credential either
    headers = signed_headers(app.app_key, app.app_secret, "GET", "/api/v1/admin/apps", b"")
    assert send_raw(auto_server, "GET", "/api/v1/admin/apps", headers)[0] == 401


def test_an_app_acts_only_for_its_own_system(auto_server, enrolled) -> None:
    first, second = enrolled(auto_server), enrolled(auto_server)
    with pytest.raises(ExchangeHTTPError) as caught:
        second.client.register_system(
            first.system_id,
            name="冒名",
            department_code="x",
            department_name="x",
            base_url="http://127.0.0.1:9",
        )
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    with pytest.raises(ExchangeHTTPError, match="forbidden"):
        second.client.probe_system(first.system_id)


def test_error_bodies_have_code_and_message(auto_server, send_raw) -> None:
    status, body = send_raw(auto_server, "GET", "/api/v1/nowhere", {})
    assert status == 404
    assert set(body["error"]) >= {"code", "message"}
    status, body = send_raw(auto_server, "DELETE", "/api/v1/health", {})
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


def test_logs_hold_no_secret_token_or_signature(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    app.client.whoami()
    log = auto_server.log_text()
    assert app.app_key in log  # the log does record who called
    assert app.app_secret not in log
    assert auto_server.admin_token not in log
    assert "X-Signature" not in log and "Bearer" not in log


def test_database_file_is_private(auto_server) -> None:
    assert stat.S_IMODE(auto_server.db.stat().st_mode) == 0o600
    for sidecar in auto_server.db.parent.glob(auto_server.db.name + "-*"):
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600


def test_documented_signature_example_is_right() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exchange-api.md").read_text()
    body = b'{"payload": {"probe": "p-1"}}'
    path = "/api/v1/resources/3.110.001.0001/records"
    args = ("POST", path, "1795600000", "9f86d081884c7d65", body)
    example = sign("example-secret-not-real-0123456789abcdef", *args)
    assert f"X-Signature    = {example}" in doc
    assert hashlib.sha256(body).hexdigest() in doc
    assert server_sign("example-secret-not-real-0123456789abcdef", *args) == example
