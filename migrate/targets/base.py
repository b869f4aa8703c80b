"""What differs per cloud target, and what differs in what surrounds the cloud, as two
interfaces the stages ask (they never import an implementation).

A ``Target`` is the cloud: how its stacks are configured (Pulumi config, engine environment),
how the operator logs in (private key for the inventories and verify, public key for the
stacks), where the host keys of its instances come from, and what it cannot do yet.
Implementations: ``migrate.targets.openstack.OpenStackTarget`` and the rehearsal's
``migrate.rehearsal.sandbox.target.SandboxTarget`` (``migrate.targets.load_target``).

``Surroundings`` are what the cloud's instances and the stages meet outside it: the source
hosts (whose keys the estate's known_hosts holds), the exchange platform, the package mirror,
and which addresses a stage may connect to. In the city these are real and there is nothing
to bring up (``CitySurroundings``); the rehearsal's ``SandboxSurroundings`` makes them on this
host and keeps every connection here, around the sandbox cloud or around an OpenStack
(``migrate.targets.surroundings_of``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from migrate.core.errors import StageFailed
from migrate.core.loader import Estate
from migrate.targets.contract import PROVISION_AGAIN, Instance

Progress = Callable[[str], None]


@dataclass
class ProvisionSettings:
    """Everything a stack operation needs that is not in the plan: what a target hands the
    provision stage (``Target.provision_settings``)."""

    target: str
    state_dir: Path
    plan_path: Path
    passphrase_file: Path
    config: dict[str, str] = field(default_factory=dict)
    # What the target changes in the engine's environment: a value sets the variable, None
    # removes it (the OpenStack target removes OS_* credentials so that only the clouds.yaml
    # entry the estate names can choose the cloud).
    env: dict[str, str | None] = field(default_factory=dict)
    # The target's program checks the cloud before it registers anything (stacks/openstack/
    # preflight.py): every stack is checked that way before any stack changes.
    preflight: bool = False


class Target(ABC):
    """One cloud target. Stateless: every method takes the estate it is about."""

    name: ClassVar[str]

    # ---- provisioning

    # Whether the target's programs check the cloud before they register anything (a
    # preflight: ProvisionSettings.preflight), so that `migrate check` can run them too.
    checks_cloud: ClassVar[bool] = False

    @abstractmethod
    def provision_settings(self, estate: Estate, plan_file: Path) -> ProvisionSettings:
        """Everything the stacks need that is not in the plan: Pulumi config, the engine's
        environment (a None value removes a variable), the passphrase file."""

    # ---- operator access

    @abstractmethod
    def operator_key_path(self, estate: Estate) -> Path:
        """The private key the inventories and verify log in to the targets with."""

    @abstractmethod
    def operator_public_key(self, estate: Estate) -> str:
        """The public key line the stacks install on the targets."""

    # ---- host keys

    def learn_host_keys(self, estate: Estate, stack: str, name: str,
                        outputs: Mapping[str, Any]) -> list[str]:
        """The host keys of an instance whose outputs carry none. A target whose program
        exports them has nothing else to ask: the outputs are malformed."""
        raise StageFailed(f"stack {stack}: instance {name} has unusable outputs: host_keys: "
                          "missing", hint=PROVISION_AGAIN)

    # ---- what the stages need of the instances

    def check_instances(self, estate: Estate, stack: str,
                        instances: Mapping[str, Instance]) -> Mapping[str, Instance]:
        """The instances as checked through the cloud (e.g. encryption as it reports it); a
        domain error for what the target or its cloud cannot do with them, before a stage
        relies on it. Unchecked by default."""
        return instances


class Surroundings(ABC):
    """What surrounds the cloud. Stateless: every method takes the estate it is about."""

    name: ClassVar[str]

    # ---- the source hosts

    @abstractmethod
    def source_known_hosts(self, estate: Estate) -> Path | None:
        """The known_hosts file of the source hosts when migrate.yaml names none (the
        rehearsal writes one for the machines it makes); None: the estate must name one."""

    # ---- what the stages may reach

    @abstractmethod
    def guard_address(self, address: str, allowed_networks: Sequence[str] = ()) -> None:
        """Refuse (GuardRefused) an address no stage may connect to; ``allowed_networks``
        are the estate's sandbox.allowed_networks."""

    # ---- the exchange platform and the package mirror

    @abstractmethod
    def platform_address(self, estate: Estate) -> str | None:
        """Where to connect for the exchange platform when it is not where its URL's name
        resolves (the rehearsal's platform machine); None: resolve the name."""

    @abstractmethod
    def host_entries(self, estate: Estate) -> dict[str, str]:
        """Names the instances must resolve that no DNS of the cloud serves (name ->
        address): the rehearsal's exchange platform."""

    @abstractmethod
    def package_mirror_url(self, estate: Estate) -> str | None:
        """The Debian archive the targets install from when cloud.packages names none; None
        when nothing here runs one."""

    # ---- before a run

    brings_up: ClassVar[bool] = False

    def makes_sources(self, estate: Estate) -> bool:
        """Whether bringing them up makes the source hosts too (their keys are then checked
        after the bring-up, not before)."""
        return False

    def bring_up(self, estate: Estate, progress: Progress | None = None) -> Any:
        """Bring up what a run needs (idempotent); a report whose ``changed`` says whether
        anything was changed. Only called when ``brings_up``."""
        raise NotImplementedError(f"the {self.name} surroundings have nothing to bring up")


class CitySurroundings(Surroundings):
    """The real ones: the estate names the source hosts' keys (sources.known_hosts) and the
    mirror (cloud.packages), the platform's name resolves, and the cloud's own security
    groups, not migrate, decide what its instances reach."""

    name = "city"

    def source_known_hosts(self, estate: Estate) -> Path | None:
        return None

    def guard_address(self, address: str, allowed_networks: Sequence[str] = ()) -> None:
        return None

    def platform_address(self, estate: Estate) -> str | None:
        return None

    def host_entries(self, estate: Estate) -> dict[str, str]:
        return {}

    def package_mirror_url(self, estate: Estate) -> str | None:
        return None
