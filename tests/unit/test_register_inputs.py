"""register reads the files the estate names for the exchange platform (the CA bundle of
migrate.yaml, each system's app secret) before it changes anything on the platform; one that
is missing or unusable is a domain error naming the file and the field, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.adapters import exchange
from migrate.core.errors import EXIT_ENVIRONMENT, EXIT_INVALID_INPUT, InvalidInput
from migrate.stages import register as register_stage
from migrate.targets.context import Context

SYSTEMS = ("wjw-fybj", "scj-qyxy")  # both declare an exchange section


@pytest.fixture
def registering(estate: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The estate's app secrets written, every address allowed, and the platform's side of
    registration recorded instead of done: the systems it was asked to register."""
    secrets = estate / "secrets"
    secrets.mkdir(mode=0o700)
    for system_id in SYSTEMS:
        path = secrets / f"exchange-{system_id}"
        path.write_text(f"app-secret-of-{system_id}-0123456789\n", encoding="utf-8")
        path.chmod(0o600)
    monkeypatch.setattr(Context, "guard_address", lambda _self, _address: None)
    registered: list[str] = []

    def register_catalogue(system, *_args, **_kwargs) -> dict:
        registered.append(system.id)
        return {"system": system.id, "changed": True, "linked": 0, "resources": [],
                "endpoint": {"base_url": "-"}}

    monkeypatch.setattr(register_stage, "register_catalogue", register_catalogue)
    return registered


def register_entries(estate: Path) -> list[dict]:
    journal = estate / ".migrate" / "journal.jsonl"
    if not journal.is_file():
        return []
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    return [e for e in entries if e.get("stage") == "register"]


@pytest.mark.parametrize("bundle", ["missing", "empty", "a folder"])
def test_an_unusable_ca_bundle_names_the_file_and_its_field_before_any_change(
        estate, registering, run_cli, bundle):
    path = estate / "certs" / "exchange-ca.pem"
    if bundle == "empty":
        path.parent.mkdir()
        path.write_text("", encoding="utf-8")
    elif bundle == "a folder":
        path.mkdir(parents=True)
    args = ["register", estate, *(a for s in SYSTEMS for a in ("--system", s))]

    plain = run_cli(*args)
    assert plain.code == EXIT_INVALID_INPUT, plain
    assert "unexpected failure" not in plain.stderr
    assert str(path) in plain.stderr and "exchange.ca_bundle" in plain.stderr
    assert "migrate.yaml" in plain.stderr and "hint" in plain.stderr

    document = json.loads(run_cli(*args, "-o", "json").stdout)
    assert document["error"]["type"] == "InvalidInput"
    (problem,) = document["problems"]
    assert (Path(problem["file"]).name, problem["path"]) == ("migrate.yaml", "exchange.ca_bundle")
    assert problem["line"] is not None and str(path) in problem["message"] and problem["hint"]
    assert registering == [] and register_entries(estate) == []  # nothing was changed


def test_a_missing_app_secret_of_a_later_system_stops_register_before_any_change(
        estate, registering, run_cli, monkeypatch):
    monkeypatch.setattr(exchange.ssl, "create_default_context", lambda **_kw: None)  # a CA
    (estate / "secrets" / f"exchange-{SYSTEMS[1]}").unlink()
    result = run_cli("register", estate, *(a for s in SYSTEMS for a in ("--system", s)))
    assert result.code == EXIT_ENVIRONMENT, result
    assert f"exchange-{SYSTEMS[1]}" in result.stderr
    assert registering == [] and register_entries(estate) == []


def test_the_client_alone_names_an_unreadable_ca_bundle(tmp_path) -> None:
    """The client copied onto a target machine runs without the estate: its error names the
    file (and is a domain error, which the toolkit turns into the estate's field)."""
    with pytest.raises(exchange.CABundleError, match=str(tmp_path / "nowhere.pem")):
        exchange.ExchangeClient("https://exchange.example", ca_bundle=str(tmp_path / "nowhere.pem"))
    assert not issubclass(exchange.CABundleError, InvalidInput)  # the estate is not known there


def test_an_app_secret_that_is_not_text_is_named_not_a_traceback(estate, registering, run_cli,
                                                                 tmp_path) -> None:
    (estate / "secrets" / f"exchange-{SYSTEMS[0]}").write_bytes(b"\xff\xfe" * 16)
    result = run_cli("register", estate, "--system", SYSTEMS[0])
    assert result.code == EXIT_ENVIRONMENT, result
    assert "unexpected failure" not in result.stderr
    assert f"exchange-{SYSTEMS[0]}" in result.stderr and "UTF-8" in result.stderr
    assert registering == []
    alone = tmp_path / "secret"  # the client copied onto a target reads its own file
    alone.write_bytes(b"\xff\xfe" * 16)
    alone.chmod(0o600)
    with pytest.raises(exchange.SecretFileError, match="UTF-8"):
        exchange.read_secret_file(str(alone))
