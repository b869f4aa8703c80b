"""Cloud targets: the contract of the stack programs' outputs (``contract``), the interfaces of
what differs per target and per surroundings (``base.Target``, ``base.Surroundings``), and how
they are found: a target by its name in migrate.yaml (``cloud.target``) among the entry
points of the group ``migrate.targets``; the rehearsal's surroundings (``sandbox``) in the
group ``migrate.surroundings`` when the estate rehearses (the sandbox target always does; an
openstack estate with ``sandbox.surroundings: true``), else the city's own. The stages and
the adapters that reach hosts ask (so nothing here imports them: only ``migrate.core``); none
imports an implementation.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TypeVar

from migrate.core.errors import EnvironmentNotReady
from migrate.core.extras import extra_providing
from migrate.core.loader import Estate
from migrate.targets.base import CitySurroundings, Surroundings, Target

GROUP = "migrate.targets"
SURROUNDINGS_GROUP = "migrate.surroundings"
REHEARSAL = "sandbox"
Loaded = TypeVar("Loaded", Target, Surroundings)
# What to install for the targets migrate itself knows; any other comes from its own package.
PROVIDERS = {
    "openstack": "the migrate package (pip install -e . in the project's checkout)",
    "sandbox": "the migrate package with its rehearsal part, migrate.rehearsal.sandbox "
               "(pip install -e . in the project's checkout)",
}


def installed_targets() -> list[str]:
    return sorted({point.name for point in entry_points(group=GROUP)})


@cache
def load_target(name: str) -> Target:
    """The target ``name`` from its entry point; EnvironmentNotReady naming it and what to
    install when no installed package provides it."""
    return _load(GROUP, name, Target, "target", f"cloud target {name!r} (cloud.target in "
                 "migrate.yaml)")


@cache
def load_surroundings(name: str) -> Surroundings:
    """The surroundings ``name`` from their entry point, like ``load_target``."""
    return _load(SURROUNDINGS_GROUP, name, Surroundings, "surroundings",
                 f"surroundings {name!r} (sandbox.surroundings in migrate.yaml)")


def _load(group: str, name: str, kind: type[Loaded], noun: str, what: str) -> Loaded:
    found = [point for point in entry_points(group=group) if point.name == name]
    provider = PROVIDERS.get(name, f"the package that provides the {name} {noun}")
    if not found:
        others = ", ".join(sorted({p.name for p in entry_points(group=group)})) or "none"
        raise EnvironmentNotReady(
            f"{what} is not installed: no package declares it in the entry point group "
            f"{group!r} (installed: {others})",
            hint=f"install {provider} into the Python environment migrate runs in")
    try:
        made = found[0].load()()
    except (ImportError, AttributeError) as error:
        if isinstance(error, ModuleNotFoundError) and extra_providing(error.name or ""):
            raise  # an extra not installed: the CLI names the command and the extra
        raise EnvironmentNotReady(f"{what} is declared by {found[0].value} but cannot be "
                                  f"loaded: {error}", hint=f"reinstall {provider}") from None
    if not isinstance(made, kind) or made.name != name:
        raise EnvironmentNotReady(
            f"the entry point {found[0].value} of {group!r} is not the {name} {noun}",
            hint="its package declares it wrongly: reinstall or fix that package")
    return made


def target_of(estate: Estate) -> Target:
    """The estate's cloud target (``cloud.target``)."""
    return load_target(estate.settings.cloud.target)


def rehearses(estate: Estate) -> bool:
    """Whether the rehearsal makes what surrounds the cloud: always around the sandbox
    cloud, around another target when ``sandbox.surroundings`` says so."""
    chosen = estate.settings.sandbox.surroundings
    return estate.settings.cloud.target == REHEARSAL or bool(chosen)


def surroundings_of(estate: Estate) -> Surroundings:
    """What surrounds the estate's cloud: the rehearsal's, or the city's own."""
    return load_surroundings(REHEARSAL) if rehearses(estate) else CitySurroundings()


__all__ = ["GROUP", "SURROUNDINGS_GROUP", "Surroundings", "Target", "installed_targets",
           "load_surroundings", "load_target", "rehearses", "surroundings_of", "target_of"]
