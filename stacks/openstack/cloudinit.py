"""The instance's first-boot settings (cloud-init user data), written as data, never templated.

- The operator's public key for root (the stages log in as root, as on the sandbox), and no
  password logins.
- The data volumes: ``files/migrate-volumes`` partitions, formats and mounts each one by its
  volume id (the serial the guest sees), from a JSON list cloud-init writes beside it.
- Names no DNS of the cloud serves (``migrate:hosts``: the rehearsal's exchange platform),
  appended to /etc/hosts.
- The cloud's time servers (``cloud.openstack.ntp_servers``), for the image's NTP client
  (cloud-init's ``ntp`` module); its resolvers come from the subnet's DHCP instead.

Cloud-init prints the instance's host keys to its console, where ``migrate`` reads them
through the compute API and pins them before the first ssh.
"""

import json
from pathlib import Path

import pulumi
import yaml

SCRIPT = Path(__file__).resolve().parent / "files" / "migrate-volumes"
SCRIPT_PATH = "/usr/local/sbin/migrate-volumes"
VOLUMES_PATH = "/etc/migrate/volumes.json"


def user_data(authorized_keys: list[str], volumes: list[tuple[pulumi.Output, str]],
              hosts: dict[str, str] | None = None,
              ntp_servers: list[str] | None = None) -> pulumi.Output:
    """``#cloud-config`` for one instance; ``volumes`` pairs each data volume's serial with
    its mount point; ``hosts`` are extra /etc/hosts entries (name -> address)."""
    serials = [serial for serial, _mount in volumes]
    mounts = [mount for _serial, mount in volumes]
    return pulumi.Output.all(*serials).apply(
        lambda known: render(authorized_keys, list(zip(known, mounts, strict=True)), hosts,
                             ntp_servers))


def render(authorized_keys: list[str], volumes: list[tuple[str, str]],
           hosts: dict[str, str] | None = None, ntp_servers: list[str] | None = None) -> str:
    document: dict = {
        "disable_root": False,
        "ssh_pwauth": False,
        "ssh_authorized_keys": list(authorized_keys),
    }
    if ntp_servers:
        document["ntp"] = {"enabled": True, "servers": list(ntp_servers)}
    files = []
    if hosts:
        files.append({"path": "/etc/hosts", "append": True, "owner": "root:root",
                      "content": "".join(f"{address} {name}\n"
                                         for name, address in sorted(hosts.items()))})
    if volumes:
        listing = [{"serial": serial, "mount": mount} for serial, mount in volumes]
        files += [
            {"path": SCRIPT_PATH, "permissions": "0755", "owner": "root:root",
             "content": SCRIPT.read_text(encoding="utf-8")},
            {"path": VOLUMES_PATH, "permissions": "0644", "owner": "root:root",
             "content": json.dumps(listing, indent=1) + "\n"},
        ]
        document["runcmd"] = [[SCRIPT_PATH]]
    if files:
        document["write_files"] = files
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
