"""The optional parts of the install (the extras of the ``migrate`` distribution) and the
third-party modules each provides: the one place that maps a module to its extra, for the
error a command gives when the extra it needs is not installed. pyproject.toml's
[project.optional-dependencies] lists the same distributions; tests/unit/test_extras.py keeps
the two equal."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec

from migrate.core.errors import EnvironmentNotReady

DISTRIBUTION = "migrate"


@dataclass(frozen=True)
class Extra:
    name: str
    purpose: str
    # top-level (or dotted) module name -> the distribution that provides it
    modules: dict[str, str] = field(default_factory=dict)
    # the extras it installs too
    includes: tuple[str, ...] = ()
    # the commands that need it: they refuse before doing anything when it is missing
    commands: tuple[str, ...] = ()

    def install_hint(self) -> str:
        return f"pip install '{DISTRIBUTION}[{self.name}]'"


SSH = Extra(
    "ssh",
    "SSH to source hosts, host keys checked",
    {"paramiko": "paramiko"},
    commands=("trust", "discover"),
)
# register needs nothing more than the base install (the exchange platform's client is the
# standard library's http.client and ssl)
MOVE = Extra(
    "move",
    "moving systems",
    {
        "pulumi": "pulumi",
        "pulumi_openstack": "pulumi-openstack",
        "grpc": "grpcio",
        "google.protobuf": "protobuf",
        "semver": "semver",
        "ansible": "ansible-core",
        "ansible_runner": "ansible-runner",
        "pytest": "pytest",
        "testinfra": "pytest-testinfra",
    },
    includes=("ssh",),
    commands=("preview", "provision", "destroy", "transfer", "check", "cutover", "rollback",
              "decommission", "verify", "run"),
)
# the sandbox's own commands need nothing more than the base install (systemd-nspawn,
# debootstrap: Debian's); moving systems on it needs the move extra
REHEARSAL = Extra("rehearsal", "rehearsing moves on the sandbox", includes=("move",))
ALL = Extra("all", "everything above", includes=("move", "rehearsal"))
EXTRAS = {extra.name: extra for extra in (SSH, MOVE, REHEARSAL, ALL)}


def extra_providing(module: str) -> Extra | None:
    """The extra whose distributions provide ``module`` (``google`` counts for
    ``google.protobuf``: a missing namespace is reported by its first part)."""
    for extra in EXTRAS.values():
        for provided in extra.modules:
            if (module == provided or module.startswith(f"{provided}.")
                    or provided.startswith(f"{module}.")):
                return extra
    return None


def extra_of_command(command: str) -> Extra | None:
    return next((e for e in EXTRAS.values() if command in e.commands), None)


def not_installed(extra: Extra) -> str | None:
    """The first module of ``extra`` that cannot be found (looked up, not imported)."""
    for module in extra.modules:
        try:
            found = find_spec(module)
        except ModuleNotFoundError:  # its parent package is missing
            found = None
        if found is None:
            return module
    return None


def with_included(extra: Extra) -> list[Extra]:
    """``extra`` and the extras it installs too, each once."""
    found = [extra]
    for name in extra.includes:
        found += [e for e in with_included(EXTRAS[name]) if e not in found]
    return found


def require_extra(command: str, command_path: str) -> None:
    """Refuse ``command`` before it does anything when the extra it needs (or one that extra
    includes) is not installed; the error names the extra the command needs."""
    extra = extra_of_command(command)
    if extra is None:
        return
    for part in with_included(extra):
        module = not_installed(part)
        if module is not None:
            raise not_installed_error(command_path, module, extra)


def missing_extra(error: ModuleNotFoundError, command: str) -> EnvironmentNotReady | None:
    """The error ``command`` gives when a module an extra provides is not installed; None
    for any other missing module (a broken install or a bug, not a missing extra). The
    extra named is the command's when it includes the module's (move for paramiko)."""
    provider = extra_providing(error.name or "")
    if provider is None:
        return None
    needed = extra_of_command(command.rsplit(" ", 1)[-1])
    extra = needed if needed is not None and provider in with_included(needed) else provider
    return not_installed_error(command, error.name or "", extra)


def not_installed_error(command: str, module: str, extra: Extra) -> EnvironmentNotReady:
    return EnvironmentNotReady(
        f"'{command}' needs the '{extra.name}' extra of {DISTRIBUTION} ({extra.purpose}), "
        f"which this installation does not have: no module {module!r}",
        hint=f"{extra.install_hint()} into the Python environment migrate runs in ('make "
             f"setup' in the project's checkout installs every extra)")
