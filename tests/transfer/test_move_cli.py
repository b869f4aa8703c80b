"""The operator's path on the sandbox, through the CLI: sandbox up, provision (real stacks,
data volumes mounted), transfer, cutover, register; destroy refused while the source keeps the
move's traces, then with --leave-source-traces; audit verify."""

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
        run_cli("destroy", sandbox_estate, "--system", SYSTEM, "--yes",
                "--leave-source-traces")  # the sources go next
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

    # cut over, not decommissioned: the source keeps the move's traces; destroy refuses
    refused = run_cli("destroy", estate, "--system", SYSTEM, "--yes", "--output", "json")
    assert refused.code == 2, refused.stderr
    assert f"{SYSTEM}: cut over" in json.loads(refused.stdout)["error"]["message"]
    gone = run_cli("destroy", estate, "--system", SYSTEM, "--yes", "--leave-source-traces",
                   "--output", "json")
    assert gone.code == 0, gone.stderr
    document = json.loads(gone.stdout)
    assert document["source_traces_left"][SYSTEM]["stage"] == "cutover"
    assert f"sys-{SYSTEM}" in [s["stack"] for s in document["stacks"]]
    assert run_cli("audit", "verify", estate).code == 0
