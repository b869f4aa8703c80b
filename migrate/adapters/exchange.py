"""Client of the exchange platform's HTTP API (政务数据共享交换平台).

Self-contained on purpose: Python 3.11 standard library only. Inside the toolkit it is
``migrate.adapters.exchange``; verification also copies this one file to a target machine
that has only Debian's python3 and runs it as a script::

    EXCHANGE_APP_SECRET_FILE=/run/secret python3 client.py \\
        --url https://exchange.example.gov.cn --ca-bundle ca.pem --app-key rsj-sbcx \\
        health | whoami | probe SYSTEM_ID | resource CODE | roundtrip CODE [--count N]

Secrets come from a file (mode 0600) or an environment variable, never from argv.
Every command prints one JSON document on stdout. TLS is always verified.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import ssl
import stat
import statistics
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

try:  # inside the toolkit, errors are the toolkit's domain exceptions
    from migrate.core.errors import EnvironmentNotReady, StageFailed
except ImportError:  # copied alone onto a target machine

    class StageFailed(Exception):  # type: ignore[no-redef]
        exit_code = 4

        def __init__(self, message: str, hint: str | None = None) -> None:
            super().__init__(message)
            self.message = message
            self.hint = hint

    class EnvironmentNotReady(StageFailed):  # type: ignore[no-redef]
        exit_code = 3


API_PREFIX = "/api/v1"
USER_AGENT = "migrate-exchange-client/1.0"
SECRET_ENV = "EXCHANGE_APP_SECRET"
SECRET_FILE_ENV = "EXCHANGE_APP_SECRET_FILE"
ADMIN_TOKEN_FILE_ENV = "EXCHANGE_ADMIN_TOKEN_FILE"

HINTS = {
    "stale_timestamp": "the clocks of this machine and the platform differ; check NTP",
    "bad_signature": "the app secret does not match the platform's; check the secret file",
    "invalid_app_key": "the app key is unknown or revoked; ask the platform administrator",
    "replayed_nonce": "a request was replayed; retry (a fresh nonce is used each time)",
    "resource_not_linked": "the resource must be approved (已挂接) before exchanging data",
    "system_not_registered": "register the system endpoint (接入登记) first",
    "invalid_admin_token": "check the admin token file",
    "invalid_header": "a request header was malformed; this is a client bug, report it",
    "probe_not_configured": "the platform has no allow-list for reverse probes; ask the "
                            "platform administrator to set one",
}
MIN_SECRET_CHARS = 16  # as migrate.core.state: this module also runs alone on target machines


# How a kept-alive connection the platform closed while idle shows up on the next request.
RETRYABLE_ON_REUSED_CONNECTION = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class ExchangeError(StageFailed):
    """The platform answered with an error, or could not be reached."""


class ExchangeHTTPError(ExchangeError):
    """The platform answered ``{"error": {"code", "message"}}`` with a non-2xx status."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        text = f"exchange platform: HTTP {status} {code}: {message}"
        if details:
            text += " (" + "; ".join(str(detail) for detail in details) + ")"
        super().__init__(text, HINTS.get(code))
        self.status = status
        self.code = code
        self.details = details or []


class ExchangeUnreachable(ExchangeError):
    """No answer: connection refused, timeout, DNS failure."""


class ExchangeTLSError(ExchangeError):
    """The platform's certificate does not verify against the CA bundle."""


class SecretFileError(EnvironmentNotReady):
    """A secret file is missing, empty or readable by group/others."""


class CABundleError(EnvironmentNotReady):
    """The CA bundle to verify the platform with cannot be read or holds no certificate."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of METHOD, PATH (with query), TIMESTAMP, NONCE, hex sha256(body)."""
    message = "\n".join([method.upper(), path, timestamp, nonce, sha256_hex(body)])
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(
    app_key: str, secret: str, method: str, path: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        "X-App-Key": app_key,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, method, path, timestamp, nonce, body),
    }


def code_to_key(code: str) -> str:
    """A catalogue code in URLs: ``3/110/001/0001`` is written ``3.110.001.0001``."""
    return code.replace("/", ".")


def read_secret_file(path: str) -> str:
    """Read a secret from a private file (no group/other permission bits)."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise SecretFileError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"secret file {path} is not UTF-8 text") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"secret file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o})",
            hint=f"chmod 600 {path}",
        )
    if not value:
        raise SecretFileError(f"secret file {path} is empty")
    if len(value) < MIN_SECRET_CHARS:
        raise SecretFileError(
            f"secret file {path} holds fewer than {MIN_SECRET_CHARS} characters: too short to "
            "redact reliably and too weak",
            hint=f"put a random value of at least {MIN_SECRET_CHARS} characters in {path}")
    return value


@dataclass(frozen=True)
class RoundTrip:
    """One publish + read back of a probe record, timed by the client and the platform."""

    record_id: str
    resource_code: str
    payload_matches: bool
    publish_ms: float
    read_ms: float
    total_ms: float
    server_received_at: float
    server_served_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verifying_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A TLS context that verifies against ``ca_bundle`` (None: the system's CAs);
    CABundleError naming the file when it cannot be read or holds no certificate."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except ssl.SSLError as exc:  # read, but no PEM certificate in it
        raise CABundleError(
            f"CA bundle {ca_bundle} holds no certificate ({exc.reason})",
            hint="it must hold the PEM certificate of the CA that signed the platform",
        ) from None
    except OSError as exc:
        raise CABundleError(
            f"cannot read CA bundle {ca_bundle}: {exc.strerror}",
            hint="put the PEM certificate of the CA that signed the platform there",
        ) from None


class _ResolvedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a fixed address that verifies the certificate for ``host``."""

    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connection_to(
    host: str, port: int, context: ssl.SSLContext, timeout: float, address: str | None
) -> http.client.HTTPSConnection:
    if address is None:
        return http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    return _ResolvedHTTPSConnection(host, port, address, context=context, timeout=timeout)


class ExchangeClient:
    """Talks HTTPS to the platform over one kept-alive connection (not thread-safe).

    ``app_key``/``app_secret`` sign app requests; ``admin_token`` authorises the
    platform administration endpoints. Either may be omitted when not used.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_bundle: str | None = None,
        app_key: str | None = None,
        app_secret: str | None = None,
        admin_token: str | None = None,
        timeout: float = 10.0,
        connect_address: str | None = None,
    ) -> None:
        """``connect_address`` opens the TCP connection there (an IP address) while TLS
        still verifies the URL's host name, like ``curl --resolve``: the sandbox platform
        has no DNS entry on the host."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ExchangeError(f"exchange URL must be https://HOST[:PORT], got {url!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._base_path = parts.path.rstrip("/")
        self._context = verifying_context(ca_bundle)
        self._app_key = app_key
        self._app_secret = app_secret
        self._admin_token = admin_token
        self._timeout = timeout
        self._connect_address = connect_address
        self._connection: http.client.HTTPSConnection | None = None

    def __enter__(self) -> ExchangeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the secret or token
        return f"ExchangeClient(url={self.url!r}, app_key={self._app_key!r})"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # ---------------------------------------------------------------- transport

    def request(
        self, method: str, path: str, body: Any = None, *, auth: str = "app"
    ) -> dict[str, Any]:
        """Send one request; ``auth`` is "app" (HMAC), "admin" (bearer) or "none"."""
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        target = self._base_path + path
        for attempt in (1, 2):
            reused = self._connection is not None
            headers = self._headers(method, target, data, auth)
            try:
                status, raw = self._exchange(method, target, data, headers)
                break
            except RETRYABLE_ON_REUSED_CONNECTION:
                self.close()
                if not reused or attempt == 2:  # only an idle kept-alive socket is retried
                    raise ExchangeUnreachable(
                        f"exchange platform {self.url} closed the connection"
                    ) from None
        return self._decode(status, raw)

    def _headers(self, method: str, target: str, data: bytes, auth: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if data:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if auth == "app":
            if not (self._app_key and self._app_secret):
                raise ExchangeError("this call needs an app key and secret")
            headers.update(signed_headers(self._app_key, self._app_secret, method, target, data))
        elif auth == "admin":
            if not self._admin_token:
                raise ExchangeError("this call needs the platform admin token")
            headers["Authorization"] = f"Bearer {self._admin_token}"
        return headers

    def _exchange(
        self, method: str, target: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        try:
            if self._connection is None:
                self._connection = _connection_to(
                    self._host, self._port, self._context, self._timeout, self._connect_address
                )
            self._connection.request(method, target, body=data or None, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise ExchangeTLSError(
                f"TLS verification of {self.url} failed: {exc.verify_message}",
                hint="check exchange.ca_bundle: it must hold the CA that signed the platform",
            ) from None
        except RETRYABLE_ON_REUSED_CONNECTION:
            raise
        except TimeoutError:
            self.close()
            raise ExchangeUnreachable(
                f"exchange platform {self.url} did not answer within {self._timeout} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ExchangeUnreachable(
                f"cannot reach exchange platform {self.url}: {exc}",
                hint="check the URL, the network path and that the platform runs",
            ) from None

    def _decode(self, status: int, raw: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ExchangeHTTPError(status, "invalid_response", "the answer is not JSON") from None
        if 200 <= status < 300:
            return answer
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        raise ExchangeHTTPError(
            status,
            str(error.get("code", "http_error")),
            str(error.get("message", "no message")),
            error.get("details"),
        )

    # ---------------------------------------------------------------- public endpoints

    def health(self) -> dict[str, Any]:
        return self.request("GET", f"{API_PREFIX}/health", auth="none")

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", f"{API_PREFIX}/whoami")

    # ---------------------------------------------------------------- administration

    def create_app(
        self,
        system_id: str,
        *,
        app_key: str | None = None,
        name: str | None = None,
        app_secret: str | None = None,
    ) -> dict[str, Any]:
        """Create an app; the answer holds ``app_secret`` once unless one was given."""
        body: dict[str, Any] = {"system_id": system_id, "app_key": app_key or system_id}
        if name is not None:
            body["name"] = name
        if app_secret is not None:
            body["app_secret"] = app_secret
        return self.request("POST", f"{API_PREFIX}/admin/apps", body, auth="admin")

    def rotate_app(self, app_key: str, *, app_secret: str | None = None) -> dict[str, Any]:
        body = {} if app_secret is None else {"app_secret": app_secret}
        return self.request("POST", f"{API_PREFIX}/admin/apps/{app_key}/rotate", body, auth="admin")

    def revoke_app(self, app_key: str) -> dict[str, Any]:
        return self.request("DELETE", f"{API_PREFIX}/admin/apps/{app_key}", auth="admin")

    def list_apps(self) -> list[dict[str, Any]]:
        return self.request("GET", f"{API_PREFIX}/admin/apps", auth="admin")["apps"]

    def approve_resource(self, code: str) -> dict[str, Any]:
        path = f"{API_PREFIX}/admin/resources/{code_to_key(code)}/approve"
        return self.request("POST", path, auth="admin")

    def list_all_resources(self, state: str | None = None) -> list[dict[str, Any]]:
        query = "" if state is None else "?" + urllib.parse.urlencode({"state": state})
        return self.request("GET", f"{API_PREFIX}/admin/resources{query}", auth="admin")[
            "resources"
        ]

    # ---------------------------------------------------------------- systems (接入登记)

    def register_system(
        self,
        system_id: str,
        *,
        name: str,
        department_code: str,
        department_name: str,
        base_url: str,
        health_path: str = "/health",
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "department": {"code": department_code, "name": department_name},
            "base_url": base_url,
            "health_path": health_path,
        }
        return self.request("PUT", f"{API_PREFIX}/systems/{system_id}", body)

    def get_system(self, system_id: str) -> dict[str, Any]:
        return self.request("GET", f"{API_PREFIX}/systems/{system_id}")

    def probe_system(self, system_id: str) -> dict[str, Any]:
        """Ask the platform to call the system's registered health URL (reverse probe)."""
        return self.request("POST", f"{API_PREFIX}/systems/{system_id}/probe")

    # ---------------------------------------------------------------- catalogue (编目/挂接)

    def put_resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Register or update a catalogue entry (fields as in the manifest's resources)."""
        return self.request("PUT", self._resource_path(resource["code"]), resource)

    def get_resource(self, code: str) -> dict[str, Any]:
        return self.request("GET", self._resource_path(code))

    def list_resources(self, state: str | None = None) -> list[dict[str, Any]]:
        query = "" if state is None else "?" + urllib.parse.urlencode({"state": state})
        return self.request("GET", f"{API_PREFIX}/resources{query}")["resources"]

    def delete_resource(self, code: str) -> dict[str, Any]:
        return self.request("DELETE", self._resource_path(code))

    @staticmethod
    def _resource_path(code: str) -> str:
        return f"{API_PREFIX}/resources/{code_to_key(code)}"

    # ---------------------------------------------------------------- data exchange

    def publish_record(self, code: str, payload: Any) -> dict[str, Any]:
        return self.request("POST", self._resource_path(code) + "/records", {"payload": payload})

    def read_record(self, code: str, record_id: str) -> dict[str, Any]:
        return self.request("GET", self._resource_path(code) + f"/records/{record_id}")

    def round_trip(self, code: str, payload: Any = None) -> RoundTrip:
        """Publish a probe record to ``code`` and read it back, timing both legs."""
        if payload is None:
            payload = {"probe": secrets.token_hex(8), "sent_at": time.time()}
        started = time.perf_counter()
        published = self.publish_record(code, payload)
        middle = time.perf_counter()
        record = self.read_record(code, published["id"])
        finished = time.perf_counter()
        return RoundTrip(
            record_id=published["id"],
            resource_code=code,
            payload_matches=record["payload"] == payload,
            publish_ms=round((middle - started) * 1000, 3),
            read_ms=round((finished - middle) * 1000, 3),
            total_ms=round((finished - started) * 1000, 3),
            server_received_at=published["received_at"],
            server_served_at=record["served_at"],
        )


# --------------------------------------------------------------------------- script


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="client.py",
        description="Exchange platform client. Secret: --secret-file, "
        f"${SECRET_FILE_ENV} or ${SECRET_ENV} (never on the command line).",
    )
    parser.add_argument("--url", default=os.environ.get("EXCHANGE_URL"), help="https://HOST:PORT")
    parser.add_argument("--ca-bundle", default=os.environ.get("EXCHANGE_CA_BUNDLE"))
    parser.add_argument("--app-key", default=os.environ.get("EXCHANGE_APP_KEY"))
    parser.add_argument("--secret-file", default=os.environ.get(SECRET_FILE_ENV))
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("health", help="GET /api/v1/health (no authentication)")
    commands.add_parser("whoami", help="check the app's signature is accepted")
    probe = commands.add_parser("probe", help="make the platform call the system's health URL")
    probe.add_argument("system_id")
    resource = commands.add_parser("resource", help="show a catalogue resource and its state")
    resource.add_argument("code")
    roundtrip = commands.add_parser("roundtrip", help="publish + read back probe records")
    roundtrip.add_argument("code")
    roundtrip.add_argument("--count", type=int, default=1)
    return parser


def app_secret_from(args: argparse.Namespace) -> str | None:
    if args.secret_file:
        return read_secret_file(args.secret_file)
    return os.environ.get(SECRET_ENV) or None


def run_command(args: argparse.Namespace, client: ExchangeClient) -> dict[str, Any]:
    if args.command == "health":
        return client.health()
    if args.command == "whoami":
        return client.whoami()
    if args.command == "probe":
        return client.probe_system(args.system_id)
    if args.command == "resource":
        return client.get_resource(args.code)
    trips = [client.round_trip(args.code) for _ in range(max(1, args.count))]
    totals = [trip.total_ms for trip in trips]
    return {
        "count": len(trips),
        "all_payloads_match": all(trip.payload_matches for trip in trips),
        "median_ms": round(statistics.median(totals), 3),
        "min_ms": min(totals),
        "max_ms": max(totals),
        "last": trips[-1].as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not args.url:
            raise ExchangeError("no platform URL: pass --url or set EXCHANGE_URL")
        with ExchangeClient(
            args.url,
            ca_bundle=args.ca_bundle,
            app_key=args.app_key,
            app_secret=app_secret_from(args),
            timeout=args.timeout,
        ) as client:
            answer = run_command(args, client)
    except (StageFailed, EnvironmentNotReady) as exc:
        error = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        print(json.dumps({"ok": False, "error": error}, ensure_ascii=False))
        return int(getattr(exc, "exit_code", 1))
    ok = bool(answer.get("ok", True)) and answer.get("all_payloads_match", True)
    print(json.dumps({"ok": ok, "result": answer}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
