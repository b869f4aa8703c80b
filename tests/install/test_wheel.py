"""The package as a user gets it: the sdist and the wheel built from the checkout (`python -m
build`: the wheel is built from the sdist), installed with its dependencies into a fresh venv
outside the checkout, and the planner's and auditor's commands run from a folder outside it
on a copy of the example estate. (A sandbox `preview` is left out: it needs root, the sandbox
machines and the Pulumi engine, which the sandbox tests cover from the checkout.)"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().with_name("probe_installed.py")
# the top-level folders the wheel carries under migrate/_shipped (migrate.core.resources.NAMES)
SHIPPED = ("templates", "playbooks", "stacks", "providers")
BUILD_TIMEOUT_S = 600
INSTALL_TIMEOUT_S = 900
CLI_TIMEOUT_S = 120


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def left_out(path: Path) -> bool:
    """What a checkout makes in its folders and a package must not carry (setup.py's IGNORE,
    MANIFEST.in's excludes)."""
    return (any(part in ("__pycache__", ".ansible") for part in path.parts)
            or path.suffix in (".pyc", ".pyo", ".pyd")
            or fnmatch.fnmatch(path.name, "Pulumi.*.yaml") or path.name == "schema.json")


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not left_out(p.relative_to(folder))}


@dataclass
class Built:
    wheel: Path
    sdist: Path
    # the checkout's files when the build started, relative to each folder
    shipped: dict[str, set[str]]
    package: set[str]


@dataclass
class Installed:
    venv: Path
    site_packages: Path
    home: Path
    work: Path

    def env(self) -> dict[str, str]:
        """A user's environment: the venv first on PATH, nothing pointing into the checkout."""
        return {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.home),
                "LANG": "C.UTF-8", "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                "ANSIBLE_HOME": str(self.home / ".ansible"),
                "MIGRATE_OPERATOR": "install-test"}

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(a) for a in argv], cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def migrate(self, *args: str) -> dict:
        return json.loads(self.run(self.venv / "bin" / "migrate", *args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    shipped = {name: files_under(ROOT / name) for name in SHIPPED}
    package = {f"migrate/{name}" for name in files_under(ROOT / "migrate")}
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("migrate-*.whl")
    (sdist,) = out.glob("migrate-*.tar.gz")
    return Built(wheel, sdist, shipped, package)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("user")
    assert not base.resolve().is_relative_to(ROOT)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                   timeout=INSTALL_TIMEOUT_S)
    # the real HOME's pip cache makes a second install fast; PyPI gives the dependencies
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_")) and k != "VIRTUAL_ENV"}
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                           "--disable-pip-version-check", str(built.wheel)],
                          cwd=base, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    work = base / "work"
    shutil.copytree(ROOT / "examples" / "estate", work / "estate",
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs", "runbooks"))
    (base / "home").mkdir()
    return Installed(venv, site_packages, base / "home", work)


def test_the_sdist_carries_the_folders_and_the_package(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    top = f"migrate-{version()}"
    assert built.sdist.name == f"{top}.tar.gz"
    for name, files in built.shipped.items():
        assert files, f"{name}/ is empty in the checkout"
        carried = {n.removeprefix(f"{name}/") for n in names if n.startswith(f"{name}/")}
        assert files <= carried, f"{name}/ lacks {sorted(files - carried)}"
    assert built.package <= names, sorted(built.package - names)
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md"} <= names
    assert not [n for n in names if left_out(Path(n))]


def test_the_wheel_carries_the_folders_schemas_and_data(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    for name, files in built.shipped.items():
        prefix = f"migrate/_shipped/{name}/"
        carried = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
        assert carried == files, (name, sorted(files ^ carried))
    assert built.package <= names, sorted(built.package - names)
    assert {"migrate/schemas/migrate.schema.json", "migrate/schemas/system.schema.json",
            "migrate/rehearsal/testcloud/data/aio.sh"} <= names
    assert {"stacks/sandbox/Pulumi.yaml", "stacks/openstack/Pulumi.yaml",
            "providers/openstack/go.mod", "playbooks/ansible.cfg",
            "templates/plan_system.j2"} <= {n.removeprefix("migrate/_shipped/") for n in names}
    assert not [n for n in names if left_out(Path(n))]
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]


def test_installed_package_uses_its_own_code_folders_and_dependencies(
        installed: Installed) -> None:
    probe = installed.work / PROBE.name
    shutil.copy(PROBE, probe)
    found = json.loads(installed.run(installed.venv / "bin" / "python", "-I", probe).stdout)
    package = installed.site_packages / "migrate"
    assert Path(found["migrate"]) == package / "__init__.py"
    for name in SHIPPED:
        assert Path(found["folders"][name]) == package / "_shipped" / name
        assert Path(found["in_use"][name]) == package / "_shipped" / name
    # every third-party module the package imports comes from a declared dependency
    assert found["undeclared"] == {}
    # the playbooks name ansible.builtin modules only, which ansible-core alone resolves
    assert found["ansible_modules"] and found["unresolved_modules"] == []
    assert all(m.startswith("ansible.builtin.") for m in found["ansible_modules"])
    assert not (installed.site_packages / "ansible_collections").exists()  # no community bundle
    installed.run(installed.venv / "bin" / "pip", "check", "--disable-pip-version-check")
    version_line = installed.run(installed.venv / "bin" / "migrate", "--version").stdout
    assert version_line.strip() == f"migrate, version {version()}"


def test_installed_cli_plans_writes_runbooks_and_reports_outside_the_checkout(
        installed: Installed) -> None:
    estate = installed.work / "estate"
    ids = sorted(p.stem for p in (estate / "systems").glob("*.yaml"))
    assert len(ids) == 10

    validated = installed.migrate("validate", "estate")
    assert [s["id"] for s in validated["systems"]] == ids

    census = installed.migrate("census", "estate")
    assert sum(census["counts"].values()) == len(ids)
    migrating = sorted(s["id"] for s in census["systems"] if s["disposition"] == "migrate")
    assert migrating and census["counts"]["migrate"] == len(migrating)
    assert census["files"] and all((installed.work / f).is_file() for f in census["files"])

    plan = installed.migrate("plan", "estate")
    assert (estate / ".migrate" / "plan.json").is_file()
    assert sorted(s for wave in plan["waves"] for s in wave["systems"]) == migrating

    runbooks = installed.migrate("runbook", "estate")
    assert runbooks["files"] and all((installed.work / f).is_file() for f in runbooks["files"])
    folder = estate / "runbooks"
    for sid in migrating:
        assert sid in (folder / "plan" / f"{sid}.md").read_text(encoding="utf-8")
        assert sid in (folder / "plan" / f"{sid}.html").read_text(encoding="utf-8")
        assert (folder / "evidence" / f"{sid}.md").is_file()
    for wave in plan["waves"]:
        text = (folder / "plan" / f"wave-{wave['number']}.md").read_text(encoding="utf-8")
        assert all(sid in text for sid in wave["systems"])
    assert all(sid in (folder / "index.md").read_text(encoding="utf-8") for sid in migrating)

    report = installed.migrate("report", "estate")
    assert sorted(s["id"] for s in report["systems"]) == migrating
    assert report["files"] and all((installed.work / f).is_file() for f in report["files"])
    (markdown,) = [installed.work / f for f in report["files"] if f.endswith("report.md")]
    assert all(sid in markdown.read_text(encoding="utf-8") for sid in migrating)

    assert installed.migrate("audit", "verify", "estate")["ok"] is True
