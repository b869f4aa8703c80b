"""What differs per cloud target, as one interface the stages ask (they never import a target).

A target says how its stacks are configured (Pulumi config, engine environment), how the
operator logs in (private key for the inventories and verify, public key for the stacks),
where the host keys of its instances come from, which addresses a stage may reach, which
package mirror its machines use, whether something must be brought up before a run, and
what it cannot do yet. Implementations: ``migrate.targets.openstack.OpenStackTarget``, and
the rehearsal's ``migrate.sandbox.target.SandboxTarget``, found by their entry points
(``migrate.targets.load_target``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from migrate.errors import StageFailed
from migrate.loader import Estate
from migrate.provision import ProvisionSettings
from migrate.targets.contract import PROVISION_AGAIN, Instance

Progress = Callable[[str], None]


class Target(ABC):
    """One cloud target. Stateless: every method takes the estate it is about."""

    name: ClassVar[str]

    # ---- provisioning

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

    def source_known_hosts(self, estate: Estate) -> Path | None:
        """The known_hosts file of the source hosts when migrate.yaml names none (the
        rehearsal writes one for the machines it makes); None: the estate must name one."""
        return None

    # ---- what the stages may reach

    @abstractmethod
    def guard_address(self, address: str, allowed_networks: Sequence[str] = ()) -> None:
        """Refuse (GuardRefused) an address a stage of this target must never connect to;
        ``allowed_networks`` are the estate's sandbox.allowed_networks. Every target says
        what it guards, if anything."""

    def platform_address(self, estate: Estate) -> str | None:
        """Where to connect for the exchange platform when it is not where its URL's name
        resolves (the rehearsal's platform machine); None: resolve the name."""
        return None

    def package_mirror_url(self, estate: Estate) -> str | None:
        """The Debian archive the targets install from when cloud.packages names none; None
        when this target runs no mirror of its own."""
        return None

    # ---- what the stages need of the instances

    def check_instances(self, stack: str, instances: Mapping[str, Instance]) -> None:
        """Raise a domain error for what this target cannot do yet with these instances
        (before a stage relies on it); nothing by default."""
        return None

    # ---- before a run

    brings_up: ClassVar[bool] = False

    def makes_sources(self, estate: Estate) -> bool:
        """Whether bringing the target up makes the source hosts too (their keys are then
        checked after the bring-up, not before)."""
        return False

    def bring_up(self, estate: Estate, progress: Progress | None = None) -> Any:
        """Bring up what a run needs on this target (idempotent); a report whose
        ``changed`` says whether anything was changed. Only called when ``brings_up``."""
        raise NotImplementedError(f"the {self.name} target has nothing to bring up")
