"""The operator's path on the sandbox, through the CLI: sandbox up, provision (real stacks,
data volumes mounted), transfer, cutover, register, audit verify."""

from __future__ import annotations

import json

import pytest

from tests.run import events

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
SYSTEM = "wjw-fybj"


@pytest.fixture
def moving_estate(sandbox_estate, run_cli):
    """The example estate with SYSTEM's manifest alone: 'sandbox up' boots its source hosts,
    not the other systems'."""
    events.keep_only(sandbox_estate, SYSTEM)
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--system", SYSTEM, "--yes")
        run_cli("sandbox", "down", sandbox_estate)


def changed(result) -> int:
    return json.loads(result.stdout)["systems"][0]["changed"]


def test_move_one_system_through_the_cli(moving_estate, run_cli):
    estate = moving_estate
    assert run_cli("sandbox", "up", estate).code == 0
    provisioned = run_cli("provision", estate, "--system", SYSTEM, "--yes")
    assert provisioned.code == 0, provisioned.stderr

    first = run_cli("transfer", estate, "--system", SYSTEM, "--output", "json")
    assert first.code == 0, first.stderr
    second = run_cli("transfer", estate, "--system", SYSTEM, "--output", "json")
    assert second.code == 0 and changed(second) == 0, second.stderr

    cut = run_cli("cutover", estate, "--system", SYSTEM, "--yes", "--output", "json")
    assert cut.code == 0, cut.stderr
    outputs = json.loads(cut.stdout)["systems"][0]["outputs"]
    assert outputs["files"] and outputs["databases"]

    registered = run_cli("register", estate, "--system", SYSTEM, "--output", "json")
    assert registered.code == 0, registered.stderr
    assert json.loads(registered.stdout)["systems"][0]["linked"] == 1
    assert run_cli("audit", "verify", estate).code == 0
