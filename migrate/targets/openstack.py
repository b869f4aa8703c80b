"""OpenStack, the city's e-government cloud, as a cloud target (entry point ``openstack`` of
``migrate.targets``), as far as it is built.

Credentials come only from the clouds.yaml entry that ``cloud.openstack.cloud`` names (and its
``region``): the engine runs without any ``OS_*`` variable of the caller's shell except
``OS_CLIENT_CONFIG_FILE`` (where clouds.yaml is), so a stray ``OS_AUTH_URL`` or token can
never choose the cloud silently. The operator key is an explicit setting
(``cloud.openstack.operator_key``). Host keys are read from each instance's console, where
cloud-init prints them at first boot, and pinned in the estate's state directory before the
first ssh (``host-keys/<stack>.json``); data volumes are partitioned, formatted and mounted
by their serial in the instance itself (stacks/openstack/cloudinit.py). A volume the plan
wants encrypted is checked through the block-storage API before any stage relies on it: of
the estate's encrypted volume type, whose encryption spec has a provider, and encrypted
itself (``openstack_volumes``); what cinder reported rides in its ``encryption``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from migrate.core.credentials import ensure_passphrase_file
from migrate.core.errors import InvalidInput, StageFailed
from migrate.core.files import write_file_atomically
from migrate.core.loader import Estate
from migrate.core.model import OpenStackSettings
from migrate.core.state import state_dir
from migrate.targets import openstack_api
from migrate.targets.base import ProvisionSettings, Target
from migrate.targets.contract import Instance
from migrate.targets.openstack_console import ConsoleKeysError, host_keys_from_console
from migrate.targets.openstack_volumes import check_encryption

CLIENT_CONFIG_ENV = "OS_CLIENT_CONFIG_FILE"
HOST_KEYS_WAIT_S = 600.0  # first boot to cloud-init's final stage, with room for a slow cloud
HOST_KEYS_POLL_S = 5.0


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, None]:
    """The engine environment's changes: every ``OS_*`` variable removed except
    ``OS_CLIENT_CONFIG_FILE``."""
    return {name: None for name in sorted(environ)
            if name.startswith("OS_") and name != CLIENT_CONFIG_ENV}


class OpenStackTarget(Target):
    name = "openstack"
    checks_cloud = True  # stacks/openstack/preflight.py

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
                                 env=scrubbed_environment(os.environ),
                                 preflight=self.checks_cloud)

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

    def learn_host_keys(self, estate: Estate, stack: str, name: str,
                        outputs: Mapping[str, Any]) -> list[str]:
        """The keys pinned for this instance (this server id); else read from its console
        through the compute API and pinned before anything connects to it."""
        server_id = str(outputs.get("id") or "")
        if not server_id:
            raise StageFailed(f"stack {stack}: instance {name} has unusable outputs: id: "
                              "missing", hint="provision the system again")
        pins = self.host_keys_file(estate, stack)
        pinned = _read_pins(pins)
        entry = pinned.get(name) or {}
        if entry.get("server") == server_id and entry.get("keys"):
            return list(entry["keys"])
        keys = self._console_keys(estate, stack, name, server_id)
        pinned[name] = {"server": server_id, "keys": keys}
        _write_pins(pins, pinned)
        return keys

    def host_keys_file(self, estate: Estate, stack: str) -> Path:
        return state_dir(estate) / "host-keys" / f"{stack}.json"

    def _console_keys(self, estate: Estate, stack: str, name: str, server_id: str) -> list[str]:
        settings = self.settings(estate)
        session = openstack_api.Session.for_cloud(settings.cloud, settings.region)
        deadline = time.monotonic() + HOST_KEYS_WAIT_S
        while True:
            try:
                keys = host_keys_from_console(session.console_output(server_id))
            except ConsoleKeysError as error:
                raise StageFailed(f"stack {stack}: the console of instance {name} holds a host "
                                  f"key block that is not cloud-init's: {error}",
                                  hint="nothing connects to it; look at its console log and "
                                       "rebuild the instance") from None
            if keys:
                return keys
            if time.monotonic() > deadline:
                raise StageFailed(f"stack {stack}: instance {name} printed no host keys to its "
                                  f"console within {HOST_KEYS_WAIT_S:.0f} s",
                                  hint="check that it booted and that its image runs cloud-init"
                                       " (the keys_to_console module)")
            time.sleep(HOST_KEYS_POLL_S)

    def check_instances(self, estate: Estate, stack: str,
                        instances: Mapping[str, Instance]) -> Mapping[str, Instance]:
        """Every volume the plan wants encrypted, checked through cinder; refused
        (EnvironmentNotReady) naming each one the cloud does not encrypt."""
        if not any(_wants_encryption(instance) for instance in instances.values()):
            return instances
        settings = self.settings(estate)
        session = openstack_api.Session.for_cloud(settings.cloud, settings.region)
        return check_encryption(session, stack, instances, settings.encrypted_volume_type)

    @staticmethod
    def _key_problem(estate: Estate, message: str, hint: str) -> InvalidInput:
        return InvalidInput([estate.settings_doc.problem(
            ("cloud", "openstack", "operator_key"), message, hint)])


def _wants_encryption(instance: Instance) -> bool:
    boot = instance.boot_volume
    return (boot is not None and boot.encryption.encrypted) or any(
        volume.encryption.encrypted for volume in instance.volumes)


def _read_pins(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise StageFailed(f"{path} (pinned host keys) is unreadable",
                          hint="delete it: the keys are read again from the consoles") from None
    return found if isinstance(found, dict) else {}


def _write_pins(path: Path, pinned: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_file_atomically(path, json.dumps(pinned, indent=1, sort_keys=True).encode(), 0o600)
