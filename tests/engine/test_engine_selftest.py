"""End to end with the built engine: a program on disk, a file backend, a dynamic provider."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from migrate.adapters.engine import engine_env, prepare_state_dir, pulumi_command

PROJECT_YAML = """\
name: engine-selftest
runtime: python
description: proves the pinned engine, its Python language host and dynamic providers
"""

PROGRAM = """\
import pulumi

from migrate.adapters.engine.selftest_provider import DigestFile

config = pulumi.Config()
probe = DigestFile("probe", text=config.require("text"), directory=config.require("directory"))
pulumi.export("digest", probe.digest)
pulumi.export("path", probe.path)
pulumi.export("token", config.require_secret("token"))
"""

TEXT = "城市政务云 engine selftest"
TOKEN = "not-a-real-token-7f3a9c"


def write_program(directory: Path) -> Path:
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text(PROJECT_YAML)
    (directory / "__main__.py").write_text(PROGRAM)
    return directory


def write_passphrase(path: Path) -> Path:
    path.touch(mode=0o600)
    path.write_text("selftest passphrase, not a secret of anyone\n")
    return path


@pytest.fixture
def stack(built_engine: Path, tmp_path: Path) -> Iterator[auto.Stack]:
    """A fresh stack on a file backend in tmp; destroyed and removed on the way out."""
    program = write_program(tmp_path / "program")
    state = tmp_path / "state"
    prepare_state_dir(state)
    env = engine_env(state, write_passphrase(tmp_path / "passphrase"), engine=built_engine)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(program),
        pulumi_home=env["PULUMI_HOME"],
        pulumi_command=pulumi_command(built_engine),
        env_vars=env,
        secrets_provider="passphrase",
    )
    created = auto.create_stack("dev", work_dir=str(program), opts=options)
    created.set_config("text", auto.ConfigValue(TEXT))
    created.set_config("directory", auto.ConfigValue(str(tmp_path)))
    created.set_config("token", auto.ConfigValue(TOKEN, secret=True))
    try:
        yield created
    finally:
        created.destroy()
        created.workspace.remove_stack("dev")


def changes_other_than_same(result: auto.UpResult) -> dict[str, int]:
    changes = result.summary.resource_changes or {}
    return {kind: count for kind, count in changes.items() if kind != "same"}


@pytest.mark.slow
def test_up_is_idempotent_and_destroy_removes_what_the_provider_made(
    stack: auto.Stack, tmp_path: Path
) -> None:
    started = time.monotonic()
    first = stack.up()
    print(f"selftest: first up took {time.monotonic() - started:.1f} s")

    digest = hashlib.sha256(TEXT.encode()).hexdigest()
    made = tmp_path / "probe.sha256"
    assert first.outputs["digest"].value == digest
    assert first.outputs["path"].value == str(made)
    assert made.read_text() == digest + "\n"  # written by the dynamic provider's create
    assert first.outputs["token"].secret and first.outputs["token"].value == TOKEN
    assert first.summary.resource_changes == {"create": 2}  # the stack and the probe

    state_files = list((tmp_path / "state" / "backend").rglob("*.json"))
    assert state_files, "the file backend holds the stack's state"
    assert all(TOKEN not in f.read_text() for f in state_files), "secret stored in plain text"

    preview = stack.preview()  # a dry run through the language host: nothing to change
    assert preview.change_summary == {"same": 2}

    started = time.monotonic()
    second = stack.up()
    print(f"selftest: second up took {time.monotonic() - started:.1f} s")
    assert changes_other_than_same(second) == {}
    assert second.outputs["digest"].value == digest

    stack.destroy()
    assert not made.exists()  # removed by the dynamic provider's delete
    assert stack.outputs() == {}
