"""Department networks (one bridge per department and zone) and how a system attaches to one."""

import ipaddress
from dataclasses import dataclass

import pulumi

from migrate.core import stackplan
from migrate.rehearsal.sandbox.network import bridge_name
from migrate.rehearsal.sandbox.provider import SandboxNetwork


@dataclass
class Attachment:
    network_id: pulumi.Output
    bridge: pulumi.Output
    gateway: str
    prefix: int


def department_network(planned: dict) -> SandboxNetwork:
    return SandboxNetwork(planned["name"], planned)


def subnet_id(planned: dict) -> str:
    """The sandbox has no subnet object: the bridge and the range it carries name it."""
    return f"{bridge_name(planned['key'])}:{planned['cidr']}"


def attach(system: dict, planned: dict) -> Attachment:
    """The system's department network, from the outputs of its network stack.

    The network stack must carry the range the plan gives now; else the machines would get
    addresses the bridge does not route."""
    name = stackplan.network_stack_name(system["network"])
    reference = pulumi.StackReference(
        f"{pulumi.get_organization()}/{pulumi.get_project()}/{name}")
    bridge = pulumi.Output.all(reference.require_output("bridge"),
                               reference.require_output("cidr")).apply(
        lambda found: _checked_bridge(name, planned, found[0], found[1]))
    return Attachment(reference.require_output("network_id"), bridge, planned["gateway"],
                      ipaddress.IPv4Network(planned["cidr"]).prefixlen)


def _checked_bridge(stack: str, planned: dict, bridge: str, cidr: str) -> str:
    if cidr != planned["cidr"]:
        raise ValueError(f"stack {stack} carries {cidr} but the plan gives {planned['cidr']}; "
                         f"bring {stack} up first")
    return bridge
