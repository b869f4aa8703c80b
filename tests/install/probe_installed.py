"""Run by the fresh venv's Python (``python -I probe_installed.py [--base]``), never imported
by the tests: reports, as one JSON document, where the installed ``migrate`` finds its code and
its folders, which of its modules cannot be imported and why, and, in an install with every
extra, which third-party imports of the package no declared dependency provides (neither the
base install nor an extra) and which modules the installed playbooks name that the installed
Ansible cannot resolve. ``--base``: an install without extras, where those two are not asked
(the extras' distributions are not there to be looked up)."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
# run elsewhere, with what that machine has, not on the controller: the sandbox's legacy
# application (Debian's python3-psycopg2) and the probe verify copies onto a target beside
# migrate/adapters/exchange.py (its `import client`)
ELSEWHERE = {"rehearsal/legacy/app.py", "stages/verify/suites/exchange_probe.py"}
# extras for the project's own work, which a user does not install
NOT_FOR_USERS = {"dev"}
MARKER_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """The distributions migrate requires, unconditionally or through an extra for users;
    what they require in turn is not counted: an import must be covered by migrate's own
    declaration. Whether a module that imports an extra's distribution is reached only by
    that extra's commands is what the base install's import check and commands show."""
    found = set()
    for requirement in metadata.requires("migrate") or []:
        extra = MARKER_EXTRA.search(requirement)
        if extra and extra.group(1) in NOT_FOR_USERS:
            continue
        found.add(canonical(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return found - {"migrate"}  # an extra that installs others names migrate itself


def third_party_imports(package: Path) -> dict[str, list[str]]:
    """Top-level modules imported by the package's own code (its shipped folders excluded),
    that are neither the standard library nor migrate, with the files importing them."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith("_shipped/") or relative in ELSEWHERE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "migrate":
                    found.setdefault(top, []).append(relative)
    return found


def undeclared(package: Path) -> dict[str, list[str]]:
    providers = metadata.packages_distributions()
    wanted = declared()
    missing = {}
    for module, files in third_party_imports(package).items():
        distributions = {canonical(d) for d in providers.get(module, [])}
        if not distributions & wanted:
            missing[module] = sorted(set(files))
    return missing


def module_names(package: Path) -> list[str]:
    """Every module of the package that is imported (not run: no __main__) on this machine."""
    names = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if (relative.parts[0] == "_shipped" or relative.as_posix() in ELSEWHERE
                or path.stem == "__main__"):
            continue
        parts = relative.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("migrate", *parts)))
    return names


def not_importable(package: Path) -> dict[str, str]:
    """Each module of the package that cannot be imported, with the module it misses (the
    ``name`` of its ModuleNotFoundError) or, for another error, the error."""
    failed = {}
    for name in module_names(package):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            failed[name] = f"missing {error.name}"
        except Exception as error:  # reported: the test says which were expected
            failed[name] = f"{type(error).__name__}: {error}"
    return failed


def unresolved_modules(playbooks: Path) -> tuple[list[str], list[str]]:
    """Every module or action a task names (a fully qualified key), and those the installed
    Ansible does not know (its module list, asked through ansible-runner's ansible-doc)."""
    import ansible_runner
    import yaml

    def keys(node: object):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and FQCN.match(key):
                    yield key
                yield from keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)

    names: set[str] = set()
    for path in playbooks.rglob("*.yml"):
        names |= set(keys(yaml.safe_load(path.read_text(encoding="utf-8"))))
    # ansible-doc is the venv's own, beside this interpreter
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                          os.environ.get("PATH", "")])
    known, _errors = ansible_runner.get_plugin_list(plugin_type="module",
                                                    response_format="json", quiet=True)
    return sorted(names), [name for name in sorted(names) if name not in known]


def with_extras(package: Path) -> dict:
    """What only an install with the extras can say."""
    from migrate.adapters import ansible as runner

    used, unresolved = unresolved_modules(runner.PLAYBOOKS)
    return {"playbooks": str(runner.PLAYBOOKS), "undeclared": undeclared(package),
            "ansible_modules": used, "unresolved_modules": unresolved}


def main() -> None:
    import migrate
    from migrate.adapters import render
    from migrate.adapters.engine import provider
    from migrate.core import resources
    from migrate.stages import provision

    package = Path(migrate.__file__).resolve().parent
    found = {
        "migrate": str(Path(migrate.__file__).resolve()),
        "folders": {name: str(resources.folder(name)) for name in resources.NAMES},
        "in_use": {"templates": str(render.TEMPLATES_DIR),
                   "stacks": str(provision.stacks_dir()),
                   "providers": str(provider.SOURCE_DIR.parent)},
        "not_importable": not_importable(package),
    }
    if "--base" not in sys.argv[1:]:
        extras = with_extras(package)
        found["in_use"]["playbooks"] = extras.pop("playbooks")
        found.update(extras)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
