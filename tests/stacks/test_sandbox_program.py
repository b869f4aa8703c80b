"""The sandbox program: its firewall rules (pure), the program under Pulumi's mocks, and one
end-to-end run with the real engine that boots machines (root only)."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pytest

from migrate.core import stackplan
from migrate.core.errors import EnvironmentNotReady, InvalidInput
from migrate.core.stackplan import PROJECTS, select_network, select_system
from migrate.rehearsal.sandbox import hostkeys, layout, machines, network
from migrate.rehearsal.sandbox.provider import (
    NO_ENCRYPTION,
    firewall_rules,
    render_ruleset,
    volume_path,
    wipe_folder,
)

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN_PLAN = ROOT / "tests" / "golden" / "example-plan.json"
PROGRAM = ROOT / "stacks" / "sandbox"
DYNAMIC = "pulumi-python:dynamic/sandbox:"


@pytest.fixture(scope="module")
def plan() -> dict:
    return json.loads(GOLDEN_PLAN.read_text(encoding="utf-8"))


# ---- (a) nftables rules from the plan -------------------------------------------------------

RULE = re.compile(r"^ip (saddr|daddr) (\S+|\{ [^}]+ \}) (tcp|udp) dport (\d+) accept comment ")
ALWAYS = {"ct state established,related accept", 'iifname "lo" accept', 'oifname "lo" accept'}


@dataclass
class Chain:
    policy: str | None
    accepts: list[tuple]


def parse_ruleset(text: str) -> dict[str, Chain]:
    """The chains of our table: policy and accept rules as (direction, proto, port, nets)."""
    chains: dict[str, Chain] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("chain "):
            current = chains.setdefault(line.split()[1], Chain(None, []))
        elif "policy" in line and current is not None:
            current.policy = line.rsplit("policy", 1)[1].strip(" ;")
        elif "accept" in line:
            assert current is not None, line
            if line in ALWAYS:
                continue
            found = RULE.match(line)
            assert found, f"an accept rule that is not a planned rule: {line}"
            nets = tuple(sorted(found[2].strip("{} ").split(", ")))
            direction = "ingress" if found[1] == "saddr" else "egress"
            assert (current is chains.get("input")) == (direction == "ingress"), line
            current.accepts.append((direction, found[3], int(found[4]), nets))
    return chains


def expected_rules(system: dict, instance: str, gateway: str) -> Counter:
    wanted = Counter()
    for rule in system["security_rules"]:
        if rule["instance"] != instance:
            continue
        nets = [rule["peer"]["cidr"]] + ([f"{gateway}/32"] if rule["peer"]["kind"] == "ops"
                                         else [])
        wanted[(rule["direction"], rule["protocol"], rule["port"], tuple(sorted(nets)))] += 1
    return wanted


def test_every_planned_rule_is_accepted_and_nothing_else(plan):
    checked = 0
    for system in plan["systems"]:
        gateway = select_network(plan, system["network"])["gateway"]
        for instance in system["instances"]:
            rules = firewall_rules(system, instance["name"], gateway)
            chains = parse_ruleset(render_ruleset(instance["security_group"], rules))
            assert {name: chain.policy for name, chain in chains.items()} == {
                "input": "drop", "output": "drop", "forward": "drop"}
            assert chains["forward"].accepts == []
            made = Counter(chains["input"].accepts + chains["output"].accepts)
            assert made == expected_rules(system, instance["name"], gateway), system["id"]
            checked += sum(made.values())
    assert checked == sum(len(s["security_rules"]) for s in plan["systems"])


def test_instance_peers_are_their_32_and_ops_includes_the_gateway(plan):
    system = select_system(plan, "rsj-sbcx")
    gateway = select_network(plan, "rsj-egov_extranet")["gateway"]
    addresses = {i["name"]: i["address"] for i in system["instances"]}
    rules = firewall_rules(system, "db", gateway)
    from_web = [r for r in rules if r["peer"] == "instance web"]
    assert [(r["direction"], r["port"], r["networks"]) for r in from_web] == [
        ("ingress", 5432, [f"{addresses['web']}/32"])]
    ssh = [r for r in rules if r["origin"] == "management"]
    assert [r["networks"] for r in ssh] == [["10.30.0.0/24", f"{gateway}/32"]]
    world = [r for r in rules if "0.0.0.0/0" in r["networks"]]
    assert world == []


def test_a_peer_without_cidr_is_refused_naming_the_setting(plan):
    system = copy.deepcopy(select_system(plan, "rsj-sbcx"))
    for rule in system["security_rules"]:
        if rule["peer"]["kind"] == "ops":
            rule["peer"]["cidr"] = None
    with pytest.raises(InvalidInput) as refused:
        firewall_rules(system, "web", "10.20.246.1")
    assert "cloud.ops_network" in str(refused.value.problems[0])


def test_temporary_rules_are_marked_in_the_ruleset(plan):
    system = select_system(plan, "rsj-sbcx")
    rules = firewall_rules(system, "web", "10.20.246.1")
    text = render_ruleset("sg-rsj-sbcx-web", rules)
    temporary = [line for line in text.splitlines() if "(temporary)" in line]
    assert len(temporary) == sum(r["temporary"] for r in rules) > 0
    assert all("tcp dport 22 accept" in line for line in temporary)


def test_a_released_volume_is_wiped_without_following_links(tmp_path):
    volume = tmp_path / "volumes" / "sys-db-pgdata"
    (volume / "base").mkdir(parents=True)
    (volume / "base" / "table").write_bytes(b"citizen records" * 100)
    witness = tmp_path / "witness"  # a second name of the same inode sees the overwrite
    os.link(volume / "base" / "table", witness)
    host_file = tmp_path / "host-file"
    host_file.write_text("belongs to the host\n")
    (volume / "escape").symlink_to(host_file)
    wipe_folder(volume)
    assert not volume.exists()
    assert witness.read_bytes() == bytes(1500)
    assert host_file.read_text() == "belongs to the host\n"


# ---- (b) the program under Pulumi's mocks ------------------------------------------------


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, network_outputs: dict) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.network_outputs = network_outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        if args.typ == "pulumi:pulumi:StackReference":
            return [args.name, {"name": args.name, "outputs": self.network_outputs}]
        return [f"id-of-{args.name}", dict(args.inputs)]

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"unexpected invoke {args.token}")

    def of_type(self, kind: str) -> dict[str, dict]:
        return {r.name: r.inputs for r in self.resources if r.typ == DYNAMIC + kind}


def run_program(build, network_outputs: dict | None = None) -> RecordingMocks:
    mocks = RecordingMocks(network_outputs or {})
    pulumi.runtime.set_mocks(mocks, project=PROJECTS["sandbox"], stack="test", preview=False,
                             organization="organization")

    @pulumi.runtime.test
    def program():
        return pulumi.Output.all(*build())

    program()
    return mocks


OPERATOR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockKeyForTestsOnly operator"


def system_mocks(modules: dict, plan: dict, system_id: str, root: str) -> RecordingMocks:
    system = select_system(plan, system_id)
    planned = select_network(plan, system["network"])

    def build():
        attached = modules["network"].attach(system, planned)
        groups = modules["security"].security_groups(system, attached, root)
        volumes = modules["compute"].volumes(system, root)
        built = modules["compute"].machines(
            system, attached, groups, volumes, root,
            authorized_keys=modules["compute"].authorized_keys(OPERATOR_KEY),
            hosts=stackplan.host_entries('{"exchange.example": "10.40.0.5"}'))
        return [m.id for m in built.values()]

    return run_program(build, {"bridge": "mg-test", "cidr": planned["cidr"],
                               "network_id": "mg-test"})


def test_every_system_gets_its_machines_volumes_and_firewalls(program_modules, plan):
    modules = program_modules("sandbox")
    root = "/srv/sandbox-root"
    for system in plan["systems"]:
        mocks = system_mocks(modules, plan, system["id"], root)
        planned = select_network(plan, system["network"])
        prefix = ipaddress.IPv4Network(planned["cidr"]).prefixlen
        machines_made = mocks.of_type("Machine")
        firewalls = mocks.of_type("Firewall")
        volumes = mocks.of_type("Volume")
        assert set(machines_made) == {i["resource_name"] for i in system["instances"]}
        assert set(firewalls) == {i["security_group"] for i in system["instances"]}
        for instance in system["instances"]:
            made = machines_made[instance["resource_name"]]
            assert made["address"] == f"{instance['address']}/{prefix}"
            assert (made["image"], made["bridge"], made["gateway"]) == (
                "cloud", "mg-test", planned["gateway"])
            assert made["root"] == root and made["hostname"] == instance["resource_name"]
            assert made["authorized_keys"] == OPERATOR_KEY + "\n"
            assert made["hosts"] == {"exchange.example": "10.40.0.5"}
            firewall = firewalls[instance["security_group"]]
            assert made["ruleset"] == firewall["ruleset"]
            assert len(firewall["rules"]) == sum(
                r["instance"] == instance["name"] for r in system["security_rules"])
            mounts = {v["mount"]: v["path"] for v in made["volumes"]}
            assert mounts == {v["mount"]: volume_path(root, system["id"], instance["name"],
                                                      v["name"])
                              for v in instance["volumes"]}
        assert {v["path"] for v in volumes.values()} == {
            volume_path(root, system["id"], i["name"], v["name"])
            for i in system["instances"] for v in i["volumes"]}


def test_encrypted_volumes_say_the_sandbox_cannot_encrypt(program_modules, plan):
    modules = program_modules("sandbox")
    level3 = system_mocks(modules, plan, "zrj-bdcdj", "/srv/r").of_type("Volume")
    level2 = system_mocks(modules, plan, "rsj-sbcx", "/srv/r").of_type("Volume")
    assert level3 and {(v["encrypted"], v["encryption"]) for v in level3.values()} == {
        (True, NO_ENCRYPTION)}
    assert level2 and {v["encrypted"] for v in level2.values()} == {False}


def test_department_network_is_a_bridge_with_the_planned_gateway(program_modules, plan):
    modules = program_modules("sandbox")
    planned = select_network(plan, "rsj-egov_extranet")

    def build():
        built = modules["network"].department_network(planned)
        return [built.id, built.bridge]

    mocks = run_program(build)
    (made,) = mocks.of_type("Network").values()
    assert made["bridge"] == network.bridge_name("rsj-egov_extranet")
    assert (made["cidr"], made["gateway"]) == (planned["cidr"], planned["gateway"])


def test_a_private_key_is_refused_as_authorized_keys(program_modules):
    compute = program_modules("sandbox")["compute"]
    with pytest.raises(ValueError, match="private key"):
        compute.authorized_keys("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    with pytest.raises(ValueError):
        stackplan.host_entries('{"exchange": "not-an-address"}')
    with pytest.raises(ValueError):
        stackplan.host_entries('{"ex change; rm -rf /": "10.40.0.5"}')


# ---- (c) end to end with the real engine ------------------------------------------------


def free_test_network() -> ipaddress.IPv4Network:
    used = [i.network for link in network._ip_json("addr", "show")
            for i in network._ipv4_interfaces(link)]
    for offset in range(50):
        candidate = ipaddress.IPv4Network(f"10.250.{100 + (os.getpid() + offset) % 50}.0/24")
        if not any(candidate.overlaps(other) for other in used):
            return candidate
    raise RuntimeError("no free 10.250.N.0/24 for the test network")


def rule(instance: str, direction: str, port: int, peer: dict, origin: str) -> dict:
    return {"instance": instance, "direction": direction, "protocol": "tcp", "port": port,
            "peer": peer, "origin": origin, "temporary": False}


def flow_rules(source: dict, target: dict, port: int, index: int) -> list[dict]:
    origin = f"target.flows[{index}]"
    return [rule(target["name"], "ingress", port, {"kind": "instance", "instance": source["name"],
                                                   "cidr": f"{source['address']}/32"}, origin),
            rule(source["name"], "egress", port, {"kind": "instance", "instance": target["name"],
                                                  "cidr": f"{target['address']}/32"}, origin)]


def small_plan(tag: str, cidr: ipaddress.IPv4Network) -> dict:
    """One department network, one system of two instances, one flow web -> db:5432."""
    hosts = list(cidr.hosts())
    key = f"{tag}-lan"
    system_id = f"{tag}-app"

    def instance(name: str, address: str, volumes: list[dict]) -> dict:
        return {"name": name, "resource_name": f"{system_id}-{name}", "replaces": [f"{name}1"],
                "roles": [name], "image": "debian-12", "cloud_image": "debian-12-hardened",
                "address": address, "security_group": f"sg-{system_id}-{name}",
                "boot_volume": {"size_gb": 20, "encrypted": True}, "volumes": volumes}

    web = instance("web", str(hosts[9]), [])
    db = instance("db", str(hosts[10]), [{"name": "data-srv-data", "mount": "/srv/data",
                                          "size_gb": 2, "encrypted": True, "holds": "files"}])
    rules = flow_rules(web, db, 5432, 0)
    for each in (web, db):
        rules.append(rule(each["name"], "ingress", 22, {"kind": "ops", "cidr": "10.30.0.0/24"},
                          "management"))
        rules.append(rule(each["name"], "egress", 443,
                          {"kind": "exchange", "cidr": "10.40.0.0/24"}, "interconnection"))
    return {
        "schema_version": 1, "kind": "migrate.plan",
        "cloud": {"target": "sandbox", "protection_level": 3, "openstack": None},
        "networks": [{"key": key, "name": f"net-{key}", "zone": "lan", "slot": 1,
                      "department": {"code": tag, "name": "测试局"},
                      "cidr": str(cidr), "gateway": str(hosts[0])}],
        "systems": [{"id": system_id, "name": "端到端测试系统", "protection_level": 3,
                     "department": {"code": tag, "name": "测试局"}, "network": key,
                     "instances": [web, db], "security_rules": rules}],
    }


@dataclass
class Sandbox:
    plan_file: Path
    plan: dict
    root: Path
    operator_key: Path
    stacks: dict  # "network" | "system" -> auto.Stack

    @property
    def system(self) -> dict:
        return self.plan["systems"][0]

    @property
    def network_key(self) -> str:
        return self.plan["networks"][0]["key"]

    def write_plan(self) -> None:
        self.plan_file.write_text(json.dumps(self.plan, ensure_ascii=False, indent=2))


def engine_or_skip() -> Path:
    from migrate.adapters.engine import ensure_engine
    from migrate.rehearsal.sandbox.host import require_host

    try:
        require_host()
        return ensure_engine(build=False)
    except EnvironmentNotReady as error:
        print(f"skipping the sandbox program end to end: {error.message}")
        pytest.skip(f"needs root, the sandbox tools and the built engine: {error.message}")


def workspace_dir(directory: Path) -> Path:
    """A project dir of the test's own (stack settings files land there); main is the
    program on disk."""
    directory.mkdir()
    text = (PROGRAM / "Pulumi.yaml").read_text(encoding="utf-8")
    (directory / "Pulumi.yaml").write_text(text + f"main: {PROGRAM}\n", encoding="utf-8")
    return directory


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    from pulumi import automation as auto

    from migrate.adapters.engine import engine_env, prepare_state_dir, pulumi_command
    from migrate.rehearsal.sandbox import images

    engine = engine_or_skip()
    images.ensure_image("cloud")
    tag = f"e{os.getpid() % 10000}"
    plan = small_plan(tag, free_test_network())
    root = tmp_path / "sandbox"
    root.mkdir()
    operator_key, public_key = hostkeys.ensure_client_keypair(tmp_path / "operator" / "id")
    passphrase = tmp_path / "passphrase"
    passphrase.touch(mode=0o600)
    passphrase.write_text("end-to-end test passphrase, protects nothing real\n")
    state = tmp_path / "state"
    prepare_state_dir(state)
    env = engine_env(state, passphrase, engine=engine)
    work_dir = workspace_dir(tmp_path / "project")
    done = Sandbox(tmp_path / "plan.json", plan, root, operator_key, {})
    done.write_plan()

    def stack(name: str, config: dict[str, str]) -> auto.Stack:
        options = auto.LocalWorkspaceOptions(
            work_dir=str(work_dir), pulumi_home=env["PULUMI_HOME"],
            pulumi_command=pulumi_command(engine), env_vars=env, secrets_provider="passphrase")
        made = auto.create_stack(name, work_dir=str(work_dir), opts=options)
        common = {"migrate:plan": str(done.plan_file), "migrate:sandbox_root": str(root)}
        made.set_all_config({k: auto.ConfigValue(v) for k, v in {**common, **config}.items()})
        return made

    try:
        done.stacks["network"] = stack(f"net-{done.network_key}",
                                       {"migrate:network": done.network_key})
        done.stacks["system"] = stack(f"sys-{done.system['id']}", {
            "migrate:system": done.system["id"], "migrate:authorized_keys": public_key,
            "migrate:hosts": json.dumps({"exchange.test": "10.40.0.5"})})
        yield done
    finally:
        tear_down(done)


def tear_down(done: Sandbox) -> None:
    """Destroy the stacks; then, whatever is left, by the names this test gave."""
    for kind in ("system", "network"):
        made = done.stacks.get(kind)
        if made is None:
            continue
        try:
            made.destroy()
            made.workspace.remove_stack(made.name)
        except Exception as error:  # the last resort below cleans up
            print(f"destroy of {made.name} failed: {error}")
    for instance in done.system["instances"]:
        machines.destroy_machine(instance["resource_name"], done.root)
    network.remove_bridge(done.network_key, force=True)


def machine_state(stack, resource_name: str) -> dict:
    """The outputs recorded in the stack's state for one machine."""
    resources = stack.export_stack().deployment["resources"]
    (found,) = [r for r in resources
                if r["type"] == DYNAMIC + "Machine" and r["urn"].endswith("::" + resource_name)]
    return found["outputs"]


def changes(summary: dict | None) -> dict:
    return {kind: count for kind, count in (summary or {}).items() if kind != "same"}


def ssh_options(sandbox: Sandbox, known_hosts: Path) -> list[str]:
    return ["ssh", "-F", "/dev/null", "-i", str(sandbox.operator_key), "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10"]


# From inside a machine: "open", "refused" (nothing listens, the firewall let it through) or
# "dropped" (a firewall dropped it).
PROBE = ("python3 -c \"import socket,sys\ntry:\n socket.create_connection((sys.argv[1],"
         "int(sys.argv[2])),3).close(); print('open')\nexcept ConnectionRefusedError: "
         "print('refused')\nexcept OSError: print('dropped')\" ")


def host_probe(address: str, port: int) -> str:
    network.assert_local_address(address)
    try:
        socket.create_connection((address, port), 2).close()
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "dropped"
    return "open"


@pytest.mark.slow
@pytest.mark.sandbox
def test_up_boots_enforces_updates_and_destroys(sandbox: Sandbox, tmp_path: Path) -> None:
    net_stack, sys_stack = sandbox.stacks["network"], sandbox.stacks["system"]
    net_up = net_stack.up()
    bridge = net_up.outputs["bridge"].value
    assert net_up.outputs["cidr"].value == sandbox.plan["networks"][0]["cidr"]
    assert network.find_bridge(bridge) is not None

    started = time.monotonic()
    first = sys_stack.up()
    first_seconds = time.monotonic() - started
    print(f"sandbox program: first up of the two-machine system took {first_seconds:.1f} s")
    assert changes(first.summary.resource_changes) == {"create": 6}  # stack, 2 fw, 1 vol, 2 vm
    instances = first.outputs["instances"].value
    web, db = instances["web"], instances["db"]
    for name in ("web", "db"):
        made = instances[name]
        assert machines.machine_status(made["resource_name"], sandbox.root) == machines.RUNNING
        assert made["machine"] == layout.machine_name(made["resource_name"])
        assert made["host_key"].startswith("ssh-ed25519 ")

    known_hosts = hostkeys.write_known_hosts(
        tmp_path / "known_hosts", [f"{m['address']} {m['host_key']}" for m in instances.values()])
    ssh = ssh_options(sandbox, known_hosts)

    def run(machine: dict, command: str) -> str:
        network.assert_local_address(machine["address"])
        done = subprocess.run([*ssh, f"root@{machine['address']}", command], capture_output=True,
                              text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run(web, "hostname") == web["resource_name"]
    assert run(db, "hostname") == db["resource_name"]
    assert run(web, "getent hosts exchange.test").split() == ["10.40.0.5", "exchange.test"]
    for port in (5432, 5433):
        run(db, f"systemd-run --unit=listen{port} python3 -m http.server {port}")
    time.sleep(1.0)
    assert run(web, PROBE + f"{db['address']} 5432") == "open"
    assert run(web, PROBE + f"{db['address']} 22") == "dropped"
    assert run(web, PROBE + f"{db['address']} 5433") == "dropped"
    assert run(db, PROBE + f"{web['address']} 22") == "dropped"
    assert host_probe(db["address"], 5432) == "dropped"  # the host is ops: ssh only
    assert host_probe(db["address"], 22) == "open"

    (volume,) = db["volumes"]
    assert volume["encryption"] == {"encrypted": False, "by": None, "detail": NO_ENCRYPTION}
    assert oct(Path(volume["path"]).stat().st_mode & 0o777) == "0o700"
    run(db, "echo kept > /srv/data/marker")
    assert (Path(volume["path"]) / "marker").read_text() == "kept\n"

    started = time.monotonic()
    second = sys_stack.up()
    print(f"sandbox program: second up took {time.monotonic() - started:.1f} s")
    assert changes(second.summary.resource_changes) == {}

    # A new flow web -> db:5433: the firewalls and machines update in place, live.
    system = sandbox.system
    addressed = {i["name"]: i for i in system["instances"]}
    system["security_rules"] += flow_rules(addressed["web"], addressed["db"], 5433, 1)
    sandbox.write_plan()
    preview = sys_stack.preview()
    assert changes(preview.change_summary) == {"update": 4}, preview.change_summary
    updated = sys_stack.up()
    assert changes(updated.summary.resource_changes) == {"update": 4}
    assert updated.outputs["instances"].value["db"]["id"] == db["id"], "not replaced"
    assert run(web, PROBE + f"{db['address']} 5433") == "open"
    assert run(db, "cat /srv/data/marker") == "kept"

    # A stopped machine (as after a host reboot) shows as an update and boots again.
    machines.stop_machine(db["resource_name"], sandbox.root)
    sys_stack.refresh()
    assert machine_state(sys_stack, db["resource_name"])["status"] == machines.STOPPED
    assert changes(sys_stack.preview().change_summary) == {"update": 1}
    sys_stack.up()
    assert machines.machine_status(db["resource_name"], sandbox.root) == machines.RUNNING
    assert host_probe(db["address"], 5432) == "dropped", "the firewall holds after a reboot"

    started = time.monotonic()
    sys_stack.destroy()
    print(f"sandbox program: destroy of the system took {time.monotonic() - started:.1f} s")
    for made in instances.values():
        assert machines.machine_status(made["resource_name"], sandbox.root) == machines.ABSENT
    assert not Path(volume["path"]).exists()
    assert list((sandbox.root / "firewalls").iterdir()) == []
    net_stack.destroy()
    assert network.find_bridge(bridge) is None
