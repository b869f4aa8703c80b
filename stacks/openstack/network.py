"""Department networks (one per department and zone) and how a system attaches to one."""

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from migrate.core import stackplan


@dataclass
class DepartmentNetwork:
    network: openstack.networking.Network
    subnet: openstack.networking.Subnet
    router: openstack.networking.Router


@dataclass
class Attachment:
    network_id: pulumi.Output
    subnet_id: pulumi.Output


def department_network(planned: dict, settings: dict) -> DepartmentNetwork:
    tags = stackplan.network_tags(planned)
    net = openstack.networking.Network(
        planned["name"], name=planned["name"], admin_state_up=True, tags=tags)
    subnet = openstack.networking.Subnet(
        f"{planned['name']}-subnet", name=f"{planned['name']}-subnet", network_id=net.id,
        cidr=planned["cidr"], gateway_ip=planned["gateway"], ip_version=4,
        # the resolvers the instances' egress rules allow, handed out by the subnet's DHCP
        dns_nameservers=settings.get("dns_servers") or None, tags=tags)
    external = openstack.networking.get_network(name=settings["external_network"])
    # The router routes and never translates: the addresses the plan's rules name (a source
    # host, the platform, the instances) are the addresses the peers see. (Setting it is
    # admin-only in neutron's default policy.)
    router = openstack.networking.Router(
        f"{planned['name']}-router", name=f"{planned['name']}-router",
        external_network_id=external.id, enable_snat=False, admin_state_up=True, tags=tags)
    openstack.networking.RouterInterface(
        f"{planned['name']}-router-interface", router_id=router.id, subnet_id=subnet.id)
    return DepartmentNetwork(net, subnet, router)


def attach(system: dict) -> Attachment:
    """The system's department network, from the outputs of its network stack."""
    name = stackplan.network_stack_name(system["network"])
    reference = pulumi.StackReference(
        f"{pulumi.get_organization()}/{pulumi.get_project()}/{name}")
    return Attachment(reference.require_output("network_id"),
                      reference.require_output("subnet_id"))
