#!/usr/bin/python3
"""A department's legacy web application, as it runs on the department's own server.

One self-contained file: Python's standard library plus psycopg2 (Debian's
python3-psycopg2). Started by systemd as

    python3 /opt/legacy/app.py --config /etc/legacy/<service>.json

Endpoints (JSON, UTF-8):
- ``GET <health>`` and ``GET /health``: {status, system, service, database, files,
  read_only}; 503 when the database is unreachable or its tables are not loaded yet.
- ``GET <interface path>?limit=&offset=``: rows of a catalogue resource, ordered by id.
- ``GET <interface path>/<id>``: one row. ``POST <interface path>``: insert one row
  (503 with ``read_only`` when the database refuses writes).
- ``GET /files``: the file trees (``?manifest=1`` adds sha256 per file);
  ``GET /files/<tree>/<relpath>``: one file.

The database password is read from ``$CREDENTIALS_DIRECTORY/<password_credential>``
(systemd's LoadCredential) or else from ``password_file``; it never appears in the config,
the command line or the logs. One database connection per request, with timeouts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import signal
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg2
import psycopg2.errors

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_BODY = 64 * 1024
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 5000
SOCKET_TIMEOUT_S = 30
CHUNK = 256 * 1024


def log(level: str, event: str, **fields: object) -> None:
    """One JSON object per line on stderr (the journal). Callers never pass secrets."""
    record = {"ts": datetime.now().astimezone().isoformat(timespec="milliseconds"),
              "level": level, "event": event, **fields}
    sys.stderr.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    sys.stderr.flush()


def to_json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class HttpError(Exception):
    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


# ---------------------------------------------------------------- configuration


class Config:
    def __init__(self, document: dict) -> None:
        self.service: str = document["service"]
        self.system: dict = document["system"]
        self.address: str = document["listen"].get("address", "0.0.0.0")
        self.port: int = int(document["listen"]["port"])
        self.health: str = document.get("health") or "/health"
        self.database: dict | None = document.get("database")
        self.resources: list[dict] = document.get("resources", [])
        self.trees: dict[str, str] = {t["name"]: t["root"] for t in document.get("files", [])}

    @classmethod
    def load(cls, path: str) -> Config:
        with open(path, encoding="utf-8") as handle:
            return cls(json.load(handle))

    def password(self) -> str | None:
        db = self.database or {}
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        candidates = []
        if credentials and db.get("password_credential"):
            candidates.append(os.path.join(credentials, db["password_credential"]))
        if db.get("password_file"):
            candidates.append(db["password_file"])
        for candidate in candidates:
            try:
                with open(candidate, encoding="utf-8") as handle:
                    return handle.read().rstrip("\r\n")
            except OSError:
                continue
        return None


# ---------------------------------------------------------------- database


class Database:
    """A fresh connection per request, on purpose: freezing the source for a cutover
    (``ALTER DATABASE ... SET default_transaction_read_only = on``) only reaches new
    sessions, and a pool would keep writing through its old ones."""

    def __init__(self, config: Config) -> None:
        self.settings = config.database
        self.application = config.service
        self._password = config.password()

    def connect(self):
        if self.settings is None:
            raise HttpError(404, "no_database", "this service has no database")
        db = self.settings
        return psycopg2.connect(
            host=db["host"], port=db.get("port", 5432), dbname=db["dbname"], user=db["user"],
            password=self._password, connect_timeout=CONNECT_TIMEOUT_S,
            application_name=self.application,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )

    def run(self, work):
        """``work(cursor)`` in one transaction on a fresh connection, closed afterwards."""
        connection = self.connect()
        try:
            with connection, connection.cursor() as cursor:
                return work(cursor)
        finally:
            connection.close()

    def state(self, tables: list[str]) -> str:
        """ok | read_only | error (unreachable, or its tables are not there yet: a database
        still being loaded is not healthy) | none (no database configured)."""
        if self.settings is None:
            return "none"

        def probe(cursor) -> tuple:
            cursor.execute(
                "SELECT current_setting('default_transaction_read_only') = 'on',"
                " pg_is_in_recovery(), ARRAY(SELECT name FROM unnest(%s::text[]) AS t(name)"
                " WHERE to_regclass(quote_ident(name)) IS NULL)", (tables,))
            return cursor.fetchone()

        try:
            read_only, recovery, missing = self.run(probe)
        except (psycopg2.Error, OSError) as error:
            log("warning", "database_unreachable", error=type(error).__name__,
                detail=str(error).strip().splitlines()[0] if str(error).strip() else "")
            return "error"
        if missing:
            log("warning", "tables_missing", tables=missing)
            return "error"
        return "read_only" if read_only or recovery else "ok"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact, as the database prints it
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, memoryview | bytes):
        return "\\x" + bytes(value).hex()
    return value


class Resource:
    def __init__(self, spec: dict) -> None:
        self.path = spec["path"].rstrip("/")
        self.code = spec.get("code")
        self.name = spec.get("name")
        self.table_name = spec["table"]
        self.table = quote_ident(spec["table"])
        self.columns = spec["columns"]
        self.keys = ["id", *(c["name"] for c in self.columns)]
        self.select = ", ".join(["id", *(quote_ident(c["column"]) for c in self.columns)])

    def row(self, values: tuple) -> dict:
        return {k: json_value(v) for k, v in zip(self.keys, values, strict=True)}

    def page(self, db: Database, limit: int, offset: int) -> dict:
        def work(cursor):
            cursor.execute(f"SELECT count(*) FROM {self.table}")
            total = cursor.fetchone()[0]
            cursor.execute(f"SELECT {self.select} FROM {self.table} ORDER BY id "
                           "LIMIT %s OFFSET %s", (limit, offset))
            return total, [self.row(r) for r in cursor.fetchall()]

        total, items = db.run(work)
        return {"resource": self.code, "name": self.name, "total": total, "limit": limit,
                "offset": offset, "items": items}

    def one(self, db: Database, row_id: int) -> dict:
        found = db.run(lambda c: (c.execute(
            f"SELECT {self.select} FROM {self.table} WHERE id = %s", (row_id,)), c.fetchone())[1])
        if found is None:
            raise HttpError(404, "not_found", f"no row {row_id}")
        return self.row(found)

    def insert(self, db: Database, document: object) -> dict:
        if not isinstance(document, dict) or not document:
            raise HttpError(400, "bad_request", "the body must be a JSON object of item values")
        by_name = {c["name"]: c["column"] for c in self.columns}
        unknown = sorted(set(document) - set(by_name))
        if unknown:
            raise HttpError(400, "bad_request", f"unknown items: {', '.join(unknown)}")
        names = list(document)
        columns = ", ".join(quote_ident(by_name[n]) for n in names)
        marks = ", ".join(["%s"] * len(names))
        sql = (f"INSERT INTO {self.table} ({columns}) VALUES ({marks}) "
               f"RETURNING {self.select}")
        return self.row(db.run(lambda c: (c.execute(sql, [document[n] for n in names]),
                                          c.fetchone())[1]))


# ---------------------------------------------------------------- files


class Trees:
    def __init__(self, roots: dict[str, str]) -> None:
        self.roots = roots
        self._digests: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def state(self) -> str:
        readable = all(os.path.isdir(r) and os.access(r, os.R_OK | os.X_OK)
                       for r in self.roots.values())
        return "ok" if readable else "error"

    def resolve(self, relpath: str) -> str:
        """The real file for ``<tree>/<relpath>``; never anything outside the tree."""
        parts = relpath.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") or "\x00" in p for p in parts):
            raise HttpError(400, "bad_path", "expected /files/<tree>/<path inside the tree>")
        root = self.roots.get(parts[0])
        if root is None:
            raise HttpError(404, "not_found", f"no file tree {parts[0]!r}")
        real_root = os.path.realpath(root)
        real = os.path.realpath(os.path.join(real_root, *parts[1:]))
        if os.path.commonpath([real_root, real]) != real_root or not os.path.isfile(real):
            raise HttpError(404, "not_found", "no such file")
        return real

    def listing(self, with_digests: bool) -> dict:
        entries = []
        for name, root in sorted(self.roots.items()):
            for directory, folders, files in os.walk(root):
                folders.sort()
                for file_name in sorted(files):
                    path = os.path.join(directory, file_name)
                    if not os.path.isfile(path) or os.path.islink(path):
                        continue
                    entry = {"name": f"{name}/{os.path.relpath(path, root)}", "path": path,
                             "size": os.path.getsize(path)}
                    if with_digests:
                        entry["sha256"] = self.sha256(path)
                    entries.append(entry)
        entries.sort(key=lambda e: e["name"])
        return {"count": len(entries), "bytes": sum(e["size"] for e in entries),
                "files": entries}

    def sha256(self, path: str) -> str:
        info = os.stat(path)
        key = (path, info.st_mtime_ns, info.st_size)
        with self._lock:
            known = self._digests.get(key)
        if known is None:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(block)
            known = digest.hexdigest()
            with self._lock:
                self._digests[key] = known
        return known


# ---------------------------------------------------------------- HTTP


class Application:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database(config)
        self.trees = Trees(config.trees)
        self.resources = [Resource(r) for r in config.resources]

    def health(self) -> tuple[int, dict]:
        database = self.db.state([r.table_name for r in self.resources])
        files = self.trees.state()
        if database == "error":
            status = "error"
        elif database == "read_only":
            status = "read_only"
        else:
            status = "ok" if files == "ok" else "degraded"
        code = 503 if database == "error" else 200
        return code, {"status": status, "system": self.config.system,
                      "service": self.config.service, "database": database, "files": files,
                      "read_only": database == "read_only"}

    def find_resource(self, path: str) -> tuple[Resource, str | None] | None:
        for resource in self.resources:
            if path == resource.path:
                return resource, None
            if path.startswith(resource.path + "/"):
                return resource, path[len(resource.path) + 1:]
        return None


def parse_int(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise HttpError(400, "bad_request", f"{name} must be an integer") from None
    if not low <= number <= high:
        raise HttpError(400, "bad_request", f"{name} must be between {low} and {high}")
    return number


class Handler(BaseHTTPRequestHandler):
    server_version = "LegacyDeptApp/1.0"
    timeout = SOCKET_TIMEOUT_S
    app: Application  # set on the subclass made by serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # replaced by the JSON access log of _handle

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _handle(self, route) -> None:
        started = time.monotonic()
        status = 500
        try:
            status = route()
        except HttpError as error:
            status = self._send_json(error.status, {"error": error.error, "detail": error.detail})
        except psycopg2.errors.UndefinedTable:
            status = self._send_json(503, {"error": "not_ready",
                                           "detail": "the database is not loaded yet"})
        except psycopg2.errors.ReadOnlySqlTransaction:
            status = self._send_json(503, {"error": "read_only",
                                           "detail": "the database accepts no writes"})
        except (psycopg2.DataError, psycopg2.IntegrityError) as error:
            status = self._send_json(400, {"error": "bad_request",
                                           "detail": str(error).strip().splitlines()[0]})
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            log("warning", "database_unreachable", error=type(error).__name__)
            status = self._send_json(503, {"error": "database_unavailable", "detail": ""})
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        except Exception as error:  # a bug: answer 500, keep serving
            log("error", "unhandled", error=type(error).__name__, detail=str(error)[:200])
            status = self._send_json(500, {"error": "internal", "detail": ""})
        log("info", "request", method=self.command, path=urlsplit(self.path).path,
            status=status, ms=round((time.monotonic() - started) * 1000, 2),
            client=self.client_address[0])

    def _get(self) -> int:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        app = self.app
        if path in ("/health", app.config.health):
            code, document = app.health()
            return self._send_json(code, document)
        if path == "/files":
            wanted = query.get("manifest", ["0"])[0] in ("1", "true", "yes")
            return self._send_json(200, app.trees.listing(with_digests=wanted))
        if path.startswith("/files/"):
            return self._send_file(app.trees.resolve(path[len("/files/"):]))
        found = app.find_resource(path.rstrip("/") or "/")
        if found is None:
            raise HttpError(404, "not_found", "no such endpoint")
        resource, rest = found
        if rest is None:
            limit = parse_int(query.get("limit", [None])[0], DEFAULT_LIMIT, 1, MAX_LIMIT, "limit")
            offset = parse_int(query.get("offset", [None])[0], 0, 0, 2**62, "offset")
            return self._send_json(200, resource.page(app.db, limit, offset))
        return self._send_json(200, resource.one(app.db, parse_int(rest, 0, 1, 2**62, "id")))

    def _post(self) -> int:
        path = unquote(urlsplit(self.path).path).rstrip("/")
        found = self.app.find_resource(path)
        if found is None or found[1] is not None:
            raise HttpError(404, "not_found", "no such endpoint")
        length = parse_int(self.headers.get("Content-Length"), 0, 0, MAX_BODY, "Content-Length")
        try:
            document = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            raise HttpError(400, "bad_request", "the body is not JSON") from None
        return self._send_json(201, found[0].insert(self.app.db, document))

    def _send_json(self, code: int, document: object) -> int:
        body = to_json(document)
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return code

    def _send_file(self, real: str) -> int:
        size = os.path.getsize(real)
        kind = mimetypes.guess_type(real)[0] or "application/octet-stream"
        with open(real, "rb") as handle:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for block in iter(lambda: handle.read(CHUNK), b""):
                self.wfile.write(block)
        return 200


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def serve(config: Config) -> None:
    handler = type("BoundHandler", (Handler,), {"app": Application(config)})
    server = Server((config.address, config.port), handler)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log("info", "stopping", signal=signal.Signals(signum).name)
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("info", "listening", address=config.address, port=server.server_address[1],
        service=config.service, system=config.system.get("id"),
        resources=[r.path for r in handler.app.resources], trees=sorted(config.trees))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="legacy department web application")
    parser.add_argument("--config", required=True, help="JSON config written by the seeder")
    parser.add_argument("--check", action="store_true", help="check the config and exit")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log("error", "bad_config", path=args.config, error=type(error).__name__,
            detail=str(error)[:200])
        return 2
    if config.database is not None and config.password() is None:
        log("warning", "no_password", detail="no readable password credential or file")
    if args.check:
        return 0
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
