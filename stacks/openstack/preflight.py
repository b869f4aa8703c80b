"""What the plan needs from the cloud, checked before the program registers any resource.

Every check is a synchronous invoke (a data source of the provider), so a refusal raises
before anything exists. All problems are collected and reported in one ``PreflightFailed``
whose message starts with ``MARKER``: ``migrate.stages.provision`` recognizes it and reports the
problems as an environment that is not ready (exit 3), not as a failed stage.

What the provider's data sources tell and what they do not:
- images, flavors, the external network: found by name (an image's minimum disk too);
- instances, cores, RAM: quota and what is in use (nova's limits);
- ports: neutron's quota, in use counted by listing the project's ports;
- security groups and rules, volumes, gigabytes: the quota only (no data source lists
  them or reports their use), so the plan is compared with the whole quota;
- floating IPs (only where the plan gives them): their network found by name and external,
  neutron's quota only (no data source lists them), compared as the groups are;
- the encrypted volume type: that it exists (cinder's quota set names every volume type);
  that it encrypts no data source shows, so migrate's own client asks cinder for the type's
  encryption spec (``GET /types/{id}/encryption``), which cinder's default policy shows to
  admins only: for other users the preflight says it cannot tell, and the OpenStack target
  checks each volume through cinder once it exists (migrate.targets.openstack_volumes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from migrate.core import stackplan
from migrate.targets import openstack_api
from migrate.targets.openstack_volumes import provider_kind, type_encryption

MARKER = "migrate-preflight:"
NOT_FOUND = "no results"  # how the provider's data sources say that nothing matched
UNLIMITED = -1
MB_PER_GB = 1024
# Neutron gives every new group two default egress rules; the program deletes them right
# after, but they count against the rule quota until then.
DEFAULT_RULES_PER_GROUP = 2


class PreflightFailed(pulumi.RunError):
    """The cloud lacks what the plan needs; RunError makes the engine show only the message."""


@dataclass(frozen=True)
class Problem:
    what: str
    planned: str
    cloud: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.what}: planned {self.planned}, the cloud has {self.cloud}"


@dataclass(frozen=True)
class Need:
    """How much of one quota the stack needs; used is None where the API does not say."""

    resource: str
    planned: int
    quota: int
    used: int | None


def check(plan: dict, network_key: str, system_id: str) -> None:
    """The checks of the stack the program is about to build; raises with every problem."""
    settings = plan["cloud"]["openstack"]
    if network_key:
        problems = external_network_problems(settings["external_network"])
    elif system_id:
        system = stackplan.select_system(plan, system_id)
        problems = system_problems(system, settings)
    else:
        return
    if problems:
        raise PreflightFailed(failure_message(problems))


def failure_message(problems: list[Problem]) -> str:
    lines = [f"{MARKER} {len(problems)} problem{'s' if len(problems) != 1 else ''} "
             "in the cloud; the stack was not changed"]
    lines += [f"problem: {p}" for p in problems]
    remedies = dict.fromkeys(p.remedy for p in problems)
    lines.append(f"hint: {'; '.join(remedies)}")
    return "\n".join(lines)


def _lookup(invoke, **args):
    """An invoke's result, or None when nothing matched; other errors propagate."""
    try:
        return invoke(**args)
    except Exception as error:  # the SDK raises a bare Exception
        if NOT_FOUND in str(error):
            return None
        raise


# ------------------------------------------------------------------ network stack


def external_network_problems(name: str) -> list[Problem]:
    network = _lookup(openstack.networking.get_network, name=name)
    remedy = ("set cloud.openstack.external_network in migrate.yaml to the cloud's external "
              "network, or ask the cloud's operators for one")
    if network is None:
        return [Problem(f"external network {name}", "as the routers' gateway", "no network "
                        "of that name", remedy)]
    if not network.external:
        return [Problem(f"external network {name}", "an external network",
                        "a network of that name that is not external", remedy)]
    return []


# ------------------------------------------------------------------ system stack


def system_problems(system: dict, settings: dict) -> list[Problem]:
    problems: list[Problem] = []
    flavors = {}
    for instance in system["instances"]:
        problems += image_problems(instance)
        flavor = _lookup(openstack.compute.get_flavor, name=instance["flavor"])
        flavors[instance["name"]] = flavor
        problems += flavor_problems(instance, flavor)
    project = project_id()
    volume_quota = openstack.blockstorage.get_quotaset_v3(project_id=project)
    problems += volume_type_problems(system, settings, volume_quota)
    problems += floating_network_problems(system)
    problems += quota_problems(system, flavors, project, volume_quota)
    return problems


def image_problems(instance: dict) -> list[Problem]:
    name = instance["cloud_image"]
    image = _lookup(openstack.images.get_image, name=name, most_recent=True)
    what = f"image {name} (instance {instance['name']})"
    if image is None:
        return [Problem(what, f"image {instance['image']}", "no image of that name",
                        f"upload image {name} to the cloud, or map {instance['image']} to an "
                        "existing image under cloud.images in migrate.yaml")]
    boot_gb = instance["boot_volume"]["size_gb"]
    if (image.min_disk_gb or 0) > boot_gb:
        return [Problem(what, f"a boot volume of {boot_gb} GB",
                        f"an image that needs at least {image.min_disk_gb} GB",
                        f"give instance {instance['name']} a larger disk (disk_gb)")]
    return []


def flavor_problems(instance: dict, flavor) -> list[Problem]:
    name = instance["flavor"]
    what = f"flavor {name} (instance {instance['name']})"
    planned = f"{instance['vcpu']} vCPU, {_mb(instance['memory_gb'])} MB RAM"
    if flavor is None:
        return [Problem(what, planned, "no flavor of that name",
                        f"create flavor {name} (or ask the cloud's operators for it), or "
                        "name an existing one under cloud.flavors in migrate.yaml")]
    if flavor.vcpus < instance["vcpu"] or flavor.ram < _mb(instance["memory_gb"]):
        return [Problem(what, planned, f"{flavor.vcpus} vCPU, {flavor.ram} MB RAM",
                        f"correct vcpu/memory_gb of flavor {name} under cloud.flavors in "
                        "migrate.yaml to what the cloud's flavor has")]
    return []


def _mb(gigabytes: float) -> int:
    return round(gigabytes * MB_PER_GB)


def _volumes(system: dict) -> list[dict]:
    """Every volume the system's stack makes: each instance's boot volume and data volumes."""
    return [volume for instance in system["instances"]
            for volume in [instance["boot_volume"], *instance["volumes"]]]


def volume_type_problems(system: dict, settings: dict, volume_quota) -> list[Problem]:
    if not any(volume["encrypted"] for volume in _volumes(system)):
        return []
    name = settings["encrypted_volume_type"]
    remedy = (f"ask the cloud's operators for an encrypted volume type {name} (a LUKS "
              "encryption on a cinder volume type), or name one that encrypts in "
              "cloud.openstack.encrypted_volume_type")
    if f"volumes_{name}" not in (volume_quota.volume_type_quota or {}):
        return [Problem(f"volume type {name}", "for the encrypted volumes",
                        "no volume type of that name", remedy)]
    spec = volume_type_encryption(name)
    if spec is None:
        pulumi.log.warn(f"volume type {name}: whether it encrypts cinder shows to admins only;"
                        " migrate checks each volume's encryption through cinder once it "
                        "exists")
        return []
    if provider_kind(spec.get("provider")) is None:
        return [Problem(f"volume type {name}", "with encryption, for the encrypted volumes",
                        "a volume type of that name without encryption (no LUKS or plain "
                        "provider)", remedy)]
    return []


def volume_type_encryption(name: str) -> dict | None:
    """The encryption spec of volume type ``name`` as cinder shows it to the stack's
    clouds.yaml entry ({} when it has none); None when it cannot tell (not an admin, or the
    stack names no entry)."""
    config = pulumi.Config("openstack")
    cloud = config.get("cloud")
    if not cloud:
        return None
    spec, _ = type_encryption(openstack_api.Session.for_cloud(cloud, config.get("region")),
                              name)
    return spec


def _floating_networks(system: dict, every: bool = False) -> list[str]:
    """The network of each floating IP the plan gives the system's instances (plans made
    before floating IPs give none); each network once unless ``every``."""
    found = [i["floating_ip"]["network"] for i in system["instances"] if i.get("floating_ip")]
    return found if every else sorted(set(found))


def floating_network_problems(system: dict) -> list[Problem]:
    problems = []
    for name in _floating_networks(system):
        network = _lookup(openstack.networking.get_network, name=name)
        remedy = ("set cloud.openstack.floating_network in migrate.yaml to the cloud's "
                  "network of floating IPs (unset: external_network), or ask the cloud's "
                  "operators for one")
        if network is None:
            problems.append(Problem(f"floating network {name}", "for the floating IPs",
                                    "no network of that name", remedy))
        elif not network.external:
            problems.append(Problem(f"floating network {name}", "an external network",
                                    "a network of that name that is not external", remedy))
    return problems


# ------------------------------------------------------------------ quotas


def project_id() -> str:
    return openstack.identity.get_auth_scope(name="migrate-preflight").project_id


def quota_problems(system: dict, flavors: dict, project: str, volume_quota) -> list[Problem]:
    new = [i for i in system["instances"] if not already_built(i, project)]
    needs = compute_needs(new, flavors, project) + network_needs(system, new, project) \
        + volume_needs(system, volume_quota)
    problems = [p for p in (shortfall(need) for need in needs) if p]
    return problems + per_volume_problems(system, volume_quota.per_volume_gigabytes)


def already_built(instance: dict, project: str) -> bool:
    """Whether an earlier run made the instance (its port exists): what it uses is in use
    already, and counting it again would refuse every run after the first."""
    ports = openstack.networking.get_port_ids(name=f"{instance['resource_name']}-port",
                                              project_id=project)
    return bool(ports.ids)


def compute_needs(new: list[dict], flavors: dict, project: str) -> list[Need]:
    limits = openstack.compute.get_limits_v2(project_id=project)
    sized = [flavors[i["name"]] for i in new if flavors[i["name"]] is not None]
    return [Need("instances", len(new), limits.max_total_instances,
                 limits.total_instances_used),
            Need("cores", sum(f.vcpus for f in sized), limits.max_total_cores,
                 limits.total_cores_used),
            Need("RAM (MB)", sum(f.ram for f in sized), limits.max_total_ram_size,
                 limits.total_ram_used)]


def network_needs(system: dict, new: list[dict], project: str) -> list[Need]:
    quota = openstack.networking.get_quota_v2(project_id=project)
    ports = openstack.networking.get_port_ids(project_id=project)
    groups = len(system["instances"])
    rules = len(system["security_rules"]) + DEFAULT_RULES_PER_GROUP * groups
    floating = len(_floating_networks(system, every=True))
    return [Need("ports", len(new), quota.port, len(ports.ids)),
            Need("security groups", groups, quota.security_group, None),
            Need("security group rules", rules, quota.security_group_rule, None),
            *([Need("floating IPs", floating, quota.floatingip, None)] if floating else [])]


def volume_needs(system: dict, volume_quota) -> list[Need]:
    volumes = _volumes(system)
    return [Need("volumes", len(volumes), volume_quota.volumes, None),
            Need("gigabytes", sum(v["size_gb"] for v in volumes), volume_quota.gigabytes,
                 None)]


def shortfall(need: Need) -> Problem | None:
    if need.quota == UNLIMITED:
        return None
    left = need.quota - (need.used or 0)
    if need.planned <= left:
        return None
    cloud = (f"{left} left (quota {need.quota}, {need.used} in use)" if need.used is not None
             else f"a quota of {need.quota} (what is in use the API does not tell)")
    return Problem(f"quota for {need.resource}", str(need.planned), cloud,
                   "ask the cloud's operators for more quota in the project")


def per_volume_problems(system: dict, limit: int | None) -> list[Problem]:
    if limit is None or limit == UNLIMITED:
        return []
    return [Problem(f"quota for one volume ({instance['name']}, {volume.get('name', 'boot')})",
                    f"{volume['size_gb']} GB", f"at most {limit} GB per volume",
                    "ask the cloud's operators for more quota in the project")
            for instance in system["instances"]
            for volume in [instance["boot_volume"], *instance["volumes"]]
            if volume["size_gb"] > limit]
