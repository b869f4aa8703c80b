"""What a stack program reads: its part of plan.json, and the names stacks go by.

Stack programs (``stacks/<target>/``) import this module; it imports nothing of Pulumi, so the
same selection serves every cloud target and the tests of both.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

from migrate.core.errors import InvalidInput, Problem

HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

PROJECTS = {"openstack": "migrate-openstack", "sandbox": "migrate-sandbox"}


def network_stack_name(network_key: str) -> str:
    return f"net-{network_key}"


def system_stack_name(system_id: str) -> str:
    return f"sys-{system_id}"


def read_plan(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidInput([Problem(str(path), None, "", f"cannot read the plan: {error}",
                                    "run 'migrate plan ESTATE' first")]) from None


def select_system(plan: dict, system_id: str) -> dict:
    for system in plan["systems"]:
        if system["id"] == system_id:
            return system
    raise InvalidInput([Problem("plan.json", None, "systems", f"system {system_id} is not "
                                "planned", "only systems the census migrates are planned")])


def select_network(plan: dict, key: str) -> dict:
    for network in plan["networks"]:
        if network["key"] == key:
            return network
    raise InvalidInput([Problem("plan.json", None, "networks", f"network {key} is not planned")])


def tags(system: dict) -> list[str]:
    return ["managed-by:migrate", f"department:{system['department']['code']}",
            f"system:{system['id']}", f"protection-level:{system['protection_level']}"]


def network_tags(network: dict) -> list[str]:
    return ["managed-by:migrate", f"department:{network['department']['code']}",
            f"zone:{network['zone']}"]


def host_entries(text: str) -> dict[str, str]:
    """Extra /etc/hosts entries from the JSON object of migrate:hosts (name -> IPv4 address):
    names the instances must resolve that no DNS of the cloud serves."""
    entries = json.loads(text or "{}")
    if not isinstance(entries, dict):
        raise ValueError("migrate:hosts must be a JSON object of name -> IPv4 address")
    for name, address in entries.items():
        ipaddress.IPv4Address(address)
        if not isinstance(name, str) or not HOST_NAME.match(name):
            raise ValueError(f"migrate:hosts: {name!r} is not a host name")
    return dict(sorted(entries.items()))
