"""The package as a user gets it: the sdist and the wheel built from the checkout (`python -m
build`: the wheel is built from the sdist), installed with its dependencies into fresh venvs
outside the checkout, once without extras (the base install, the planner's and the auditor's)
and once with every extra, and the planner's and auditor's commands run from a folder outside
it on a copy of the example estate. (A sandbox `preview` is left out: it needs root, the
sandbox machines and the Pulumi engine, which the sandbox tests cover from the checkout.)"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.core.extras import extra_providing

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

    def run(self, *argv: str | Path, exit_code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(a) for a in argv], cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == exit_code, (
            f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def probe(self, *args: str) -> dict:
        probe = self.work / PROBE.name
        shutil.copy(PROBE, probe)
        return json.loads(self.run(self.venv / "bin" / "python", "-I", probe, *args).stdout)

    def distributions(self) -> set[str]:
        listed = self.run(self.venv / "bin" / "pip", "list", "--format", "json",
                          "--disable-pip-version-check").stdout
        return {entry["name"].lower() for entry in json.loads(listed)}

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


def supported_minors() -> range:
    """The Python 3 minor versions requires-python allows (">=3.11,<3.14": 11 to 13)."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    assert low and high, spec
    return range(int(low.group(1)), int(high.group(1)))


def python_3(minor: int) -> Path | None:
    """This machine's Python 3.minor: pyenv's newest build of it, else one on PATH (not a
    pyenv shim, which runs pyenv's chosen version only)."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob(f"3.{minor}.*/bin/python3"),
                   key=lambda p: int(p.parts[-3].split(".")[2]))
    if pyenv:
        return pyenv[-1]
    on_path = shutil.which(f"python3.{minor}")
    return Path(on_path) if on_path and "/shims/" not in on_path else None


def newest_python() -> list:
    """The newest Python requires-python allows, when this machine has it and it is not the
    one running the tests (the oldest, CI's 3.11); else this one, so that the test below
    runs everywhere. The versions between are left out: the two ends cover them at half the
    time (this project's machines have pyenv's 3.12 too)."""
    newest = max(supported_minors())
    python = python_3(newest) if newest != sys.version_info.minor else None
    if python is None:
        return [pytest.param(Path(sys.executable), id="this-python")]
    return [pytest.param(python, id=f"python3.{newest}")]


def install(built: Built, tmp_path_factory: pytest.TempPathFactory, extras: str,
            python: Path = Path(sys.executable)) -> Installed:
    """The wheel with ``extras`` (``[all]``, or "" for none) in a fresh venv of its own."""
    base = tmp_path_factory.mktemp("user")
    assert not base.resolve().is_relative_to(ROOT)
    venv = base / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True,
                   timeout=INSTALL_TIMEOUT_S)
    # the real HOME's pip cache makes a second install fast; PyPI gives the dependencies
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_")) and k != "VIRTUAL_ENV"}
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                           "--disable-pip-version-check", f"{built.wheel}{extras}"],
                          cwd=base, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    work = base / "work"
    shutil.copytree(ROOT / "examples" / "estate", work / "estate",
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs", "runbooks"))
    (base / "home").mkdir()
    return Installed(venv, site_packages, base / "home", work)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with every extra."""
    return install(built, tmp_path_factory, "[all]")


@pytest.fixture(scope="module")
def installed_base(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel alone: the planner's and the auditor's install."""
    return install(built, tmp_path_factory, "")


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
    found = installed.probe()
    package = installed.site_packages / "migrate"
    assert Path(found["migrate"]) == package / "__init__.py"
    for name in SHIPPED:
        assert Path(found["folders"][name]) == package / "_shipped" / name
        assert Path(found["in_use"][name]) == package / "_shipped" / name
    # every third-party module the package imports comes from a declared dependency (of the
    # base install or of an extra), and with every extra each module imports
    assert found["undeclared"] == {}
    assert found["not_importable"] == {}
    # the playbooks name ansible.builtin modules only, which ansible-core alone resolves
    assert found["ansible_modules"] and found["unresolved_modules"] == []
    assert all(m.startswith("ansible.builtin.") for m in found["ansible_modules"])
    assert not (installed.site_packages / "ansible_collections").exists()  # no community bundle
    installed.run(installed.venv / "bin" / "pip", "check", "--disable-pip-version-check")
    version_line = installed.run(installed.venv / "bin" / "migrate", "--version").stdout
    assert version_line.strip() == f"migrate, version {version()}"


@pytest.mark.parametrize("install_fixture", ["installed_base", "installed"])
def test_installed_cli_plans_writes_runbooks_and_reports_outside_the_checkout(
        install_fixture: str, request: pytest.FixtureRequest) -> None:
    installed: Installed = request.getfixturevalue(install_fixture)
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

    status = installed.migrate("status", "estate")
    assert sorted(s["id"] for s in status["systems"]) == ids
    assert installed.migrate("audit", "verify", "estate")["ok"] is True


def test_the_base_install_has_no_extra_and_imports_what_it_has(
        installed_base: Installed) -> None:
    assert not {"pulumi", "ansible-core", "ansible-runner", "paramiko", "pytest", "grpcio"
                } & installed_base.distributions()
    found = installed_base.probe("--base")
    package = installed_base.site_packages / "migrate"
    assert Path(found["migrate"]) == package / "__init__.py"
    # a module that cannot be imported misses only a module an extra provides, and is not one
    # a base command needs
    missing = found["not_importable"]
    assert missing, "nothing missing: the extras' modules are installed after all"
    assert all(why.startswith("missing ") and extra_providing(why.removeprefix("missing "))
               for why in missing.values()), missing
    assert not {"migrate.cli.main", "migrate.orchestrate.pipeline", "migrate.stages.runbook",
                "migrate.stages.report", "migrate.stages.evidence",
                "migrate.rehearsal.sandbox.commands", "migrate.rehearsal.sandbox.target",
                } & set(missing)
    installed_base.run(installed_base.venv / "bin" / "pip", "check",
                       "--disable-pip-version-check")


def test_the_base_install_lists_every_command_and_names_the_extra_a_command_needs(
        installed_base: Installed) -> None:
    migrate = installed_base.venv / "bin" / "migrate"
    listed = installed_base.run(migrate, "--help").stdout
    assert all(name in listed for name in ("provision", "transfer", "sandbox", "report"))
    assert "up" in installed_base.run(migrate, "sandbox", "--help").stdout
    installed_base.migrate("plan", "estate")

    for args, extra in ((["provision", "estate", "--yes"], "move"),
                        (["trust", "estate"], "ssh"), (["discover", "estate"], "ssh")):
        refused = installed_base.run(migrate, *args, exit_code=3)
        assert f"'migrate {args[0]}' needs the '{extra}' extra" in refused.stderr, refused.stderr
        assert f"pip install 'migrate[{extra}]'" in refused.stderr, refused.stderr
    # register needs no extra: it gets as far as the platform's address (refused by the sandbox
    # guard, exit 2, unless this host has the sandbox's networks) or the missing app secret (3)
    registered = subprocess.run([str(migrate), "register", "estate", "--system", "wjw-fybj"],
                                cwd=installed_base.work, env=installed_base.env(),
                                capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                                check=False, stdin=subprocess.DEVNULL)
    assert registered.returncode in (2, 3), registered.stderr
    assert "needs the" not in registered.stderr and "pip install" not in registered.stderr, (
        registered.stderr)
    document = json.loads(installed_base.run(migrate, "provision", "estate", "--yes", "-o",
                                             "json", exit_code=3).stdout)
    assert document["error"]["type"] == "EnvironmentNotReady"
    assert "pip install 'migrate[move]'" in document["error"]["hint"]


def venv_megabytes(installed: Installed) -> int:
    return int(subprocess.run(["du", "-sm", str(installed.venv)], capture_output=True,
                              text=True, check=True).stdout.split()[0])


def test_the_base_install_is_light(installed_base: Installed, installed: Installed) -> None:
    """The figures in README's table ("Install"): about 79 MB without extras, 182 MB with
    every extra (a fresh venv's own pip and setuptools, 26 MB, included)."""
    base, full = venv_megabytes(installed_base), venv_megabytes(installed)
    assert base < 120 and full - base > 50, (base, full)


@pytest.mark.parametrize("python", newest_python())
def test_the_wheel_installs_and_plans_with_the_newest_supported_python(
        built: Built, tmp_path_factory: pytest.TempPathFactory, python: Path) -> None:
    """Every extra installs, every module imports, the playbooks' modules resolve and the
    planner's commands run under the newest Python requires-python allows (the other tests
    use the oldest, CI's 3.11, which also runs the moving stages)."""
    installed = install(built, tmp_path_factory, "[all]", python)
    version_line = installed.run(installed.venv / "bin" / "python", "--version").stdout
    assert int(version_line.split()[1].split(".")[1]) in supported_minors()
    found = installed.probe()
    assert found["undeclared"] == {} and found["not_importable"] == {}
    assert found["ansible_modules"] and found["unresolved_modules"] == []
    installed.run(installed.venv / "bin" / "pip", "check", "--disable-pip-version-check")
    plan = installed.migrate("plan", "estate")
    assert plan["waves"]
    assert installed.migrate("runbook", "estate")["files"]
    assert installed.migrate("report", "estate")["files"]
