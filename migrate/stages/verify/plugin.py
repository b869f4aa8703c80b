"""The pytest plugin of the verification suites (loaded with ``-p migrate.stages.verify.plugin`` by
``migrate.stages.verify.run``): the context, one testinfra host per target machine (ssh backend,
the run's own ssh config), the ``check`` helper that records what was expected and found,
and the parametrization of every check from the context.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

CONTEXT_ENV = "MIGRATE_VERIFY_CONTEXT"

# fixture name -> (context list, id of an item)
PARAMETERS = {
    "service": (lambda c: c["services"], lambda s: f"{s['name']}@{s['host']}"),
    "machine": (lambda c: list(c["ports"].values()), lambda p: p["host"]),
    "volume": (lambda c: c["volumes"], lambda v: f"{v['mount']}@{v['host']}"),
    "tree": (lambda c: c["files"], lambda t: f"{t['path']}@{t['host']}"),
    "database": (lambda c: c["databases"], lambda d: f"{d['name']}@{d['host']}"),
    "health": (lambda c: c["application"]["health"], lambda h: f"{h['service']}@{h['host']}"),
    "sample": (lambda c: c["application"]["samples"], lambda s: f"{s['resource']} {s['path']}"),
    "exchange_host": (lambda c: (c["exchange"] or {}).get("hosts", []), lambda h: h),
    "resource_code": (lambda c: (c["exchange"] or {}).get("resources", []), lambda r: r),
}


def load_context() -> dict[str, Any]:
    path = os.environ.get(CONTEXT_ENV)
    if not path:
        raise pytest.UsageError(f"{CONTEXT_ENV} must name the verification context (JSON)")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    context = load_context()
    for name, (items, ident) in PARAMETERS.items():
        if name in metafunc.fixturenames:
            found = items(context)
            metafunc.parametrize(name, found, ids=[ident(i) for i in found])


@pytest.fixture(scope="session")
def context() -> dict[str, Any]:
    return load_context()


class Hosts:
    """testinfra hosts by machine name, made on first use (ssh, the run's config)."""

    def __init__(self, ssh_config: str) -> None:
        self.ssh_config = ssh_config
        self._hosts: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._hosts:
            import testinfra

            self._hosts[name] = testinfra.get_host(f"ssh://{name}", ssh_config=self.ssh_config)
        return self._hosts[name]


@pytest.fixture(scope="session")
def hosts(context: dict[str, Any]) -> Hosts:
    return Hosts(context["ssh_config"])


class Check:
    """Records the expectation of a check in the JUnit properties, and fails it with a
    message saying what was expected, what was found, where, and what to look at."""

    def __init__(self, record: Any) -> None:
        self._record = record

    def evidence(self, name: str, value: Any) -> None:
        self._record(f"evidence.{name}", json.dumps(value, ensure_ascii=False, sort_keys=True))

    def expect(self, ok: bool, *, expected: str, found: str, host: str, look_at: str) -> None:
        for key, value in (("expected", expected), ("found", found), ("host", host),
                           ("look_at", look_at)):
            self._record(key, value)
        if not ok:
            pytest.fail(f"expected {expected}; found {found} (on {host}); look at {look_at}",
                        pytrace=False)


@pytest.fixture
def check(record_property: Any) -> Check:
    return Check(record_property)


def run_on(host: Any, command: str) -> Any:
    """Run a command on a testinfra host (never raises on a non-zero exit)."""
    return host.run(command)
