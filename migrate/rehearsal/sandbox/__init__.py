"""The sandbox machine layer: local systemd-nspawn machines that stand in for a cloud.

Modules: ``host`` (prerequisites), ``images`` (debootstrap base images, cached),
``network`` (``mg-`` bridges and the local-address guard), ``machines`` (create, start,
wait, stop, destroy, list), ``hostkeys`` (per-machine host keys, known_hosts, operator
key). It keeps no state beyond files under the sandbox root and processes it can find
again in /proc. Everything here needs root except naming and the guard's decision logic.
"""

from migrate.rehearsal.sandbox.host import require_host, sandbox_root
from migrate.rehearsal.sandbox.hostkeys import (
    ensure_client_keypair,
    known_hosts_line,
    write_known_hosts,
)
from migrate.rehearsal.sandbox.images import ensure_image, image_path
from migrate.rehearsal.sandbox.layout import machine_name
from migrate.rehearsal.sandbox.machines import (
    MachineInfo,
    MachineSpec,
    create_machine,
    destroy_machine,
    list_machines,
    machine_status,
    start_machine,
    stop_machine,
    wait_ssh_ready,
)
from migrate.rehearsal.sandbox.network import (
    assert_local_address,
    bridge_name,
    ensure_bridge,
    list_bridges,
    remove_bridge,
)

__all__ = [
    "MachineInfo",
    "MachineSpec",
    "assert_local_address",
    "bridge_name",
    "create_machine",
    "destroy_machine",
    "ensure_bridge",
    "ensure_client_keypair",
    "ensure_image",
    "image_path",
    "known_hosts_line",
    "list_bridges",
    "list_machines",
    "machine_name",
    "machine_status",
    "remove_bridge",
    "require_host",
    "sandbox_root",
    "start_machine",
    "stop_machine",
    "wait_ssh_ready",
    "write_known_hosts",
]
