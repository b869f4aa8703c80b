"""Instances with their ports, boot volumes and data volumes."""

import pulumi_openstack as openstack

from migrate import stackplan


def _volume_type(encrypted: bool, settings: dict) -> str | None:
    return settings["encrypted_volume_type"] if encrypted else None


def instances(system: dict, attached, groups: dict, settings: dict) -> dict:
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
        server = openstack.compute.Instance(
            name, name=name, flavor_name=planned["flavor"],
            block_devices=[openstack.compute.InstanceBlockDeviceArgs(
                uuid=boot.id, source_type="volume", destination_type="volume",
                boot_index=0, delete_on_termination=False)],
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
            metadata={**metadata, "instance": planned["name"],
                      "roles": ",".join(planned["roles"])},
            tags=tags)
        for volume in planned["volumes"]:
            data = openstack.blockstorage.Volume(
                f"{name}-{volume['name']}", name=f"{name}-{volume['name']}",
                size=volume["size_gb"], volume_type=_volume_type(volume["encrypted"], settings),
                metadata={**metadata, "mount": volume["mount"]})
            openstack.compute.VolumeAttach(
                f"{name}-{volume['name']}-attach", instance_id=server.id, volume_id=data.id)
        built[planned["name"]] = server
    return built


def instance_outputs(system: dict, built: dict) -> dict:
    return {planned["name"]: {"id": built[planned["name"]].id,
                              "address": planned["address"],
                              "roles": planned["roles"],
                              "replaces": planned["replaces"],
                              "resource_name": planned["resource_name"]}
            for planned in system["instances"]}

