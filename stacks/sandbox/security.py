"""Security groups: one per instance, default deny both ways, rules exactly from the plan,
enforced with nftables inside the machine (see migrate.rehearsal.sandbox.provider)."""

from dataclasses import dataclass

from migrate.rehearsal.sandbox.provider import SandboxFirewall, firewall_rules, render_ruleset


@dataclass
class Group:
    firewall: SandboxFirewall
    ruleset: str


def security_groups(system: dict, attached, root: str) -> dict[str, Group]:
    groups = {}
    for instance in system["instances"]:
        rules = firewall_rules(system, instance["name"], attached.gateway)
        ruleset = render_ruleset(instance["security_group"], rules)
        firewall = SandboxFirewall(instance["security_group"], root, system["id"], instance,
                                   rules, ruleset)
        groups[instance["name"]] = Group(firewall, ruleset)
    return groups
