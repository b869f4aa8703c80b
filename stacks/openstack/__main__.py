"""Wiring only: read the plan, build one network or one system, export what later stages need."""

import pulumi

from migrate.core import stackplan

import compute
import floating
import network
import preflight
import security

config = pulumi.Config("migrate")
plan = stackplan.read_plan(config.require("plan"))
network_key = config.get("network") or ""
system_id = config.get("system") or ""
preflight.check(plan, network_key, system_id)  # before any resource: raises on every problem

if config.get_bool("preflight_only"):
    pass  # checked only: migrate checks every stack this way before it changes any
elif network_key:
    planned = stackplan.select_network(plan, network_key)
    built = network.department_network(planned, plan["cloud"]["openstack"])
    pulumi.export("network_id", built.network.id)
    pulumi.export("subnet_id", built.subnet.id)
    pulumi.export("cidr", planned["cidr"])
elif system_id:
    system = stackplan.select_system(plan, system_id)
    attached = network.attach(system)
    groups = security.security_groups(system)
    instances = compute.instances(system, attached, groups, plan["cloud"]["openstack"],
                                  compute.authorized_keys(config.get("authorized_keys") or ""),
                                  stackplan.host_entries(config.get("hosts") or "{}"))
    pulumi.export("instances", floating.with_floating_addresses(
        compute.instance_outputs(system, instances, plan["cloud"]["openstack"]),
        floating.floating_ips(system, instances)))
else:
    raise ValueError("set migrate:network or migrate:system (migrate provision does this)")
