"""OpenStack, the city's e-government cloud, as a cloud target (entry point ``openstack`` of
``migrate.targets``), as far as it is built.

Credentials come only from the clouds.yaml entry that ``cloud.openstack.cloud`` names (and its
``region``): the engine runs without any ``OS_*`` variable of the caller's shell except
``OS_CLIENT_CONFIG_FILE`` (where clouds.yaml is), so a stray ``OS_AUTH_URL`` or token can
never choose the cloud silently. The operator key is an explicit setting
(``cloud.openstack.operator_key``). Not built yet, and said so as errors: learning the
instances' host keys from their console log, and mounting data volumes by their volume id.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from migrate.errors import EnvironmentNotReady, InvalidInput
from migrate.loader import Estate
from migrate.model import OpenStackSettings
from migrate.provision import ProvisionSettings, ensure_passphrase_file
from migrate.state import state_dir
from migrate.targets.base import Target
from migrate.targets.contract import Instance

CLIENT_CONFIG_ENV = "OS_CLIENT_CONFIG_FILE"
NOT_BUILT = "not built yet for the openstack target (issue 17)"


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, None]:
    """The engine environment's changes: every ``OS_*`` variable removed except
    ``OS_CLIENT_CONFIG_FILE``."""
    return {name: None for name in sorted(environ)
            if name.startswith("OS_") and name != CLIENT_CONFIG_ENV}


class OpenStackTarget(Target):
    name = "openstack"

    def provision_settings(self, estate: Estate, plan_file: Path) -> ProvisionSettings:
        settings = self.settings(estate)
        config = {"openstack:cloud": settings.cloud}
        if settings.region:
            config["openstack:region"] = settings.region
        if settings.operator_key:
            config["migrate:authorized_keys"] = self.operator_public_key(estate)
        state = state_dir(estate)
        passphrase = ensure_passphrase_file(state, create=False)
        return ProvisionSettings(self.name, state, plan_file, passphrase, config,
                                 env=scrubbed_environment(os.environ))

    def settings(self, estate: Estate) -> OpenStackSettings:
        found = estate.settings.cloud.openstack
        if found is None:  # validation refuses this; a partial estate may still get here
            raise InvalidInput([estate.settings_doc.problem(
                ("cloud", "openstack"), "required when cloud.target is openstack",
                "name the clouds.yaml entry and the external network")])
        return found

    def operator_key_path(self, estate: Estate) -> Path:
        setting = self.settings(estate).operator_key
        if not setting:
            raise self._key_problem(estate, "is not set: nothing could log in to the instances",
                                    "add operator_key: PATH (a 0600 private key, relative to "
                                    "the estate folder, its public key beside it as PATH.pub)")
        path = (estate.root / setting).absolute()
        if not path.is_file():
            raise self._key_problem(estate, f"{path} does not exist",
                                    "point it at the operator's private key file")
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise self._key_problem(estate, f"{path} is readable by others than its owner",
                                    f"chmod 600 {path}")
        return path

    def operator_public_key(self, estate: Estate) -> str:
        private = self.operator_key_path(estate)
        public = private.with_name(private.name + ".pub")
        text = public.read_text(encoding="utf-8").strip() if public.is_file() else ""
        if not text or "PRIVATE KEY" in text or len(text.split()) < 2:
            raise self._key_problem(estate, f"{public} does not hold the public key line",
                                    f"write it with: ssh-keygen -y -f {private} > {public}")
        return text

    def guard_address(self, address: str, allowed_networks: Sequence[str] = ()) -> None:
        """No guard: a real cloud's addresses are off this host by nature; the security
        groups of the plan decide what its instances reach."""
        return None

    def learn_host_keys(self, stack: str, name: str, outputs: Mapping[str, Any]) -> list[str]:
        raise EnvironmentNotReady(
            f"stack {stack}: instance {name} exports no host keys, and learning them from the "
            f"instance's console log (where cloud-init prints them) is {NOT_BUILT}",
            hint="nothing connects to an instance whose host key is not pinned; use the "
                 "sandbox target until this is built")

    def check_instances(self, stack: str, instances: Mapping[str, Instance]) -> None:
        unmounted = [f"{name}:{volume.name}" for name, instance in sorted(instances.items())
                     for volume in instance.volumes]
        if unmounted:
            raise EnvironmentNotReady(
                f"stack {stack}: data volumes {', '.join(unmounted)} would need partitioning, "
                f"formatting and mounting by their volume id, which is {NOT_BUILT}",
                hint="plan these systems without data volumes, or use the sandbox target until"
                     " this is built")

    @staticmethod
    def _key_problem(estate: Estate, message: str, hint: str) -> InvalidInput:
        return InvalidInput([estate.settings_doc.problem(
            ("cloud", "openstack", "operator_key"), message, hint)])
