"""stacks/openstack against the built OpenStack plugin: the input names the program passes are
the schema's, and the real engine loads the real plugin (no download) for `pulumi preview`.

No OpenStack is reachable here: the clouds.yaml's auth_url is a listener on a loopback port
that answers every request 401, so the preview must fail with the provider's authentication
error, after the plugin has asked the listener. Nothing connects to a non-loopback address.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pulumi
import pytest

from migrate.adapters.engine import find_engine, provider
from migrate.adapters.engine.version import OPENSTACK_PROVIDER_VERSION
from migrate.core.stackplan import select_network, select_system
from migrate.orchestrate import pipeline
from tests.conftest import EXAMPLE_ESTATE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cloud,  # the built OpenStack plugin
    # pulumi_openstack warns at import about its own deprecated aliases; none is used here.
    pytest.mark.filterwarnings(r"ignore:openstack\..* has been deprecated:DeprecationWarning"),
]

PROGRAM = Path(__file__).resolve().parents[2] / "stacks" / "openstack"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY")


@pytest.fixture(scope="module")
def plan() -> dict:
    estate = pipeline.open_estate(EXAMPLE_ESTATE)
    from migrate.core.plan import build_plan

    return build_plan(estate, pipeline.run_census(pipeline.context_of(estate)))


@pytest.fixture(scope="module")
def schema() -> dict:
    if provider.find_provider() is None:
        pytest.skip(f"pulumi-resource-openstack v{OPENSTACK_PROVIDER_VERSION} is not built: "
                    "run `make provider`")
    return json.loads(provider.schema_path().read_text())


# --- the input names ---------------------------------------------------------------------


class Recording(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        if args.typ == "pulumi:pulumi:StackReference":
            return [args.name, {"name": args.name, "outputs": {
                "network_id": "network-id", "subnet_id": "subnet-id"}}]
        return [f"id-of-{args.name}", dict(args.inputs)]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        return {"id": f"id-of-{args.args['name']}", "name": args.args["name"]}


def record(build) -> Recording:
    mocks = Recording()
    pulumi.runtime.set_mocks(mocks, project="migrate-openstack", stack="test", preview=False,
                             organization="organization")

    @pulumi.runtime.test
    def program():
        return pulumi.Output.all(*build())

    program()
    return mocks


def unknown_names(schema: dict, value, spec: dict, path: str) -> list[str]:
    """Input names in ``value`` (nested objects too) that ``spec`` does not declare."""
    if "$ref" in spec:
        ref = spec["$ref"].removeprefix("#/types/")
        spec = schema["types"][ref]
    if isinstance(value, dict) and "properties" in spec:
        found = []
        for name, item in value.items():
            if name not in spec["properties"]:
                found.append(f"{path}.{name}")
            else:
                found += unknown_names(schema, item, spec["properties"][name], f"{path}.{name}")
        return found
    if isinstance(value, list) and "items" in spec:
        return [n for i, item in enumerate(value)
                for n in unknown_names(schema, item, spec["items"], f"{path}[{i}]")]
    return []


def check_against_schema(schema: dict, mocks: Recording) -> list[str]:
    problems = []
    for resource in mocks.resources:
        if resource.typ.startswith("pulumi:"):
            continue
        spec = schema["resources"].get(resource.typ)
        if spec is None:
            problems.append(f"{resource.typ} is not in the schema")
            continue
        problems += unknown_names(schema, dict(resource.inputs),
                                  {"properties": spec.get("inputProperties", {})}, resource.typ)
    for call in mocks.calls:
        spec = schema["functions"].get(call.token)
        if spec is None:
            problems.append(f"{call.token} is not in the schema")
            continue
        problems += unknown_names(schema, dict(call.args), spec.get("inputs", {}), call.token)
    return problems


def test_every_input_the_program_passes_is_a_schema_input(program_modules, plan, schema):
    modules = program_modules("openstack")
    settings = plan["cloud"]["openstack"]
    network = plan["networks"][0]
    # a system with data volumes, so instances have block devices beyond the boot volume
    system = next(s for s in plan["systems"] if any(i["volumes"] for i in s["instances"]))

    def build_network():
        built = modules["network"].department_network(select_network(plan, network["key"]),
                                                      settings)
        return [built.network.id, built.subnet.id, built.router.id]

    def build_system():
        chosen = select_system(plan, system["id"])
        attached = modules["network"].attach(chosen)
        groups = modules["security"].security_groups(chosen)
        built = modules["compute"].instances(chosen, attached, groups, settings)
        return [b.server.id for b in built.values()]

    network_mocks, system_mocks = record(build_network), record(build_system)
    assert "openstack:networking/routerInterface:RouterInterface" in {
        r.typ for r in network_mocks.resources}
    servers = [r for r in system_mocks.resources if r.typ == "openstack:compute/instance:Instance"]
    assert any(len(s.inputs["blockDevices"]) > 1 for s in servers)
    for mocks in (network_mocks, system_mocks):
        assert mocks.calls
        assert check_against_schema(schema, mocks) == []


def test_the_floating_ips_and_cloud_service_rules_pass_schema_inputs(program_modules,
                                                                    openstack_plan, schema):
    modules = program_modules("openstack")
    settings = openstack_plan["cloud"]["openstack"]

    def build_system():
        chosen = select_system(openstack_plan, "sjj-tyrz")
        attached = modules["network"].attach(chosen)
        groups = modules["security"].security_groups(chosen)
        built = modules["compute"].instances(chosen, attached, groups, settings)
        made = modules["floating"].floating_ips(chosen, built)
        return [b.server.id for b in built.values()] + [f.id for f in made.values()]

    mocks = record(build_system)
    assert "openstack:networking/floatingIpAssociate:FloatingIpAssociate" in {
        r.typ for r in mocks.resources}
    assert check_against_schema(schema, mocks) == []


# --- the real engine with the real plugin ------------------------------------------------


class Refusing(BaseHTTPRequestHandler):
    """Keystone as seen without credentials: 401 for everything."""

    requests: ClassVar[list[str]] = []

    def answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        body = json.dumps({"error": {"code": 401, "title": "Unauthorized", "message":
                                     "The request you have made requires authentication."}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_HEAD = answer

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def refusing_keystone() -> Iterator[tuple[str, list[str]]]:
    Refusing.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3", Refusing.requests
    finally:
        server.shutdown()
        server.server_close()


def test_preview_loads_the_built_plugin_and_fails_on_authentication(
    plan: dict, schema: dict, tmp_path: Path, refusing_keystone
) -> None:
    from pulumi import automation as auto

    from migrate.adapters.engine import engine_env, prepare_state_dir, pulumi_command

    engine = find_engine()
    if engine is None:
        pytest.skip("the Pulumi engine is not built: run `make engine`")
    auth_url, requests = refusing_keystone
    settings = plan["cloud"]["openstack"]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {settings["cloud"]: {
        "auth": {"auth_url": auth_url, "username": "nobody", "password": "not-a-secret",
                 "project_name": "none", "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "region_name": "RegionOne", "interface": "public", "identity_api_version": 3}}}))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    passphrase = tmp_path / "passphrase"
    passphrase.touch(mode=0o600)
    passphrase.write_text("preview test passphrase, protects nothing\n")
    state = tmp_path / "state"
    prepare_state_dir(state)
    env = engine_env(state, passphrase, engine=engine)
    for name in [n for n in env if n.startswith("OS_") or n in PROXY_VARIABLES]:
        del env[name]
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    work_dir = tmp_path / "project"
    work_dir.mkdir()
    text = (PROGRAM / "Pulumi.yaml").read_text(encoding="utf-8")
    (work_dir / "Pulumi.yaml").write_text(text + f"main: {PROGRAM}\n", encoding="utf-8")

    network_key = plan["networks"][0]["key"]
    options = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir), pulumi_home=env["PULUMI_HOME"],
        pulumi_command=pulumi_command(engine), env_vars=env, secrets_provider="passphrase")
    stack = auto.create_stack(f"net-{network_key}", work_dir=str(work_dir), opts=options)
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in {
        "migrate:plan": str(plan_file), "migrate:network": network_key,
        "openstack:cloud": settings["cloud"]}.items()})
    with pytest.raises(auto.CommandError) as caught:
        stack.preview(color="never")
    output = str(caught.value)
    assert "could not find plugin" not in output and "no resource plugin" not in output
    # The Terraform provider's own words, about the loopback keystone's answer:
    assert "Error creating OpenStack networking client" in output, output
    assert f"[POST {auth_url}/auth/tokens], but got 401 instead" in output, output
    assert "POST /v3/auth/tokens" in requests, "the plugin never asked the loopback keystone"
