"""Machines with their data volumes (folders bind-mounted at the planned mount points)."""

from dataclasses import dataclass

import pulumi

from migrate.rehearsal.sandbox.provider import SandboxMachine, SandboxVolume, volume_path


@dataclass
class Disk:
    volume: SandboxVolume
    name: str
    mount: str
    path: str


def authorized_keys(text: str) -> str:
    """The operator's public key line(s); a private key here would land in the stack state."""
    if not text.strip():
        raise ValueError("set migrate:authorized_keys to the operator's public key line")
    if "PRIVATE KEY" in text:
        raise ValueError("migrate:authorized_keys holds a private key; give the public key line")
    return text.strip() + "\n"


def volumes(system: dict, root: str) -> dict[str, list[Disk]]:
    built = {}
    for planned in system["instances"]:
        built[planned["name"]] = [
            Disk(SandboxVolume(f"{planned['resource_name']}-{volume['name']}", root,
                               system["id"], planned["name"], volume),
                 volume["name"], volume["mount"],
                 volume_path(root, system["id"], planned["name"], volume["name"]))
            for volume in planned["volumes"]]
    return built


def machines(system: dict, attached, groups: dict, volumes: dict, root: str, *,
             authorized_keys: str, hosts: dict[str, str]) -> dict[str, SandboxMachine]:
    built = {}
    for planned in system["instances"]:
        name = planned["name"]
        disks = volumes[name]
        built[name] = SandboxMachine(
            planned["resource_name"], root, system["id"], planned,
            bridge=attached.bridge, prefix=attached.prefix, gateway=attached.gateway,
            volumes=[{"path": disk.path, "mount": disk.mount} for disk in disks],
            ruleset=groups[name].ruleset, authorized_keys=authorized_keys, hosts=hosts,
            # volumes and the firewall first; the engine deletes the machine before them
            opts=pulumi.ResourceOptions(
                depends_on=[groups[name].firewall, *(disk.volume for disk in disks)]))
    return built


def encryption_report(sentence: str) -> dict:
    """A bind-mounted folder is never encrypted; the provider's sentence says why."""
    return {"encrypted": False, "by": None, "detail": sentence}


def instance_outputs(system: dict, built: dict, volumes: dict) -> dict:
    """What the target contract asks of every instance (migrate.targets.contract), plus the
    machine's name and known_hosts line. ``host_key`` (the one key) stays beside
    ``host_keys`` for what read it before the contract."""
    outputs = {}
    for planned in system["instances"]:
        machine = built[planned["name"]]
        outputs[planned["name"]] = {
            "id": machine.id,
            "address": planned["address"],
            "roles": planned["roles"],
            "replaces": planned["replaces"],
            "resource_name": planned["resource_name"],
            "machine": machine.machine,
            "host_keys": [machine.host_key],
            "host_key": machine.host_key,
            "known_hosts": machine.known_hosts,
            "volumes": [{"name": disk.name, "mount": disk.mount, "path": disk.path,
                         "encryption": disk.volume.encryption.apply(encryption_report)}
                        for disk in volumes[planned["name"]]],
        }
    return outputs
