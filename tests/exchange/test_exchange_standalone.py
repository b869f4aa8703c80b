"""server.py and client.py are single stdlib-only files that run as copied scripts.

The copies run with ``python -I -S``: no site-packages, so neither ``migrate`` nor any
PyPI package is importable, as on a minimal Debian machine with only python3.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "migrate"
# each script as it is copied onto a machine, and where the package keeps it
SCRIPTS = {"server.py": PACKAGE / "rehearsal" / "exchange" / "server.py",
           "client.py": PACKAGE / "adapters" / "exchange.py"}
BARE_PYTHON = [sys.executable, "-I", "-S"]


def top_level_imports(path: Path) -> set[str]:
    """Modules imported outside ``try: ... except ImportError`` fallbacks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name) and handler.type.id == "ImportError"
            for handler in node.handlers
        ):
            guarded.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", ["server.py", "client.py"])
def test_only_the_standard_library_is_imported(name: str) -> None:
    imports = top_level_imports(SCRIPTS[name])
    assert imports, "the AST walk found no imports at all"
    assert imports <= set(sys.stdlib_module_names), imports - set(sys.stdlib_module_names)


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    folder = tmp_path / "target-machine"
    folder.mkdir()
    for name, source in SCRIPTS.items():
        shutil.copy(source, folder / name)
    return folder


def write_secret(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def run_client(
    copies: Path, server, *args: str, env: dict[str, str] | None = None, ca: Path | None = None
) -> tuple[int, dict, str]:
    command = [
        *BARE_PYTHON,
        str(copies / "client.py"),
        "--url", server.url,
        "--ca-bundle", str(ca or server.ca_cert),
        *args,
    ]  # fmt: skip
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=clean_env, cwd=copies
    )
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def test_copied_server_and_client_round_trip(copies: Path, start_server, enrolled, make_resource):
    server = start_server(
        command=[*BARE_PYTHON, str(copies / "server.py")],
        auto_approve=True,
        extra_args=("--probe-allow-network", "127.0.0.0/8"),  # no list: no probe
    )
    app = enrolled(server)
    doc = make_resource()
    app.client.put_resource(doc)
    secret_file = write_secret(copies / "app.secret", app.app_secret)
    key = ["--app-key", app.app_key, "--secret-file", str(secret_file)]

    code, answer, _ = run_client(copies, server, "health")
    assert (code, answer["ok"], answer["result"]["status"]) == (0, True, "ok")

    code, answer, output = run_client(copies, server, *key, "whoami")
    assert (code, answer["result"]["system_id"]) == (0, app.system_id)

    code, answer, output = run_client(
        copies, server, *key, "roundtrip", doc["code"], "--count", "5"
    )
    assert code == 0, output
    assert answer["result"]["count"] == 5 and answer["result"]["all_payloads_match"]
    assert answer["result"]["median_ms"] > 0

    code, answer, output = run_client(copies, server, *key, "resource", doc["code"])
    assert (code, answer["result"]["state_label"]) == (0, "已挂接")

    code, answer, output = run_client(copies, server, *key, "probe", app.system_id)
    assert code == 1, "nothing listens at the registered URL, so the probe is not ok"
    assert answer["result"]["ok"] is False
    assert app.app_secret not in output


def test_client_script_reads_the_secret_from_the_environment(copies, auto_server, enrolled):
    app = enrolled(auto_server)
    env = {"EXCHANGE_APP_KEY": app.app_key, "EXCHANGE_APP_SECRET": app.app_secret}
    code, answer, output = run_client(copies, auto_server, "whoami", env=env)
    assert (code, answer["result"]["app_key"]) == (0, app.app_key)
    assert app.app_secret not in output


def test_client_script_refuses_a_readable_secret_file(copies, auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    loose = write_secret(copies / "loose.secret", app.app_secret, mode=0o644)
    code, answer, output = run_client(
        copies, auto_server, "--app-key", app.app_key, "--secret-file", str(loose), "whoami"
    )
    assert code == 3
    assert answer["ok"] is False and "chmod 600" in answer["error"]["hint"]
    assert app.app_secret not in output


def test_client_script_reports_tls_failure(copies, auto_server, sandbox_pki) -> None:
    code, answer, _ = run_client(copies, auto_server, "health", ca=sandbox_pki.other_ca_cert)
    assert code == 4
    assert answer["error"]["type"] == "ExchangeTLSError"


def test_client_script_reports_a_bad_signature(copies, auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    env = {"EXCHANGE_APP_KEY": app.app_key, "EXCHANGE_APP_SECRET": "z" * 43}
    code, answer, _ = run_client(copies, auto_server, "whoami", env=env)
    assert code == 4
    assert "bad_signature" in answer["error"]["message"]


def test_server_refuses_a_readable_admin_token(copies: Path, sandbox_pki) -> None:
    token = write_secret(copies / "admin.token", "t" * 32, mode=0o644)
    command = [
        *BARE_PYTHON, str(copies / "server.py"),
        "--listen", "127.0.0.1:0",
        "--db", str(copies / "x.db"),
        "--cert", str(sandbox_pki.server_cert),
        "--key", str(sandbox_pki.server_key),
        "--admin-token-file", str(token),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "chmod 600" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (copies / "x.db").exists(), "nothing is created before the checks pass"
