"""Reference implementation of the exchange platform's HTTP API (政务数据共享交换平台).

Self-contained on purpose: Python 3.11 standard library only, no import of the ``migrate``
package, so this one file can be copied to a minimal Debian 12 machine and run there::

    python3 server.py --listen 127.0.0.1:8443 --db exchange.db \\
        --cert server.pem --key server.key --admin-token-file admin.token [--auto-approve]

The API is described in docs/exchange-api.md and docs/exchange-openapi.yaml; ``ROUTES``
below is the table of every path the server serves (the tests check the OpenAPI file
against it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import http.server
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import stat
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SERVICE = "exchange-reference"
VERSION = "1.0.0"
API_PREFIX = "/api/v1"

MAX_SKEW_SECONDS = 300
NONCE_RETENTION_SECONDS = 2 * MAX_SKEW_SECONDS
MAX_BODY_BYTES = 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024
MAX_PROBE_BODY_BYTES = 1024 * 1024
MIN_SECRET_CHARS = 32
# Python's own default for int(str); set here so a server started with the limit lifted
# still refuses a JSON number it would spend seconds converting.
MAX_JSON_INT_DIGITS = 4300

APP_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
SYSTEM_ID_RE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
CODE_SEGMENT = r"[0-9A-Za-z_-]{1,32}"
# A catalogue code (分类码/顺序码) has '/' between segments; in URLs '/' is written '.'.
CODE_RE = re.compile(rf"^{CODE_SEGMENT}(?:/{CODE_SEGMENT}){{1,9}}$")
CODE_KEY_PATTERN = rf"{CODE_SEGMENT}(?:\.{CODE_SEGMENT}){{1,9}}"
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
SIGNATURE_RE = re.compile(r"[0-9A-Fa-f]{64}")
CONTENT_LENGTH_RE = re.compile(r"[0-9]+")

STATE_LABELS = {"unlinked": "未挂接", "pending_review": "待审核", "linked": "已挂接"}
FORMATS = (
    "electronic_file",
    "spreadsheet",
    "database",
    "image",
    "stream",
    "self_describing",
    "service_api",
)
SHARE_TYPES = ("unconditional", "conditional", "none")
UPDATE_CYCLES = (
    "realtime",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "half_yearly",
    "yearly",
)

log = logging.getLogger("exchange.server")


class ApiError(Exception):
    """An error answered to the caller as ``{"error": {"code", "message"[, "details"]}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class ServerConfigError(Exception):
    """The server cannot start with the given options (bad file mode, missing cert...)."""


def code_to_key(code: str) -> str:
    """The URL form of a catalogue code: ``3/110/001/0001`` -> ``3.110.001.0001``."""
    return code.replace("/", ".")


def key_to_code(key: str) -> str:
    return key.replace(".", "/")


def utc_iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return (
        datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([method.upper(), path, timestamp, nonce, sha256_hex(body)])


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for TCP (the default ``PlatformConfig.resolver``)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


# --------------------------------------------------------------------------- storage

SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    app_key TEXT PRIMARY KEY,
    app_secret TEXT NOT NULL,
    system_id TEXT NOT NULL,
    name TEXT,
    created_at REAL NOT NULL,
    rotated_at REAL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS nonces (
    app_key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    request_ts INTEGER NOT NULL,
    PRIMARY KEY (app_key, nonce)
);
CREATE TABLE IF NOT EXISTS systems (
    system_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    department_code TEXT NOT NULL,
    department_name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    health_path TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_probe_at REAL,
    last_probe_ok INTEGER
);
CREATE TABLE IF NOT EXISTS resources (
    code TEXT PRIMARY KEY,
    system_id TEXT NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    submitted_at REAL,
    linked_at REAL,
    unregistered_at REAL
);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    resource_code TEXT NOT NULL,
    app_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


def create_private_file(path: str) -> None:
    """Create ``path`` with mode 0600 if missing; tighten it if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class Store:
    """SQLite persistence; one connection shared by the handler threads under a lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        create_private_file(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a power cut may lose the last commits but never corrupts the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._tighten_sidecar_files()

    def _tighten_sidecar_files(self) -> None:
        for suffix in ("-wal", "-shm"):
            sidecar = self.path + suffix
            if os.path.exists(sidecar):
                os.chmod(sidecar, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Run the enclosed reads and writes as one transaction, alone among the threads."""
        with self._lock:
            self._depth += 1
            outermost = self._depth == 1
            if outermost:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if outermost:
                    self._db.execute("ROLLBACK")
                raise
            else:
                if outermost:
                    self._db.execute("COMMIT")
            finally:
                self._depth -= 1

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def remember_nonce(self, app_key: str, nonce: str, request_ts: int, now: float) -> bool:
        """Record a nonce; False when it was already seen inside the retention window."""
        with self._lock:
            self._db.execute(
                "DELETE FROM nonces WHERE request_ts < ?", (int(now) - NONCE_RETENTION_SECONDS,)
            )
            try:
                self._db.execute(
                    "INSERT INTO nonces (app_key, nonce, request_ts) VALUES (?, ?, ?)",
                    (app_key, nonce, request_ts),
                )
            except sqlite3.IntegrityError:
                return False
            return True


# --------------------------------------------------------------------------- validation


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body


def text_field(
    body: dict[str, Any],
    name: str,
    problems: list[str],
    *,
    required: bool = True,
    max_len: int = 500,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            problems.append(f"{name}: required")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{name}: must be a non-empty string")
        return None
    if len(value) > max_len:
        problems.append(f"{name}: longer than {max_len} characters")
        return None
    return value


def enum_field(
    body: dict[str, Any], name: str, allowed: tuple[str, ...], problems: list[str]
) -> str | None:
    value = body.get(name)
    if value not in allowed:
        problems.append(f"{name}: must be one of {', '.join(allowed)}")
        return None
    return value


def raise_if_problems(problems: list[str], what: str) -> None:
    if problems:
        raise ApiError(422, "invalid_request", f"the {what} is not valid", problems)


def printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value


def validate_base_url(value: str | None, problems: list[str]) -> None:
    if value is None:
        return
    if not printable_ascii(value):
        problems.append("base_url: must be printable ASCII without spaces (IDNA-encode a name)")
        return
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        problems.append("base_url: is not a URL")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append("base_url: must be an absolute http:// or https:// URL with a host")
    elif parts.username or parts.password or parts.query or parts.fragment:
        problems.append("base_url: must not carry credentials, a query or a fragment")
    else:
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            problems.append("base_url: has an invalid port")


def validate_system(system_id: str, body: dict[str, Any]) -> dict[str, str]:
    problems: list[str] = []
    if "system_id" in body and body["system_id"] != system_id:
        problems.append("system_id: differs from the id in the URL")
    name = text_field(body, "name", problems)
    department = body.get("department")
    dept_code = dept_name = None
    if not isinstance(department, dict):
        problems.append("department: required, an object {code, name}")
    else:
        dept_code = text_field(department, "code", problems, max_len=64)
        dept_name = text_field(department, "name", problems)
    base_url = text_field(body, "base_url", problems, max_len=2000)
    validate_base_url(base_url, problems)
    health_path = body.get("health_path", "/health")
    if not isinstance(health_path, str) or not health_path.startswith("/"):
        problems.append("health_path: must be a path starting with '/'")
    elif not printable_ascii(health_path) or "#" in health_path or len(health_path) > 500:
        problems.append("health_path: must be printable ASCII without spaces or '#'")
    raise_if_problems(problems, "system registration")
    return {
        "name": name,
        "department_code": dept_code,
        "department_name": dept_name,
        "base_url": base_url.rstrip("/"),
        "health_path": health_path,
    }  # type: ignore[dict-item]


def validate_items(items: Any, problems: list[str]) -> list[dict[str, str]]:
    if not isinstance(items, list) or not items:
        problems.append("items: required, a non-empty list of {name, type}")
        return []
    clean = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"items[{index}]: must be an object {{name, type}}")
            continue
        item_problems: list[str] = []
        name = text_field(item, "name", item_problems, max_len=200)
        kind = text_field(item, "type", item_problems, max_len=64)
        problems.extend(f"items[{index}].{p}" for p in item_problems)
        if not item_problems:
            clean.append({"name": name, "type": kind})
    return clean  # type: ignore[return-value]


def validate_interface(interface: Any, problems: list[str]) -> dict[str, str] | None:
    if interface is None:
        return None
    if not isinstance(interface, dict):
        problems.append("interface: must be an object {service, path}")
        return None
    sub: list[str] = []
    service = text_field(interface, "service", sub, max_len=200)
    path = text_field(interface, "path", sub, required=False, max_len=500)
    problems.extend(f"interface.{p}" for p in sub)
    clean = {"service": service}
    if path is not None:
        clean["path"] = path
    return clean  # type: ignore[return-value]


def validate_resource(code: str, body: dict[str, Any]) -> dict[str, Any]:
    """The catalogue entry (信息资源目录) as stored; fields as in MANIFEST.md."""
    problems: list[str] = []
    if "code" in body and body["code"] != code:
        problems.append("code: differs from the code in the URL")
    document: dict[str, Any] = {
        "code": code,
        "name": text_field(body, "name", problems),
        "summary": text_field(body, "summary", problems, max_len=2000),
        "format": enum_field(body, "format", FORMATS, problems),
        "share_type": enum_field(body, "share_type", SHARE_TYPES, problems),
        "share_condition": text_field(body, "share_condition", problems, required=False),
        "open_type": enum_field(body, "open_type", SHARE_TYPES, problems),
        "update_cycle": enum_field(body, "update_cycle", UPDATE_CYCLES, problems),
        "interface": validate_interface(body.get("interface"), problems),
        "items": validate_items(body.get("items"), problems),
    }
    if document["share_type"] == "conditional" and not document["share_condition"]:
        problems.append("share_condition: required when share_type is conditional")
    raise_if_problems(problems, "catalogue resource")
    return document


def validate_new_secret(body: dict[str, Any]) -> str | None:
    secret = body.get("app_secret")
    if secret is None:
        return None
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS or len(secret) > 256:
        raise ApiError(
            422, "invalid_request", f"app_secret: must be {MIN_SECRET_CHARS} to 256 characters"
        )
    return secret


# --------------------------------------------------------------------------- requests


@dataclass
class Caller:
    """Who made the request: an app (HMAC) or the platform administrator (bearer)."""

    kind: str  # "anonymous" | "app" | "admin"
    app_key: str | None = None
    system_id: str | None = None


@dataclass
class Request:
    method: str
    target: str  # the raw request target, path plus query, exactly as sent (it is signed)
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    caller: Caller = field(default_factory=lambda: Caller("anonymous"))

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        return require_object(parse_json_body(self.body))


class BodyValueError(ValueError):
    """A JSON value the platform will not store: out of range, ambiguous or not UTF-8."""


def parse_json_body(body: bytes) -> Any:
    """The body as JSON; anything that cannot be stored and answered back faithfully is a 400."""
    try:
        value = json.loads(
            body.decode("utf-8"),
            parse_int=bounded_int,
            parse_float=finite_float,
            parse_constant=refuse_constant,
            object_pairs_hook=unique_keys,
        )
        # A lone surrogate (\ud800) decodes to a str that cannot be written as UTF-8 again.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise ApiError(
            400, "invalid_json", "the body is not UTF-8 JSON (bad UTF-8 or a lone surrogate escape)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 JSON: {exc}") from None
    except BodyValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not acceptable JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body's JSON is nested too deeply") from None
    return value


def bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise BodyValueError(f"an integer has more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BodyValueError(f"the number {text[:40]} is out of range")
    return value


def refuse_constant(text: str) -> Any:
    raise BodyValueError(f"{text} is not JSON")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        names = [name for name, _ in pairs]
        twice = sorted({name for name in names if names.count(name) > 1})
        raise BodyValueError(f"an object repeats the key(s) {', '.join(twice)[:200]}")
    return value


def single_header(headers: Any, name: str) -> str | None:
    """The value of header ``name`` (None when absent or empty); a repeated header, or one
    that is not printable ASCII, is a malformed request (400), never a guess."""
    values = headers.get_all(name) or []
    if len(values) > 1:
        raise ApiError(400, "invalid_header", f"{name} is sent {len(values)} times; send it once")
    value = values[0].strip() if values else ""
    if not (value.isascii() and value.isprintable()):
        raise ApiError(400, "invalid_header", f"{name} must be printable ASCII")
    return value or None


def header_matching(headers: Any, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = single_header(headers, name)
    if value is not None and not pattern.fullmatch(value):
        raise ApiError(400, "invalid_header", f"{name} must be {what}")
    return value


@dataclass(frozen=True)
class Route:
    """One served endpoint: method, OpenAPI path template, authentication, handler name."""

    method: str
    path: str  # OpenAPI template, e.g. /api/v1/resources/{code_key}
    auth: str  # "none" | "app" | "admin"
    handler: str

    def regex(self) -> re.Pattern[str]:
        pattern = re.escape(self.path)
        for name, part in PARAM_PATTERNS.items():
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{part})")
        return re.compile(f"^{pattern}$")


PARAM_PATTERNS = {
    "app_key": r"[a-z][a-z0-9-]{1,63}",
    "system_id": r"[a-z][a-z0-9-]{1,39}",
    "code_key": CODE_KEY_PATTERN,
    "record_id": r"[0-9a-f]{32}",
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/health", "none", "health"),
    Route("GET", "/api/v1/whoami", "app", "whoami"),
    Route("POST", "/api/v1/admin/apps", "admin", "create_app"),
    Route("GET", "/api/v1/admin/apps", "admin", "list_apps"),
    Route("POST", "/api/v1/admin/apps/{app_key}/rotate", "admin", "rotate_app"),
    Route("DELETE", "/api/v1/admin/apps/{app_key}", "admin", "revoke_app"),
    Route("GET", "/api/v1/admin/resources", "admin", "admin_list_resources"),
    Route("POST", "/api/v1/admin/resources/{code_key}/approve", "admin", "approve_resource"),
    Route("PUT", "/api/v1/systems/{system_id}", "app", "put_system"),
    Route("GET", "/api/v1/systems/{system_id}", "app", "get_system"),
    Route("POST", "/api/v1/systems/{system_id}/probe", "app", "probe_system"),
    Route("GET", "/api/v1/resources", "app", "list_resources"),
    Route("PUT", "/api/v1/resources/{code_key}", "app", "put_resource"),
    Route("GET", "/api/v1/resources/{code_key}", "app", "get_resource"),
    Route("DELETE", "/api/v1/resources/{code_key}", "app", "delete_resource"),
    Route("POST", "/api/v1/resources/{code_key}/records", "app", "publish_record"),
    Route("GET", "/api/v1/resources/{code_key}/records/{record_id}", "app", "read_record"),
)
# Handlers that wait on the network must not hold the store's transaction lock.
HANDLERS_WITH_NETWORK_CALLS = frozenset({"probe_system"})
COMPILED_ROUTES = tuple((route, route.regex()) for route in ROUTES)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed = []
    for route, regex in COMPILED_ROUTES:
        found = regex.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groupdict()
        allowed.append(route.method)
    if allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{method} is not allowed here; use " + ", ".join(sorted(set(allowed))),
        )
    raise ApiError(404, "not_found", f"no endpoint at {path}")


# --------------------------------------------------------------------------- platform


@dataclass
class PlatformConfig:
    auto_approve: bool = False
    probe_timeout: float = 5.0
    probe_ca_bundle: str | None = None
    probe_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    clock: Callable[[], float] = time.time
    resolver: Callable[[str, int], list[str]] = resolve_addresses


class Platform:
    """The API's behaviour, independent of HTTP plumbing: one method per route handler."""

    def __init__(self, store: Store, admin_token: str, config: PlatformConfig) -> None:
        self.store = store
        self._admin_token = admin_token
        self.config = config

    def handle(self, route: Route, request: Request) -> tuple[int, dict]:
        """Run the route's handler; writes run as one transaction (not the network probe)."""
        handler = getattr(self, route.handler)
        if route.method == "GET" or route.handler in HANDLERS_WITH_NETWORK_CALLS:
            return handler(request)
        with self.store.atomic():
            return handler(request)

    # ---------------------------------------------------------------- authentication

    def authenticate(self, route: Route, request: Request) -> Caller:
        if route.auth == "none":
            return Caller("anonymous")
        if route.auth == "admin":
            return self._authenticate_admin(request)
        return self._authenticate_app(request)

    def _authenticate_admin(self, request: Request) -> Caller:
        header = single_header(request.headers, "Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(
            token.strip().encode(), self._admin_token.encode()
        ):
            raise ApiError(401, "invalid_admin_token", "missing or wrong admin bearer token")
        return Caller("admin")

    def _authenticate_app(self, request: Request) -> Caller:
        headers = request.headers
        app_key = header_matching(headers, "X-App-Key", APP_KEY_RE, APP_KEY_RE.pattern)
        timestamp = header_matching(headers, "X-Timestamp", TIMESTAMP_RE, "unix seconds")
        nonce = header_matching(headers, "X-Nonce", NONCE_RE, "8-128 of [A-Za-z0-9_-]")
        signature = header_matching(headers, "X-Signature", SIGNATURE_RE, "64 hex digits")
        if not (app_key and timestamp and nonce and signature):
            raise ApiError(
                401,
                "missing_signature",
                "X-App-Key, X-Timestamp, X-Nonce and X-Signature are required",
            )
        app = self.store.query_one("SELECT * FROM apps WHERE app_key = ?", (app_key,))
        if app is None or app["revoked_at"] is not None:
            raise ApiError(401, "invalid_app_key", "unknown or revoked app key")
        now = self.config.clock()
        if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
            raise ApiError(
                401,
                "stale_timestamp",
                f"X-Timestamp is stale: more than "
                f"{MAX_SKEW_SECONDS} s from the platform's clock ({int(now)})",
            )
        expected = sign(
            app["app_secret"], request.method, request.target, timestamp, nonce, request.body
        )
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(401, "bad_signature", "the signature does not match the request")
        if not self.store.remember_nonce(app_key, nonce, int(timestamp), now):
            raise ApiError(401, "replayed_nonce", "this nonce was already used")
        return Caller("app", app_key=app_key, system_id=app["system_id"])

    # ---------------------------------------------------------------- health

    def health(self, request: Request) -> tuple[int, dict]:
        now = self.config.clock()
        return 200, {
            "status": "ok",
            "service": SERVICE,
            "version": VERSION,
            "api": "v1",
            "time": utc_iso(now),
            "time_unix": now,
        }

    def whoami(self, request: Request) -> tuple[int, dict]:
        caller = request.caller
        return 200, {
            "app_key": caller.app_key,
            "system_id": caller.system_id,
            "server_time_unix": self.config.clock(),
        }

    # ---------------------------------------------------------------- apps (admin)

    def create_app(self, request: Request) -> tuple[int, dict]:
        body = request.json()
        problems: list[str] = []
        system_id = body.get("system_id")
        if not isinstance(system_id, str) or not SYSTEM_ID_RE.fullmatch(system_id):
            problems.append("system_id: required, ^[a-z][a-z0-9-]{1,39}$")
        app_key = body.get("app_key", system_id)
        if not isinstance(app_key, str) or not APP_KEY_RE.fullmatch(app_key):
            problems.append("app_key: must match ^[a-z][a-z0-9-]{1,63}$")
        name = text_field(body, "name", problems, required=False)
        raise_if_problems(problems, "app")
        given_secret = validate_new_secret(body)
        secret = given_secret or secrets.token_urlsafe(32)
        now = self.config.clock()
        try:
            self.store.execute(
                "INSERT INTO apps (app_key, app_secret, system_id, name, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (app_key, secret, system_id, name, now),
            )
        except sqlite3.IntegrityError:
            raise ApiError(
                409, "app_exists", f"app {app_key} exists; rotate its secret instead"
            ) from None
        log.info("app created app_key=%s system_id=%s", app_key, system_id)
        answer = self._app_view(self._app_row(app_key))
        if given_secret is None:
            answer["app_secret"] = secret  # returned once, never again
        return 201, answer

    def rotate_app(self, request: Request) -> tuple[int, dict]:
        app_key = request.params["app_key"]
        row = self._app_row(app_key)
        if row["revoked_at"] is not None:
            raise ApiError(409, "app_revoked", f"app {app_key} is revoked")
        given_secret = validate_new_secret(request.json())
        secret = given_secret or secrets.token_urlsafe(32)
        self.store.execute(
            "UPDATE apps SET app_secret = ?, rotated_at = ? WHERE app_key = ?",
            (secret, self.config.clock(), app_key),
        )
        log.info("app secret rotated app_key=%s", app_key)
        answer = self._app_view(self._app_row(app_key))
        if given_secret is None:
            answer["app_secret"] = secret
        return 200, answer

    def revoke_app(self, request: Request) -> tuple[int, dict]:
        app_key = request.params["app_key"]
        self._app_row(app_key)
        self.store.execute(
            "UPDATE apps SET revoked_at = ? WHERE app_key = ? AND revoked_at IS NULL",
            (self.config.clock(), app_key),
        )
        log.info("app revoked app_key=%s", app_key)
        return 200, self._app_view(self._app_row(app_key))

    def list_apps(self, request: Request) -> tuple[int, dict]:
        rows = self.store.query("SELECT * FROM apps ORDER BY app_key")
        return 200, {"apps": [self._app_view(row) for row in rows]}

    def _app_row(self, app_key: str) -> sqlite3.Row:
        row = self.store.query_one("SELECT * FROM apps WHERE app_key = ?", (app_key,))
        if row is None:
            raise ApiError(404, "app_not_found", f"no app {app_key}")
        return row

    @staticmethod
    def _app_view(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "app_key": row["app_key"],
            "system_id": row["system_id"],
            "name": row["name"],
            "status": "revoked" if row["revoked_at"] is not None else "active",
            "created_at": utc_iso(row["created_at"]),
            "rotated_at": utc_iso(row["rotated_at"]),
            "revoked_at": utc_iso(row["revoked_at"]),
        }

    # ---------------------------------------------------------------- systems (接入登记)

    def _own_system(self, request: Request) -> str:
        system_id = request.params["system_id"]
        if request.caller.system_id != system_id:
            raise ApiError(
                403,
                "forbidden",
                f"app {request.caller.app_key} does not act for system {system_id}",
            )
        return system_id

    def put_system(self, request: Request) -> tuple[int, dict]:
        system_id = self._own_system(request)
        fields = validate_system(system_id, request.json())
        now = self.config.clock()
        existed = (
            self.store.query_one("SELECT system_id FROM systems WHERE system_id = ?", (system_id,))
            is not None
        )
        self.store.execute(
            "INSERT INTO systems (system_id, name, department_code, department_name, base_url,"
            " health_path, registered_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(system_id) DO UPDATE SET name=excluded.name,"
            " department_code=excluded.department_code,"
            " department_name=excluded.department_name, base_url=excluded.base_url,"
            " health_path=excluded.health_path, registered_by=excluded.registered_by,"
            " updated_at=excluded.updated_at",
            (
                system_id,
                fields["name"],
                fields["department_code"],
                fields["department_name"],
                fields["base_url"],
                fields["health_path"],
                request.caller.app_key,
                now,
                now,
            ),
        )
        log.info("system %s system_id=%s", "updated" if existed else "registered", system_id)
        return (200 if existed else 201), self._system_view(self._system_row(system_id))

    def get_system(self, request: Request) -> tuple[int, dict]:
        return 200, self._system_view(self._system_row(self._own_system(request)))

    def _system_row(self, system_id: str) -> sqlite3.Row:
        row = self.store.query_one("SELECT * FROM systems WHERE system_id = ?", (system_id,))
        if row is None:
            raise ApiError(404, "system_not_registered", f"system {system_id} is not registered")
        return row

    @staticmethod
    def _system_view(row: sqlite3.Row) -> dict[str, Any]:
        last_ok = row["last_probe_ok"]
        return {
            "system_id": row["system_id"],
            "name": row["name"],
            "department": {"code": row["department_code"], "name": row["department_name"]},
            "base_url": row["base_url"],
            "health_path": row["health_path"],
            "registered_by": row["registered_by"],
            "created_at": utc_iso(row["created_at"]),
            "updated_at": utc_iso(row["updated_at"]),
            "last_probe": None
            if row["last_probe_at"] is None
            else {"at": utc_iso(row["last_probe_at"]), "ok": bool(last_ok)},
        }

    def probe_system(self, request: Request) -> tuple[int, dict]:
        system_id = self._own_system(request)
        if not self.config.probe_allowed_networks:
            raise ApiError(
                503,
                "probe_not_configured",
                "this platform probes nothing: it was started without --probe-allow-network,"
                " and without it a probe could reach any address the platform can",
            )
        row = self._system_row(system_id)
        url = row["base_url"] + row["health_path"]
        result = probe_url(url, self.config)
        result["system_id"] = system_id
        self.store.execute(
            "UPDATE systems SET last_probe_at = ?, last_probe_ok = ? WHERE system_id = ?",
            (self.config.clock(), int(result["ok"]), system_id),
        )
        log.info("probe system_id=%s ok=%s status=%s", system_id, result["ok"], result["status"])
        return 200, result

    # ---------------------------------------------------------------- catalogue (编目/挂接)

    def put_resource(self, request: Request) -> tuple[int, dict]:
        code = key_to_code(request.params["code_key"])
        document = validate_resource(code, request.json())
        system_id = request.caller.system_id
        self._system_row(system_id)  # a system registers its endpoint before its resources
        row = self.store.query_one("SELECT * FROM resources WHERE code = ?", (code,))
        now = self.config.clock()
        stored = json.dumps(document, ensure_ascii=False, sort_keys=True)
        if row is None:
            self.store.execute(
                "INSERT INTO resources (code, system_id, document, state, created_at,"
                " updated_at, submitted_at) VALUES (?, ?, ?, 'pending_review', ?, ?, ?)",
                (code, system_id, stored, now, now, now),
            )
            status = 201
        elif row["system_id"] != system_id:
            raise ApiError(
                409, "resource_owned_elsewhere", f"resource {code} is registered by another system"
            )
        elif row["document"] == stored and row["state"] != "unlinked":
            return 200, self._resource_view(row, changed=False)
        else:
            # A changed entry, or one registered again after unregistering, is reviewed again.
            self.store.execute(
                "UPDATE resources SET document = ?, state = 'pending_review', updated_at = ?,"
                " submitted_at = ?, linked_at = NULL, unregistered_at = NULL WHERE code = ?",
                (stored, now, now, code),
            )
            status = 200
        if self.config.auto_approve:
            self._link(code)
        log.info("resource submitted code=%s system_id=%s", code, system_id)
        return status, self._resource_view(self._resource_row(code), changed=True)

    def _link(self, code: str) -> None:
        now = self.config.clock()
        self.store.execute(
            "UPDATE resources SET state = 'linked', linked_at = ?, updated_at = ?"
            " WHERE code = ? AND state = 'pending_review'",
            (now, now, code),
        )

    def approve_resource(self, request: Request) -> tuple[int, dict]:
        code = key_to_code(request.params["code_key"])
        row = self._resource_row(code)
        if row["state"] == "unlinked":
            raise ApiError(
                409,
                "invalid_state",
                f"resource {code} is unlinked (未挂接); it must be registered first",
            )
        self._link(code)
        log.info("resource approved code=%s", code)
        return 200, self._resource_view(self._resource_row(code))

    def admin_list_resources(self, request: Request) -> tuple[int, dict]:
        return 200, {"resources": self._list_resources(request, None)}

    def get_resource(self, request: Request) -> tuple[int, dict]:
        return 200, self._resource_view(self._owned_resource(request))

    def list_resources(self, request: Request) -> tuple[int, dict]:
        return 200, {"resources": self._list_resources(request, request.caller.system_id)}

    def _list_resources(self, request: Request, system_id: str | None) -> list[dict]:
        states = request.query.get("state", [])
        if len(states) > 1:
            raise ApiError(400, "invalid_request", "state: give it at most once")
        state = states[0] if states else None
        if state is not None and state not in STATE_LABELS:
            raise ApiError(
                422, "invalid_request", f"state: must be one of {', '.join(STATE_LABELS)}"
            )
        sql, params = "SELECT * FROM resources WHERE 1 = 1", []
        if system_id is not None:
            sql, params = sql + " AND system_id = ?", [*params, system_id]
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        rows = self.store.query(sql + " ORDER BY code", tuple(params))
        return [self._resource_view(row) for row in rows]

    def delete_resource(self, request: Request) -> tuple[int, dict]:
        row = self._owned_resource(request)
        now = self.config.clock()
        self.store.execute(
            "UPDATE resources SET state = 'unlinked', linked_at = NULL, updated_at = ?,"
            " unregistered_at = COALESCE(unregistered_at, ?) WHERE code = ?",
            (now, now, row["code"]),
        )
        log.info("resource unregistered code=%s", row["code"])
        return 200, self._resource_view(self._resource_row(row["code"]))

    def _resource_row(self, code: str) -> sqlite3.Row:
        row = self.store.query_one("SELECT * FROM resources WHERE code = ?", (code,))
        if row is None:
            raise ApiError(404, "resource_not_found", f"no resource {code}")
        return row

    def _owned_resource(self, request: Request) -> sqlite3.Row:
        row = self._resource_row(key_to_code(request.params["code_key"]))
        if row["system_id"] != request.caller.system_id:
            raise ApiError(
                404,
                "resource_not_found",
                f"no resource {row['code']} of system {request.caller.system_id}",
            )
        return row

    @staticmethod
    def _resource_view(row: sqlite3.Row, changed: bool | None = None) -> dict[str, Any]:
        view = json.loads(row["document"])
        view.update(
            {
                "key": code_to_key(row["code"]),
                "system_id": row["system_id"],
                "state": row["state"],
                "state_label": STATE_LABELS[row["state"]],
                "created_at": utc_iso(row["created_at"]),
                "updated_at": utc_iso(row["updated_at"]),
                "submitted_at": utc_iso(row["submitted_at"]),
                "linked_at": utc_iso(row["linked_at"]),
                "unregistered_at": utc_iso(row["unregistered_at"]),
            }
        )
        if changed is not None:
            view["changed"] = changed
        return view

    # ---------------------------------------------------------------- exchange round trip

    def publish_record(self, request: Request) -> tuple[int, dict]:
        received_at = self.config.clock()
        row = self._owned_resource(request)
        if row["state"] != "linked":
            raise ApiError(
                409,
                "resource_not_linked",
                f"resource {row['code']} is "
                f"{row['state']} ({STATE_LABELS[row['state']]}); only linked "
                "(已挂接) resources exchange data",
            )
        body = request.json()
        if "payload" not in body:
            raise ApiError(422, "invalid_request", "payload: required (any JSON value)")
        payload = json.dumps(body["payload"], ensure_ascii=False, sort_keys=True)
        if len(payload.encode("utf-8")) > MAX_RECORD_BYTES:
            raise ApiError(413, "payload_too_large", f"payload over {MAX_RECORD_BYTES} bytes")
        record_id = uuid.uuid4().hex
        self.store.execute(
            "INSERT INTO records (id, resource_code, app_key, payload, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (record_id, row["code"], request.caller.app_key, payload, received_at),
        )
        return 201, {
            "id": record_id,
            "resource_code": row["code"],
            "received_at": received_at,
            "stored_at": self.config.clock(),
        }

    def read_record(self, request: Request) -> tuple[int, dict]:
        row = self._owned_resource(request)
        record = self.store.query_one(
            "SELECT * FROM records WHERE id = ? AND resource_code = ?",
            (request.params["record_id"], row["code"]),
        )
        if record is None:
            raise ApiError(404, "record_not_found", f"no record {request.params['record_id']}")
        return 200, {
            "id": record["id"],
            "resource_code": record["resource_code"],
            "app_key": record["app_key"],
            "payload": json.loads(record["payload"]),
            "received_at": record["received_at"],
            "served_at": self.config.clock(),
        }


# --------------------------------------------------------------------------- reverse probe


def probe_url(url: str, config: PlatformConfig) -> dict[str, Any]:
    """GET the registered health URL once: status, latency, body digest; never raises.

    The name is resolved once; the connection goes to that vetted address (TLS and the Host
    header still use the name), and no redirect is followed.
    """
    result: dict[str, Any] = {
        "url": url,
        "ok": False,
        "status": None,
        "latency_ms": None,
        "body_sha256": None,
        "body_bytes": None,
        "error": None,
        "probed_at": utc_iso(config.clock()),
    }
    started = time.perf_counter()
    connection = None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = vetted_addresses(parts.hostname or "", port, config)
        connection = open_probe_connection(parts, addresses, port, config)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(
            "GET",
            target or "/",
            headers={"User-Agent": f"{SERVICE}-probe/{VERSION}", "Accept": "*/*"},
        )
        response = connection.getresponse()
        body = read_limited(response, started + config.probe_timeout)
        result.update(
            status=response.status,
            ok=200 <= response.status < 300,
            body_sha256=sha256_hex(body),
            body_bytes=len(body),
        )
        if not result["ok"]:
            result["error"] = f"HTTP {response.status} {response.reason}"
    except ssl.SSLCertVerificationError as exc:
        result["error"] = f"TLS verification failed: {exc.verify_message}"
    except TimeoutError:
        result["error"] = f"timed out after {config.probe_timeout} s"
    except (OSError, ValueError, http.client.HTTPException, ProbeRefused) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        if connection is not None:
            connection.close()
    return result


class ProbeRefused(Exception):
    """The registered URL resolves outside the networks the platform may probe."""


def vetted_addresses(host: str, port: int, config: PlatformConfig) -> list[str]:
    """Resolve ``host`` once; every address must be in the allowed networks. The probe then
    connects only to the addresses returned here, so a second lookup (DNS rebinding) cannot
    redirect it."""
    addresses = config.resolver(host, port)
    if not addresses:
        raise ProbeRefused(f"{host} resolves to no address")
    for text in addresses:
        address = ipaddress.ip_address(text)
        if not any(address in network for network in config.probe_allowed_networks):
            raise ProbeRefused(
                f"{host} resolves to {address}, outside the networks the platform may probe"
            )
    return addresses


def connect_to_one_of(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that accepts one, tried in order."""
    for address in addresses[:-1]:
        with contextlib.suppress(OSError):
            return socket.create_connection((address, port), timeout=timeout)
    return socket.create_connection((addresses[-1], port), timeout=timeout)


def open_probe_connection(
    parts: urllib.parse.SplitResult, addresses: list[str], port: int, config: PlatformConfig
) -> http.client.HTTPConnection:
    """A connection to one of exactly ``addresses``, speaking to the URL's host name."""
    sock = connect_to_one_of(addresses, port, config.probe_timeout)
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=config.probe_ca_bundle)
            sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, port, context=context, timeout=config.probe_timeout
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname, port, timeout=config.probe_timeout
            )
    except BaseException:
        sock.close()
        raise
    connection.sock = sock  # already connected: http.client does not resolve the name again
    return connection


def read_limited(response: http.client.HTTPResponse, deadline: float) -> bytes:
    chunks, total = [], 0
    while total < MAX_PROBE_BODY_BYTES:
        if time.perf_counter() > deadline:
            raise TimeoutError("probe body not complete before the deadline")
        chunk = response.read1(min(65536, MAX_PROBE_BODY_BYTES - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- HTTP


class Handler(http.server.BaseHTTPRequestHandler):
    """Turns HTTP requests into ``Platform`` calls; JSON in, JSON out, errors as ApiError."""

    protocol_version = "HTTP/1.1"
    server_version = f"{SERVICE}/{VERSION}"
    sys_version = ""
    timeout = 30  # seconds a connection may idle; a silent client does not hold a thread
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the peer's
    # delayed ACK adds ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    server: ExchangeHTTPServer

    def setup(self) -> None:
        super().setup()  # applies ``timeout`` to the socket, so the handshake is bounded too
        self.request.do_handshake()

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        caller = "-"
        try:
            body = self.read_body()
            target = self.path
            path, _, query = target.partition("?")
            route, params = match_route(self.command, path)
            request = Request(
                self.command, target, path, urllib.parse.parse_qs(query), self.headers, body, params
            )
            request.caller = self.server.platform.authenticate(route, request)
            caller = request.caller.app_key or request.caller.kind
            status, answer = self.server.platform.handle(route, request)
        except ApiError as exc:
            status, answer = exc.status, exc.body()
        except Exception:
            log.exception("internal error request_id=%s", request_id)
            status = 500
            answer = ApiError(500, "internal_error", f"internal error {request_id}").body()
        self.send_json(status, answer, request_id)
        log.info(
            "%s %s %s caller=%s %.1fms id=%s",
            self.command,
            self.path.partition("?")[0],
            status,
            caller,
            (time.perf_counter() - started) * 1000,
            request_id,
        )

    def read_body(self) -> bytes:
        try:
            length = self.body_length()
        except ApiError:
            self.close_connection = True  # where this body ends is unknown: no next request
            raise
        return self.rfile.read(length)

    def body_length(self) -> int:
        if single_header(self.headers, "Transfer-Encoding"):
            raise ApiError(411, "length_required", "send a Content-Length, not chunked")
        digits = header_matching(self.headers, "Content-Length", CONTENT_LENGTH_RE, "digits")
        if digits is None:
            return 0
        if len(digits) > len(str(MAX_BODY_BYTES)) or int(digits) > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"body over {MAX_BODY_BYTES} bytes")
        return int(digits)

    def send_json(self, status: int, answer: dict, request_id: str) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Request-Id", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (unreadable request line or headers, unknown method)
        answered in the API's error shape, not as an HTML page."""
        self.close_connection = True
        phrase = http.HTTPStatus(code).phrase
        code_name = re.sub(r"[^a-z]+", "_", phrase.lower()).strip("_")
        answer = ApiError(code, code_name, message or phrase).body()
        self.send_json(code, answer, uuid.uuid4().hex[:16])

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib's access log would print raw request lines; dispatch() logs instead.
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("http: " + format, *args)


class ExchangeHTTPServer(http.server.ThreadingHTTPServer):
    """HTTPS server whose TLS handshake runs in the handler thread, not the accept loop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], platform: Platform, tls: ssl.SSLContext) -> None:
        self.platform = platform
        self.tls = tls
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        log.warning(
            "connection from %s failed: %s", client_address[0], f"{type(error).__name__}: {error}"
        )


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ServerConfigError(f"cannot load certificate {cert} / key {key}: {exc}") from exc
    return context


def read_admin_token(path: str) -> str:
    """The admin token file must be private (no group/other bits) and non-empty."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ServerConfigError(f"cannot read the admin token file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServerConfigError(
            f"admin token file {path} is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 it"
        )
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if len(token) < 16:
        raise ServerConfigError(f"admin token in {path} is shorter than 16 characters")
    return token


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ServerConfigError(f"--listen wants HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@dataclass
class ServerOptions:
    listen: str
    db: str
    cert: str
    key: str
    admin_token_file: str
    auto_approve: bool = False
    probe_timeout: float = 5.0
    probe_ca_bundle: str | None = None
    probe_allowed_networks: tuple[str, ...] = ()


def build_server(options: ServerOptions) -> ExchangeHTTPServer:
    """Open the store, load TLS material and bind; call ``serve_forever`` on the result."""
    admin_token = read_admin_token(options.admin_token_file)
    tls = server_tls_context(options.cert, options.key)
    try:
        networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in options.probe_allowed_networks
        )
    except ValueError as exc:
        raise ServerConfigError(f"--probe-allow-network: {exc}") from exc
    config = PlatformConfig(
        auto_approve=options.auto_approve,
        probe_timeout=options.probe_timeout,
        probe_ca_bundle=options.probe_ca_bundle,
        probe_allowed_networks=networks,
    )
    store = Store(options.db)
    platform = Platform(store, admin_token, config)
    try:
        return ExchangeHTTPServer(parse_listen(options.listen), platform, tls)
    except OSError as exc:
        store.close()
        raise ServerConfigError(f"cannot listen on {options.listen}: {exc}") from exc


def parse_args(argv: list[str] | None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="exchange-server", description="Reference exchange platform API server (HTTPS)."
    )
    parser.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any)")
    parser.add_argument("--db", required=True, help="SQLite file (created 0600)")
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--admin-token-file", required=True, help="file (0600) with the token")
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="link resources right after they enter review (sandbox)",
    )
    parser.add_argument("--probe-timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("--probe-ca-bundle", help="CA bundle for https health URLs")
    parser.add_argument(
        "--probe-allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="only probe addresses in these networks",
    )
    args = parser.parse_args(argv)
    return ServerOptions(
        listen=args.listen,
        db=args.db,
        cert=args.cert,
        key=args.key,
        admin_token_file=args.admin_token_file,
        auto_approve=args.auto_approve,
        probe_timeout=args.probe_timeout,
        probe_ca_bundle=args.probe_ca_bundle,
        probe_allowed_networks=tuple(args.probe_allow_network),
    )


def stop_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # serve_forever unwinds and main closes the store cleanly


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = parse_args(argv)
    try:
        server = build_server(options)
    except ServerConfigError as exc:
        print(f"exchange-server: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    # One JSON line on stdout says where it listens (tests and supervisors read it).
    print(
        json.dumps(
            {"event": "listening", "host": host, "port": port, "auto_approve": options.auto_approve}
        ),
        flush=True,
    )
    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.platform.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
