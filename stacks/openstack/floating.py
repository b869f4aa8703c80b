"""Floating IPs, only where the plan gives an instance one (``floating_ip``: an instance of the
Internet zone that a flow from ``internet`` reaches): allocated from the planned external
network and associated with the instance's port. No other instance gets one; the department
routers never translate (network.py), so nothing else is reachable from outside.
"""

import pulumi_openstack as openstack

from migrate.core import stackplan


def floating_ips(system: dict, built: dict) -> dict[str, openstack.networking.FloatingIp]:
    """The floating IP of each instance the plan gives one, by instance name."""
    tags = stackplan.tags(system)
    made = {}
    for planned in system["instances"]:
        wanted = planned.get("floating_ip")  # plans made before floating IPs have none
        if not wanted:
            continue
        name = planned["resource_name"]
        address = openstack.networking.FloatingIp(
            f"{name}-floating-ip", pool=wanted["network"],
            description=f"{system['id']} {planned['name']}: exposed to internet by the plan",
            tags=tags)
        openstack.networking.FloatingIpAssociate(
            f"{name}-floating-ip-association", floating_ip=address.address,
            port_id=built[planned["name"]].port.id)
        made[planned["name"]] = address
    return made


def with_floating_addresses(outputs: dict, made: dict) -> dict:
    """The instances' outputs with ``floating_address`` beside the fixed ``address`` of each
    instance that has a floating IP."""
    return {name: {**found, "floating_address": made[name].address} if name in made else found
            for name, found in outputs.items()}
