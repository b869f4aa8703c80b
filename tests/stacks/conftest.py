"""Load a stack program's modules from stacks/<target>/ for tests under Pulumi's mocks."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

STACKS = Path(__file__).resolve().parent.parent.parent / "stacks"
PROGRAM_MODULES = ("network", "security", "compute", "floating")


@pytest.fixture
def program_modules():
    """Import network/security/compute of one program; forget them afterwards, so the
    programs of other targets (same module names) load cleanly in other tests."""

    def load(target: str) -> dict:
        folder = str(STACKS / target)
        sys.path.insert(0, folder)
        for name in PROGRAM_MODULES:
            sys.modules.pop(name, None)
        return {name: importlib.import_module(name) for name in PROGRAM_MODULES
                if (STACKS / target / f"{name}.py").is_file()}

    yield load
    for name in PROGRAM_MODULES:
        sys.modules.pop(name, None)
    sys.path[:] = [p for p in sys.path if not p.startswith(str(STACKS))]


# The example estate on OpenStack, with the cloud's resolvers and time servers named.
OPENSTACK_SETTINGS = ("    external_network: egov-ext\n"
                      "    dns_servers: [10.0.0.53, 10.0.0.54]\n"
                      "    ntp_servers: [10.0.0.123]")


@pytest.fixture(scope="session")
def openstack_plan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The plan of the example estate with cloud.target openstack: egress to the metadata
    service, two resolvers and a time server, and a floating IP for sjj-tyrz's web."""
    from migrate.core.plan import build_plan
    from migrate.orchestrate import pipeline
    from tests.conftest import EXAMPLE_ESTATE, edit

    estate = tmp_path_factory.mktemp("openstack") / "estate"
    shutil.copytree(EXAMPLE_ESTATE, estate,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    edit(estate / "migrate.yaml", "target: sandbox ", "target: openstack ")
    edit(estate / "migrate.yaml", "    external_network: egov-ext", OPENSTACK_SETTINGS)
    loaded = pipeline.open_estate(estate)
    return build_plan(loaded, pipeline.run_census(pipeline.context_of(loaded)))
