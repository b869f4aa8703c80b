"""Security groups: one per instance, default deny both ways, rules exactly from the plan."""

import pulumi_openstack as openstack

from migrate import stackplan


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
            f"{peer['kind']}-{peer.get('instance') or peer.get('host') or index}")
    return openstack.networking.SecGroupRule(
        f"{system['id']}-{name}",
        description=f"{rule['origin']}{' (temporary)' if rule['temporary'] else ''}",
        direction=rule["direction"], ethertype="IPv4", protocol=rule["protocol"],
        port_range_min=rule["port"], port_range_max=rule["port"],
        security_group_id=groups[rule["instance"]].id, **remote)
