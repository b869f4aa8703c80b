"""Cloud targets: the contract of the stack programs' outputs (``contract``), the interface of
what differs per target (``base.Target``), and how a target is found: by its name in
migrate.yaml (``cloud.target``), among the entry points of the group ``migrate.targets`` that
the installed packages declare. The stages ask the target; none imports one.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from migrate.errors import EnvironmentNotReady
from migrate.loader import Estate
from migrate.targets.base import Target

GROUP = "migrate.targets"
# What to install for the targets migrate itself knows; any other comes from its own package.
PROVIDERS = {
    "openstack": "the migrate package (pip install -e . in the project's checkout)",
    "sandbox": "the migrate package with its rehearsal part, migrate.sandbox (pip install -e . "
               "in the project's checkout)",
}


def installed_targets() -> list[str]:
    return sorted({point.name for point in entry_points(group=GROUP)})


@cache
def load_target(name: str) -> Target:
    """The target ``name`` from its entry point; EnvironmentNotReady naming it and what to
    install when no installed package provides it."""
    found = [point for point in entry_points(group=GROUP) if point.name == name]
    if not found:
        others = ", ".join(installed_targets()) or "none"
        raise EnvironmentNotReady(
            f"cloud target {name!r} (cloud.target in migrate.yaml) is not installed: no "
            f"package declares it in the entry point group {GROUP!r} (installed: {others})",
            hint=f"install {PROVIDERS.get(name, f'the package that provides the {name} target')}"
                 " into the Python environment migrate runs in")
    try:
        made = found[0].load()()
    except (ImportError, AttributeError) as error:
        raise EnvironmentNotReady(
            f"cloud target {name!r} is declared by {found[0].value} but cannot be loaded: "
            f"{error}", hint=f"reinstall {PROVIDERS.get(name, 'the package that provides it')}"
        ) from None
    if not isinstance(made, Target) or made.name != name:
        raise EnvironmentNotReady(
            f"the entry point {found[0].value} of {GROUP!r} is not the {name} target",
            hint="its package declares it wrongly: reinstall or fix that package")
    return made


def target_of(estate: Estate) -> Target:
    """The estate's cloud target (``cloud.target``)."""
    return load_target(estate.settings.cloud.target)


__all__ = ["GROUP", "Target", "installed_targets", "load_target", "target_of"]
