"""The sandbox address guard runs before every connection, on every path (issue 15).

The targets lie in TEST-NET-1 (192.0.2.0/24), on no bridge of any host, so the guard must
refuse them. Every way out is replaced by a recorder that refuses too: a socket, a play
(ansible's ssh), the verification suites (testinfra's ssh), the source's answers (ssh) and
any ssh, rsync or ansible-playbook process. So nothing leaves the host even where the
guard is missing, and the recorder shows that something would have.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from migrate.core.errors import GuardRefused, StageFailed
from migrate.orchestrate import pipeline
from tests.conftest import edit

SYSTEM = "wjw-fybj"
FAKE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3vFd9ZqGq0Yb0m8Jt3tE6n8zq4JjTzC0tXvV0Yh8Qv"
TARGETS = {"web": {"address": "192.0.2.11", "host_key": FAKE_KEY},
           "db": {"address": "192.0.2.12", "host_key": FAKE_KEY}}
PLATFORM_IP = "192.0.2.30"
SECRETS = ("ssh-wjw", "db-fybj", "exchange-wjw-fybj")
CONNECTING_PROGRAMS = {"ssh", "scp", "rsync", "ansible-playbook"}


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """What tried to connect; each attempt is refused, so none leaves the host."""
    tried: list[tuple] = []

    def refuse(what: tuple) -> None:
        tried.append(what)
        raise ConnectionRefusedError(f"test recorder: {what}")

    def play(stage, *_args, **_kwargs):
        tried.append(("play", stage))
        raise StageFailed(f"test recorder: play {stage}")

    def pytest_run(*_args, **_kwargs):
        tried.append(("verification suites",))
        raise StageFailed("test recorder: verification suites")

    def source_answers(_context, system_id, **_kwargs):
        tried.append(("source answers", system_id))

    real_popen = subprocess.Popen

    def popen(args, *rest, **kwargs):
        program = Path(str(args[0] if isinstance(args, list | tuple) else args).split()[0])
        if program.name in CONNECTING_PROGRAMS and "-O" not in args:
            refuse(("process", program.name))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(socket, "create_connection", lambda address, *_a, **_k:
                        refuse(("socket", address)))
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr("migrate.adapters.ansible.run_play", play)
    monkeypatch.setattr("migrate.stages.verify.run.run_pytest", pytest_run)
    monkeypatch.setattr("migrate.stages.verify.answers.record_source_answers", source_answers)
    return tried


@pytest.fixture
def hostile_estate(estate: Path, monkeypatch: pytest.MonkeyPatch, connections: list[tuple]):
    """The example estate (a sandbox one) whose targets are off this host; everything a
    stage reads before it connects is in place (secrets, CA bundle, source host keys)."""
    secrets = estate / "secrets"
    secrets.mkdir(mode=0o700)
    for name in SECRETS:
        (secrets / name).write_text(f"{name}-not-a-real-secret-0123456789abcdef\n")
        (secrets / name).chmod(0o600)
    (estate / "certs").mkdir()
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", estate / "certs" / "exchange-ca.pem")
    opened = pipeline.open_estate(estate)
    from migrate.rehearsal.sandbox.estate import known_hosts_path

    known = known_hosts_path(opened)
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text("".join(f"{host.address} {FAKE_KEY}\n"
                             for host in opened.systems[SYSTEM].source.hosts))
    monkeypatch.setattr(pipeline, "provisioned_targets", lambda _context, _sid: dict(TARGETS))
    monkeypatch.setattr("migrate.rehearsal.sandbox.estate_plan.plan_sandbox",
                        lambda _estate: SimpleNamespace(platform_ip=PLATFORM_IP))
    return opened


def assert_refused(results: list[dict]) -> None:
    (result,) = results
    assert result["result"] == "failed", result
    assert "refusing to connect" in result["error"]["message"], result
    assert result["error"]["exit_code"] == GuardRefused.exit_code


@pytest.mark.parametrize("stage", ["check_prerequisites", "transfer", "cutover", "rollback"])
def test_moving_stages_refuse_off_host_targets_before_any_play(
        hostile_estate, connections, stage: str) -> None:
    results = pipeline.move(pipeline.context_of(hostile_estate), stage, [SYSTEM],
                            confirmed=True)
    assert connections == []
    assert_refused(results)


def test_verification_refuses_off_host_targets_before_its_ssh(hostile_estate, connections):
    results = pipeline.verify_systems(pipeline.context_of(hostile_estate), [SYSTEM])
    assert connections == []
    assert_refused(results)


def test_platform_client_refuses_an_off_host_platform_before_connecting(
        hostile_estate, connections):
    with pytest.raises(GuardRefused, match=f"refusing to connect to {PLATFORM_IP}"):
        pipeline.register_systems(pipeline.context_of(hostile_estate), [SYSTEM],
                                  side="source")
    assert connections == []


def test_the_guard_is_a_no_op_off_the_sandbox(estate: Path, monkeypatch: pytest.MonkeyPatch):
    from migrate.adapters import access
    from migrate.targets import load_surroundings

    monkeypatch.setattr(load_surroundings("sandbox"), "guard_address",
                        lambda *_a: pytest.fail("guarded"))
    edit(estate / "migrate.yaml", "target: sandbox", "target: openstack")
    access.guard_addresses(pipeline.open_context(estate),
                           ["192.0.2.11", "exchange.example.gov.cn"])
