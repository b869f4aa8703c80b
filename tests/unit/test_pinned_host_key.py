"""A target's host key is checked against the one its provisioning state pinned before a
stage's first play (a bare key exchange with an SSH server on loopback): a changed key
fails the stage with both fingerprints and no play run; a host that does not answer is left
to the play, as before."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest

from migrate.adapters import access
from migrate.adapters import ansible as runner
from migrate.core.errors import TargetHostKeyChanged
from migrate.core.journal import Journal
from migrate.stages.move import session as move_session


class KeyExchangeServer:
    """An SSH server on 127.0.0.1 that offers ``keys`` in key exchanges and lets nobody log
    in; ``exchanges`` counts the connections it answered."""

    def __init__(self, keys: list[paramiko.PKey]) -> None:
        self.keys = keys
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.exchanges = 0
        self.transports: list[paramiko.Transport] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _peer = self.listener.accept()
            except OSError:
                return  # closed
            self.exchanges += 1
            transport = paramiko.Transport(connection)
            self.transports.append(transport)  # open until the client ends it (or close)
            for key in self.keys:
                transport.add_server_key(key)
            # the client ends the exchange once it has the key
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=paramiko.ServerInterface())

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self.listener.close()
        self.thread.join(timeout=5)
        for transport in self.transports:
            transport.close()


def new_key(folder: Path, name: str, key_type: str) -> tuple[paramiko.PKey, str, str]:
    """(private key, its public key line, OpenSSH's fingerprint) of a key ssh-keygen makes."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)],
                   check=True, capture_output=True)
    loader = {"ed25519": paramiko.Ed25519Key, "ecdsa": paramiko.ECDSAKey}[key_type]
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True,
                            capture_output=True, text=True).stdout
    return loader(filename=str(path)), Path(f"{path}.pub").read_text().strip(), listed.split()[1]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[paramiko.PKey, str, str]]:
    return {"pinned": new_key(tmp_path, "pinned", "ed25519"),
            "other": new_key(tmp_path, "other", "ed25519"),
            "ecdsa": new_key(tmp_path, "ecdsa", "ecdsa")}


@pytest.fixture
def serve():
    servers: list[KeyExchangeServer] = []

    def start(*offered: paramiko.PKey) -> KeyExchangeServer:
        servers.append(KeyExchangeServer(list(offered)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_host_offering_its_pinned_key_passes(keys, serve) -> None:
    key, line, _fingerprint = keys["pinned"]
    server = serve(key)
    assert access.pinned_key_mismatch("127.0.0.1", line, server.port) is None
    assert server.exchanges == 1


def test_a_host_offering_another_key_names_both_openssh_fingerprints(keys, serve) -> None:
    _pinned, line, pinned_fingerprint = keys["pinned"]
    other, _line, other_fingerprint = keys["other"]
    server = serve(other)
    mismatch = access.pinned_key_mismatch("127.0.0.1", line, server.port)
    assert mismatch == access.KeyMismatch("127.0.0.1", f"ssh-ed25519 {pinned_fingerprint}",
                                          f"ssh-ed25519 {other_fingerprint}")


def test_the_pinned_key_type_is_the_one_asked_for(keys, serve) -> None:
    """A host offering several key types is asked for the pinned one (else the exchange
    would settle on its first choice and every other pin would read as changed)."""
    ed25519, ed25519_line, _ = keys["pinned"]
    ecdsa, ecdsa_line, _ = keys["ecdsa"]
    server = serve(ed25519, ecdsa)
    assert access.pinned_key_mismatch("127.0.0.1", ecdsa_line, server.port) is None
    assert access.pinned_key_mismatch("127.0.0.1", ed25519_line, server.port) is None
    mismatch = access.pinned_key_mismatch("127.0.0.1", keys["other"][1], server.port)
    assert mismatch is not None and mismatch.offered.startswith("ssh-ed25519 ")


def test_a_host_that_does_not_answer_is_left_to_the_play(keys) -> None:
    line = keys["pinned"][1]
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    assert access.pinned_key_mismatch("127.0.0.1", line, port, timeout=0.5) is None
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks SSH
        assert access.pinned_key_mismatch("127.0.0.1", line, silent.getsockname()[1],
                                          timeout=0.5) is None


def session_for(tmp_path: Path, targets: dict, monkeypatch: pytest.MonkeyPatch,
                played: list[str]) -> move_session.Session:
    """A stage's session whose targets listen on loopback ports; plays are recorded, not run."""
    def play(stage: str, *_args, **_kwargs) -> runner.PlayResult:
        played.append(stage)
        return runner.PlayResult(stage, "successful")

    def on_port(address: str, pinned: str, *_args, **kwargs):
        host, port = address.split(":")
        return real_mismatch(host, pinned, int(port), **kwargs)

    real_mismatch = access.pinned_key_mismatch
    monkeypatch.setattr(runner, "run_play", play)
    monkeypatch.setattr(access, "pinned_key_mismatch", on_port)
    context = SimpleNamespace(journal=Journal(tmp_path / "state", "test estate"))
    (tmp_path / "run").mkdir()
    return move_session.Session(context, {}, "sys", "r1", tmp_path / "run", tmp_path / "inv",
                                {}, [], None, {}, targets=targets)


def test_a_stage_fails_on_a_changed_target_key_before_its_first_play(
        tmp_path: Path, keys, serve, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned, line, pinned_fingerprint = keys["pinned"]
    other, _line, other_fingerprint = keys["other"]
    sound, changed = serve(pinned), serve(other)
    played: list[str] = []
    session = session_for(tmp_path, {
        "db": access_target(sound.port, line), "web": access_target(changed.port, line)},
        monkeypatch, played)

    with pytest.raises(TargetHostKeyChanged) as raised:
        move_session.journaled(session, "transfer",
                               lambda result: session.play("check_prerequisites", result))

    assert played == []
    message = raised.value.message
    assert "host key of 1 target(s) CHANGED: sys-web (127.0.0.1) offered" in message
    assert f"offered ssh-ed25519 {other_fingerprint}" in message
    assert f"pinned ssh-ed25519 {pinned_fingerprint}" in message
    assert "sys-db" not in message and "ssh-keygen -lf" in (raised.value.hint or "")
    (entry,) = [e for e in session.context.journal.entries() if e["stage"] == "transfer"]
    assert (entry["stage"], entry["result"]) == ("transfer", "failed")
    assert entry["outputs"]["error"] == message


def test_the_keys_are_checked_once_per_stage(tmp_path: Path, keys, serve,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pinned, line, _ = keys["pinned"]
    server = serve(pinned)
    played: list[str] = []
    session = session_for(tmp_path, {"web": access_target(server.port, line)}, monkeypatch,
                          played)

    def work(result: move_session.StageResult) -> None:
        session.play("check_prerequisites", result)
        session.play("prepare_target", result)

    move_session.journaled(session, "transfer", work)
    assert played == ["check_prerequisites", "prepare_target"]
    assert server.exchanges == 1


def access_target(port: int, host_key: str):
    """A target as the provisioning state gives it; its address carries the test's port."""
    from migrate.adapters.inventory import Target

    return Target(f"127.0.0.1:{port}", host_key)


@pytest.mark.parametrize("systems", [("wjw-fybj",), ("wjw-fybj", "scj-qyxy")],
                         ids=["one system", "two systems"])
def test_a_changed_target_key_fails_the_stage_command_with_exit_4_as_run_does(
        estate, run_cli, tmp_path: Path, keys, serve, monkeypatch: pytest.MonkeyPatch,
        systems) -> None:
    """README "Exit codes": 4, a stage ran and failed; its failure is recorded. One system
    or several, migrate transfer says so as migrate run does (2 is for refusals before
    anything ran)."""
    from migrate.orchestrate import pipeline
    from migrate.stages import move as moving

    line = keys["pinned"][1]
    changed = serve(keys["other"][0])
    played: list[str] = []
    (tmp_path / "stage").mkdir()
    first = session_for(tmp_path / "stage", {"web": access_target(changed.port, line)},
                        monkeypatch, played)

    def transfer(_context, system_id, _targets, _progress) -> move_session.StageResult:
        session = dataclasses.replace(first, system_id=system_id)
        return move_session.journaled(session, "transfer",
                                      lambda result: session.play("prepare_target", result))

    monkeypatch.setattr(pipeline, "provisioned_targets", lambda *_args: {})
    monkeypatch.setattr(pipeline, "guard_system", lambda *_args: None)
    monkeypatch.setattr(moving, "transfer", transfer)
    chosen = [a for s in systems for a in ("--system", s)]

    plain = run_cli("transfer", estate, *chosen, "--yes")
    assert plain.code == 4, plain
    assert "CHANGED" in plain.stderr and played == []
    document = json.loads(run_cli("transfer", estate, *chosen, "--yes", "-o", "json").stdout)
    assert document["error"]["exit_code"] == 4
    for failed in document["systems"]:
        assert failed["result"] == "failed"
        assert (failed["error"]["type"], failed["error"]["exit_code"]) == (
            "TargetHostKeyChanged", 4)
