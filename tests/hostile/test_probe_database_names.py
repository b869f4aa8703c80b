"""check_prerequisites' source probe logs in with each database's password: a database name
holding "=" must stay a name, or psql reads it as a connection string whose host receives
the password."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROBE = (Path(__file__).resolve().parents[2]
         / "playbooks/roles/check_prerequisites/files/probe_source.py")


def load_probe():
    spec = importlib.util.spec_from_file_location("probe_source", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_database_name_reaches_psql_as_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = load_probe()
    calls: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(probe, "run", lambda argv, stdin="", env=None: (
        calls.append((argv, env)) or (0, "", "")))
    name = "app host=192.0.2.66 user=x'\\"

    probe.check_logins([{"name": name, "user": "app"}], ["secret-0123456789"], "db1", [])

    [(argv, env)] = calls
    assert argv[argv.index("-d") + 1] == "dbname='app host=192.0.2.66 user=x\\'\\\\'"
    assert argv[argv.index("-h") + 1] == "127.0.0.1"
    assert "secret-0123456789" not in " ".join(argv) and env["PGPASSWORD"] == "secret-0123456789"
