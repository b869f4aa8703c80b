"""The sandbox as a cloud target (entry point ``sandbox`` of ``migrate.targets``): machines on
this host, reached with the operator key the sandbox makes; and the sandbox as what surrounds
a cloud (entry point ``sandbox`` of ``migrate.surroundings``): the source hosts' server
rooms, the exchange platform and the package mirror on this host, brought up before a run,
guarded so that nothing leaves the host, around the sandbox cloud or an OpenStack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migrate.core.credentials import ensure_passphrase_file
from migrate.core.loader import Estate
from migrate.core.state import state_dir
from migrate.rehearsal.sandbox import estate as sandbox_estate
from migrate.rehearsal.sandbox import estate_plan, host, images, network
from migrate.targets.base import Progress, ProvisionSettings, Surroundings, Target


class SandboxTarget(Target):
    """Calls into the sandbox's modules by attribute, so that what a test replaces there is
    what runs."""

    name = "sandbox"

    def provision_settings(self, estate: Estate, plan_file: Path) -> ProvisionSettings:
        host.require_host()
        images.ensure_image("cloud")
        config = {"migrate:authorized_keys": self.operator_public_key(estate)}
        state = state_dir(estate)
        # a rehearsal's own secret: made on first use
        passphrase = ensure_passphrase_file(state, create=True)
        return ProvisionSettings(self.name, state, plan_file, passphrase, config)

    def operator_key_path(self, estate: Estate) -> Path:
        return sandbox_estate.operator_key_path(estate)

    def operator_public_key(self, estate: Estate) -> str:
        return sandbox_estate.operator_public_key(estate)


class SandboxSurroundings(Surroundings):
    """Calls into the sandbox's modules by attribute, like ``SandboxTarget``."""

    name = "sandbox"
    brings_up = True

    def source_known_hosts(self, estate: Estate) -> Path | None:
        return sandbox_estate.known_hosts_path(estate)

    def guard_address(self, address: str, allowed_networks: Sequence[str] = ()) -> None:
        network.assert_local_address(address, allowed_networks)

    def platform_address(self, estate: Estate) -> str | None:
        return estate_plan.plan_sandbox(estate).platform_ip

    def host_entries(self, estate: Estate) -> dict[str, str]:
        sandbox = estate_plan.plan_sandbox(estate)
        return {sandbox.exchange_host: sandbox.platform_ip}

    def package_mirror_url(self, estate: Estate) -> str | None:
        return sandbox_estate.sandbox_mirror_url(estate)

    def makes_sources(self, estate: Estate) -> bool:
        return estate.settings.sandbox.seed_legacy

    def bring_up(self, estate: Estate, progress: Progress | None = None) -> Any:
        return sandbox_estate.sandbox_up(estate, progress=progress)
