"""The built OpenStack plugin: its version, its cache, and a schema with the SDK's tokens.

Built by `make provider` (about 7 minutes cold on 2 cores, seconds warm); skipped with that
hint when it is missing (a failure under CI, see tests/conftest.py).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import time
import warnings
from pathlib import Path

import pytest

from migrate.adapters.engine import provider
from migrate.adapters.engine.version import OPENSTACK_PROVIDER_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.cloud]  # the built OpenStack plugin

# The SDK modules stacks/openstack uses (networking, compute, blockstorage, images) and those
# the next parts of the OpenStack work will (object storage for artifacts, identity).
USED_MODULES = ("networking", "compute", "blockstorage", "images", "objectstorage", "identity")
RESOURCES_OF_TF_OPENSTACK_V3_4_0 = 108


@pytest.fixture(scope="module")
def built_provider() -> Path:
    plugin = provider.find_provider()
    if plugin is None:
        pytest.skip(
            f"pulumi-resource-openstack v{OPENSTACK_PROVIDER_VERSION} is not built: run "
            "`make provider` (about 7 minutes cold on 2 cores, needs Go and the module proxy)"
        )
    return plugin


@pytest.fixture(scope="module")
def schema(built_provider: Path) -> dict:
    return json.loads(provider.schema_path().read_text())


def module_of(token: str) -> str:
    return token.split(":")[1].split("/")[0]


def test_the_plugin_reports_the_sdk_version(built_provider: Path) -> None:
    assert provider.reported_version(built_provider) == OPENSTACK_PROVIDER_VERSION


def test_a_second_build_is_a_cache_hit(built_provider: Path) -> None:
    started = time.monotonic()
    assert provider.build_provider(progress=lambda _line: None) == built_provider
    assert time.monotonic() - started < 5


def test_the_schema_has_every_terraform_resource(schema: dict) -> None:
    assert schema["name"] == "openstack"
    assert len(schema["resources"]) == RESOURCES_OF_TF_OPENSTACK_V3_4_0
    marker = provider.read_marker()
    assert marker is not None and marker["resources"] == len(schema["resources"])


def test_the_schema_has_every_sdk_token_of_the_modules_the_program_uses(schema: dict) -> None:
    tokens = [t for t in provider.sdk_tokens() if module_of(t) in USED_MODULES]
    assert len(tokens) > 80
    defined = set(schema["resources"]) | set(schema["functions"])
    assert [t for t in tokens if t not in defined] == []
    for token in ("openstack:networking/network:Network", "openstack:compute/instance:Instance",
                  "openstack:images/getImage:getImage"):
        assert token in defined


def test_only_the_sdks_deprecated_index_aliases_are_not_mapped(schema: dict) -> None:
    """Each Terraform name has one token; the SDK's "index" duplicates are deprecated aliases
    of module tokens (the SDK warns when they are used)."""
    defined = set(schema["resources"]) | set(schema["functions"])
    missing = [t for t in provider.sdk_tokens() if t not in defined]
    assert missing and all(module_of(t) == "index" for t in missing), missing


def snake_case(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def sdk_module(module: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its deprecated aliases
        return importlib.import_module(f"pulumi_openstack.{module}")


def test_every_input_of_those_modules_is_named_as_in_the_sdk(schema: dict) -> None:
    """Each resource's <Name>Args and each get_<name> function of the SDK take exactly the
    schema's inputs (in snake case), so no property the program passes can be unknown."""
    mismatches = []
    for kind, key in (("resources", "inputProperties"), ("functions", "inputs")):
        for token, spec in schema[kind].items():
            if token.startswith("pulumi:") or module_of(token) not in USED_MODULES:
                continue
            name = token.split(":")[2]
            module = sdk_module(module_of(token))
            if kind == "resources":
                target = getattr(module, f"{name}Args").__init__
                declared = spec.get(key, {})
            else:
                target = getattr(module, snake_case(name))
                declared = spec.get(key, {}).get("properties", {})
            sdk = set(inspect.signature(target).parameters) - {"self", "__self__", "opts"}
            if sdk != {snake_case(n) for n in declared}:
                mismatches.append(token)
    assert mismatches == []
