"""Instances with their ports, boot volumes and data volumes.

Data volumes are block devices of the instance from its first boot (``boot_index=-1``), not
later attachments: cloud-init finds them at first boot, and destroying the stack needs no
hot unplug (which a guest that is still booting never acknowledges; nova then leaves the
volume "detaching"). Every volume outlives its instance (``delete_on_termination=False``):
an instance the engine must replace boots again from the same boot volume with the same
data volumes. Changing the set of data volumes replaces the instance.
"""

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from migrate.core import stackplan

import cloudinit

VIRTIO_SERIAL_CHARS = 20  # virtio-blk shows a volume's id, cut to 20 characters, as its serial


@dataclass
class Built:
    server: openstack.compute.Instance
    data: list[tuple[dict, openstack.blockstorage.Volume]]
    boot: openstack.blockstorage.Volume
    port: openstack.networking.Port | None = None  # where a floating IP is associated


def _volume_type(encrypted: bool, settings: dict) -> str | None:
    return settings["encrypted_volume_type"] if encrypted else None


def authorized_keys(text: str) -> list[str]:
    """The operator's public key lines (none: nobody can log in); a private key here would
    land in the stack state."""
    if "PRIVATE KEY" in text:
        raise ValueError("migrate:authorized_keys holds a private key; give the public key line")
    return [line.strip() for line in text.splitlines() if line.strip()]


def instances(system: dict, attached, groups: dict, settings: dict,
              keys: list[str] | None = None, hosts: dict[str, str] | None = None) -> dict:
    tags = stackplan.tags(system)
    metadata = {"department": system["department"]["code"], "system": system["id"],
                "protection_level": str(system["protection_level"])}
    built = {}
    for planned in system["instances"]:
        name = planned["resource_name"]
        image = openstack.images.get_image(name=planned["cloud_image"], most_recent=True)
        port = openstack.networking.Port(
            f"{name}-port", name=f"{name}-port", network_id=attached.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(
                subnet_id=attached.subnet_id, ip_address=planned["address"])],
            security_group_ids=[groups[planned["name"]].id], admin_state_up=True, tags=tags)
        boot = openstack.blockstorage.Volume(
            f"{name}-boot", name=f"{name}-boot", size=planned["boot_volume"]["size_gb"],
            image_id=image.id,
            volume_type=_volume_type(planned["boot_volume"]["encrypted"], settings),
            metadata=metadata)
        data = [openstack.blockstorage.Volume(
            f"{name}-{volume['name']}", name=f"{name}-{volume['name']}",
            size=volume["size_gb"], volume_type=_volume_type(volume["encrypted"], settings),
            metadata={**metadata, "mount": volume["mount"]})
            for volume in planned["volumes"]]
        server = openstack.compute.Instance(
            name, name=name, flavor_name=planned["flavor"],
            block_devices=[_block_device(boot, 0)] + [_block_device(v, -1) for v in data],
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
            metadata={**metadata, "instance": planned["name"],
                      "roles": ",".join(planned["roles"])},
            user_data=cloudinit.user_data(
                keys or [], [(_serial(v), p["mount"]) for p, v in
                             zip(planned["volumes"], data, strict=True)], hosts or {},
                settings.get("ntp_servers") or []),
            config_drive=needs_config_drive(settings),
            tags=tags,
            # user data and the config drive act at first boot: a later change (a new
            # operator key, a cloud that stops serving metadata) must not replace a running
            # instance; Ansible manages the keys from then on
            opts=pulumi.ResourceOptions(ignore_changes=["userData", "configDrive"]))
        built[planned["name"]] = Built(server, list(zip(planned["volumes"], data, strict=True)),
                                       boot, port)
    return built


def needs_config_drive(settings: dict) -> bool | None:
    """A config drive when the instances reach no metadata service: without one, cloud-init
    finds neither the key nor the volumes (None leaves the cloud's default)."""
    return True if settings.get("metadata_service") is False else None


def _serial(volume: openstack.blockstorage.Volume) -> pulumi.Output:
    return volume.id.apply(lambda i: i[:VIRTIO_SERIAL_CHARS])


def _block_device(volume, boot_index: int):
    return openstack.compute.InstanceBlockDeviceArgs(
        uuid=volume.id, source_type="volume", destination_type="volume",
        boot_index=boot_index, delete_on_termination=False)


def instance_outputs(system: dict, built: dict[str, Built], settings: dict) -> dict:
    return {planned["name"]: {"id": built[planned["name"]].server.id,
                              "address": planned["address"],
                              "roles": planned["roles"],
                              "replaces": planned["replaces"],
                              "resource_name": planned["resource_name"],
                              "volumes": [_volume_output(p, v, settings)
                                          for p, v in built[planned["name"]].data],
                              "boot_volume": {
                                  "volume_id": built[planned["name"]].boot.id,
                                  "encryption": _encryption(planned["boot_volume"], settings)}}
            for planned in system["instances"]}


def _volume_output(planned: dict, volume: openstack.blockstorage.Volume, settings: dict) -> dict:
    """How the guest finds the volume (its serial) and who encrypts it: on OpenStack the
    volume type's encryption, on the hypervisor, so the guest sees no dm-crypt device."""
    return {"name": planned["name"], "mount": planned["mount"], "volume_id": volume.id,
            "serial": _serial(volume), "encryption": _encryption(planned, settings)}


def _encryption(planned: dict, settings: dict) -> dict:
    """What the program asked for; the OpenStack target checks it through cinder."""
    volume_type = _volume_type(planned["encrypted"], settings)
    return {"encrypted": planned["encrypted"],
            "by": f"cinder volume type {volume_type}" if volume_type else None}
