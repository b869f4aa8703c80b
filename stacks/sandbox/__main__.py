"""Wiring only: read the plan, build one network or one system, export what later stages need."""

import pulumi

from migrate.core import stackplan
from migrate.rehearsal.sandbox.host import sandbox_root

import compute
import network
import security

config = pulumi.Config("migrate")
plan = stackplan.read_plan(config.require("plan"))
network_key = config.get("network") or ""
system_id = config.get("system") or ""
root = str(sandbox_root(config.get("sandbox_root") or None))

if network_key:
    planned = stackplan.select_network(plan, network_key)
    built = network.department_network(planned)
    pulumi.export("network_id", built.id)
    pulumi.export("subnet_id", network.subnet_id(planned))
    pulumi.export("cidr", planned["cidr"])
    pulumi.export("bridge", built.bridge)
    pulumi.export("gateway", planned["gateway"])
elif system_id:
    system = stackplan.select_system(plan, system_id)
    attached = network.attach(system, stackplan.select_network(plan, system["network"]))
    groups = security.security_groups(system, attached, root)
    volumes = compute.volumes(system, root)
    machines = compute.machines(
        system, attached, groups, volumes, root,
        authorized_keys=compute.authorized_keys(config.get("authorized_keys") or ""),
        hosts=stackplan.host_entries(config.get("hosts") or "{}"))
    pulumi.export("instances", compute.instance_outputs(system, machines, volumes))
else:
    raise ValueError("set migrate:network or migrate:system (migrate provision does this)")
