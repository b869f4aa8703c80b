"""Security groups: one per instance, default deny both ways, rules exactly from the plan."""

import pulumi
import pulumi_openstack as openstack

from migrate.core import stackplan


def security_groups(system: dict) -> dict[str, openstack.networking.SecGroup]:
    groups = {}
    for instance in system["instances"]:
        groups[instance["name"]] = openstack.networking.SecGroup(
            instance["security_group"], name=instance["security_group"],
            description=f"{system['id']} {instance['name']}: planned flows only",
            delete_default_rules=True, tags=stackplan.tags(system))
    for index, rule in enumerate(system["security_rules"]):
        security_rule(system, groups, index, rule)
    return groups


def security_rule(system: dict, groups: dict, index: int, rule: dict):
    peer = rule["peer"]
    remote = {}
    if peer["kind"] == "instance":
        remote["remote_group_id"] = groups[peer["instance"]].id
    elif peer.get("cidr"):
        remote["remote_ip_prefix"] = peer["cidr"]
    else:
        raise ValueError(f"{system['id']}: rule {index} has no address for {peer['kind']}; "
                         "set exchange.network and cloud.ops_network in migrate.yaml")
    name = (f"{rule['instance']}-{rule['direction']}-{rule['protocol']}-{rule['port']}-"
            f"{peer['kind']}-{_peer_label(peer)}")
    return openstack.networking.SecGroupRule(
        f"{system['id']}-{name}",
        description=f"{rule['origin']}{' (temporary)' if rule['temporary'] else ''}",
        direction=rule["direction"], ethertype="IPv4", protocol=rule["protocol"],
        port_range_min=rule["port"], port_range_max=rule["port"],
        security_group_id=groups[rule["instance"]].id, **remote,
        # every change replaces a rule, and neutron refuses a second identical rule (409):
        # the old one must go first
        opts=pulumi.ResourceOptions(delete_before_replace=True))


CLOUD_SERVICES = ("metadata_service", "dns_server", "ntp_server")


def _peer_label(peer: dict) -> str:
    """What tells rules of the same port and peer kind apart: the instance, the source host,
    a cloud service's address (udp and tcp 53 to each resolver), else the peer's network.
    Never the rule's position: a rule added to the plan would rename every later one, and
    neutron refuses the renamed copies (409, the rule exists) before the old ones go."""
    if peer["kind"] in CLOUD_SERVICES:
        return peer["cidr"].split("/")[0]
    return (peer.get("instance") or peer.get("host")
            or peer["cidr"].replace(".", "-").replace("/", "-"))
