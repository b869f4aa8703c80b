"""The OpenStack resource plugin ``pulumi-resource-openstack``, built from the Go module proxy.

Upstream builds it as the Pulumi Terraform bridge around the Terraform provider; the proxy
serves both (not ``pulumi-openstack/provider/v5``), so ``providers/openstack`` is a small Go
module that does the same: ``provider/`` maps every Terraform resource and data source to the
token of the pinned ``pulumi-openstack`` Python SDK, ``cmd/pulumi-tfgen-openstack`` writes the
Pulumi schema, ``cmd/pulumi-resource-openstack`` embeds it and serves ``tfbridge.Main``.

Layout under ``provider_root()`` (``<cache>/providers/openstack/v<X>``)::

    bin/pulumi-resource-openstack     the plugin, reporting version X
    bin/.complete                     marker, written last (JSON: version, digest of the
                                      sources, seconds, size, counts)
    schema.json                       the schema the plugin embeds
    build/src/                        a copy of providers/openstack the build compiles
    build.log                         output of the last build

The engine runs with automatic plugin acquisition off and ``PULUMI_HOME`` under each state
directory, so ``install_plugin`` (called by ``migrate.adapters.engine.prepare_state_dir``) puts a
launcher of the plugin into ``$PULUMI_HOME/plugins/resource-openstack-v<X>/``: the engine's
plugin cache, where it looks up exactly the version the SDK asks for.

``pack``/``install_archive`` carry engine and plugin to a site without Go: one tar.gz made
on a build machine, its sha256 beside it, unpacked into the cache there after the check.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path

from migrate.adapters.engine import build as engine_build
from migrate.adapters.engine import gomod
from migrate.adapters.engine.build import Progress, cache_root, find_go
from migrate.adapters.engine.version import (
    BRIDGE_MODULE,
    BRIDGE_VERSION,
    OPENSTACK_PROVIDER_VERSION,
    PLUGIN_SDK_REPLACE,
    PULUMI_VERSION,
    TF_OPENSTACK_MODULE,
    TF_OPENSTACK_VERSION,
)
from migrate.adapters.processes import parent_death_launcher
from migrate.core import resources
from migrate.core.errors import EnvironmentNotReady, GuardRefused

NAME = "openstack"
PLUGIN_FILE = f"pulumi-resource-{NAME}"
TFGEN_PACKAGE = f"./cmd/pulumi-tfgen-{NAME}"
PLUGIN_PACKAGE = f"./cmd/{PLUGIN_FILE}"
GO_MODULE = "migrate.local/pulumi-openstack"
VERSION_SYMBOL = f"{GO_MODULE}/provider.Version"
TF_VERSION_SYMBOL = f"{GO_MODULE}/provider.TFProviderVersion"
SOURCE_DIR = resources.folder("providers") / NAME
SDK_TOKENS_FILE = "provider/sdk-tokens.txt"
MARKER_NAME = ".complete"
VERSION_TIMEOUT_SECONDS = 30
SDK_TOKEN = re.compile(r"""['"](openstack:[A-Za-z0-9]+/[A-Za-z0-9]+:[A-Za-z0-9]+)['"]""")


def provider_root(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    return cache_root() / "providers" / NAME / f"v{version}"


def provider_bin_dir(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    return provider_root(version) / "bin"


def marker_path(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    return provider_bin_dir(version) / MARKER_NAME


def build_log_path(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    return provider_root(version) / "build.log"


def schema_path(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    return provider_root(version) / "schema.json"


def read_marker(version: str = OPENSTACK_PROVIDER_VERSION) -> dict | None:
    try:
        recorded = json.loads(marker_path(version).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def source_digest(source: Path = SOURCE_DIR) -> str:
    """sha256 over the Go program's files (names and contents; not the generated schema), so
    a changed providers/openstack is built again."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.name != "schema.json"):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_complete(version: str = OPENSTACK_PROVIDER_VERSION) -> bool:
    """True when the marker says this version of these sources finished, and the plugin is
    still there."""
    recorded = read_marker(version)
    if recorded is None or recorded.get("version") != version:
        return False
    if recorded.get("source") != source_digest():
        return False
    return os.access(provider_bin_dir(version) / PLUGIN_FILE, os.X_OK) and schema_path(
        version
    ).is_file()


def find_provider(version: str = OPENSTACK_PROVIDER_VERSION) -> Path | None:
    """The built plugin executable, or None."""
    return provider_bin_dir(version) / PLUGIN_FILE if is_complete(version) else None


def ensure_provider(build: bool = True, progress: Progress = print) -> Path:
    """The plugin executable, building it into the cache first when it is missing."""
    found = find_provider()
    if found is not None:
        return found
    if not build:
        raise EnvironmentNotReady(
            f"the OpenStack provider plugin v{OPENSTACK_PROVIDER_VERSION} is not built",
            hint="run `make provider` (needs Go and the Go module proxy), or install an "
            "archive made by `python -m migrate.adapters.engine pack`",
        )
    return build_provider(progress=progress)


def reported_version(plugin: Path) -> str | None:
    """What ``pulumi-resource-openstack -version`` prints; None if it does not run."""
    try:
        result = subprocess.run(
            [str(plugin), "-version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# --- the pins -------------------------------------------------------------------------


def gomod_pins(gomod_text: str) -> dict[str, str]:
    """The versions providers/openstack/go.mod requires or replaces with, by module path."""
    pins: dict[str, str] = {}
    for raw in gomod_text.splitlines():
        parts = raw.split("//")[0].strip().removeprefix("require").split()
        if len(parts) == 2 and parts[0] in (BRIDGE_MODULE, TF_OPENSTACK_MODULE):
            pins[parts[0]] = parts[1]
    for replace in gomod.parse_replaces(gomod_text):
        if replace.old_path == PLUGIN_SDK_REPLACE[0]:
            pins["replace"] = f"{replace.new_path} {replace.new_version}"
    return pins


def check_pins(source: Path = SOURCE_DIR) -> None:
    """providers/openstack/go.mod must pin what migrate.adapters.engine.version says."""
    expected = {
        BRIDGE_MODULE: BRIDGE_VERSION,
        TF_OPENSTACK_MODULE: TF_OPENSTACK_VERSION,
        "replace": f"{PLUGIN_SDK_REPLACE[1]} {PLUGIN_SDK_REPLACE[2]}",
    }
    found = gomod_pins((source / "go.mod").read_text())
    if found != expected:
        raise EnvironmentNotReady(
            f"{source / 'go.mod'} pins {found}, migrate.adapters.engine.version says {expected}",
            hint="update the go.mod (then `go mod tidy` in providers/openstack) or version.py",
        )


def sdk_tokens() -> list[str]:
    """Every resource and function token the installed pulumi-openstack SDK calls (those of
    module "index" are deprecated aliases of module tokens: the plugin maps each Terraform
    name to one token, the module's)."""
    from importlib.util import find_spec

    # Located, not imported: importing it warns about its deprecated aliases.
    spec = find_spec("pulumi_openstack")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentNotReady("the pulumi-openstack SDK is not installed", hint="make setup")
    package = Path(next(iter(spec.submodule_search_locations)))
    found: set[str] = set()
    for path in package.rglob("*.py"):
        found.update(SDK_TOKEN.findall(path.read_text()))
    return sorted(found)


def sdk_tokens_text() -> str:
    """The content of providers/openstack/provider/sdk-tokens.txt for the installed SDK."""
    from importlib.metadata import version

    header = (
        f"# Resource and function tokens of pulumi-openstack {version('pulumi-openstack')}, "
        "written by `python -m migrate.adapters.engine sdk-tokens`.\n"
    )
    return header + "".join(f"{token}\n" for token in sdk_tokens())


# --- the build ------------------------------------------------------------------------


def provider_log(path: Path, progress: Progress) -> engine_build._BuildLog:
    return engine_build._BuildLog(path, progress, built="the OpenStack provider plugin",
                                  rerun="make provider")


def build_lock(version: str) -> AbstractContextManager[None]:
    return engine_build.locked(provider_root(version))


def build_environment() -> dict[str, str]:
    """The engine build's Go environment, held to the committed go.sum."""
    env = engine_build.build_environment()
    flags = [f for f in env["GOFLAGS"].split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join([*flags, "-mod=readonly"])
    return env


def build_provider(
    version: str = OPENSTACK_PROVIDER_VERSION, progress: Progress = print
) -> Path:
    """Build the plugin into the cache unless a complete one is there; return its path."""
    if is_complete(version):  # also where Go is missing: an installed archive
        progress(f"{PLUGIN_FILE} v{version}: already built in {provider_bin_dir(version)}")
        return provider_bin_dir(version) / PLUGIN_FILE
    go = find_go()
    if go is None:
        raise EnvironmentNotReady(
            "the OpenStack provider plugin is not built and Go is not installed",
            hint="install Go >= 1.26 and run `make provider`, or install an archive made "
            "on a build machine with `python -m migrate.adapters.engine install ARCHIVE`",
        )
    check_pins()
    with build_lock(version):
        if is_complete(version):
            progress(f"{PLUGIN_FILE} v{version}: already built in {provider_bin_dir(version)}")
            return provider_bin_dir(version) / PLUGIN_FILE
        return _build_unlocked(go, version, progress)


def _ldflags(version: str) -> str:
    return (
        f"-s -w -X {VERSION_SYMBOL}={version} "
        f"-X {TF_VERSION_SYMBOL}={TF_OPENSTACK_VERSION.removeprefix('v')}"
    )


def _build_unlocked(go: Path, version: str, progress: Progress) -> Path:
    started = time.monotonic()
    root = provider_root(version)
    bin_dir = provider_bin_dir(version)
    build_dir = root / "build"
    source = build_dir / "src"
    marker_path(version).unlink(missing_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.copytree(SOURCE_DIR, source, ignore=shutil.ignore_patterns("schema.json"))
    digest = source_digest(source)
    log = provider_log(build_log_path(version), progress)
    env = build_environment()
    ldflags = _ldflags(version)

    log.note(f"{PLUGIN_FILE} v{version}: compiling the schema generator (log: {log.path})")
    tfgen = build_dir / f"pulumi-tfgen-{NAME}"
    log.run(
        [str(go), "build", "-trimpath", "-ldflags", ldflags, "-o", str(tfgen), TFGEN_PACKAGE],
        cwd=source,
        env=env,
    )
    log.note(f"{PLUGIN_FILE} v{version}: generating the Pulumi schema")
    out = build_dir / "schema"
    log.run(
        [str(tfgen), "schema", "--out", str(out), "--skip-docs", "--skip-examples"],
        cwd=build_dir,
        env=env,
    )
    schema = out / "schema.json"
    counts = _schema_counts(schema)
    shutil.copyfile(schema, source / "cmd" / PLUGIN_FILE / "schema.json")

    log.note(f"{PLUGIN_FILE} v{version}: compiling the plugin with the schema embedded")
    partial = bin_dir / f"{PLUGIN_FILE}.partial"
    log.run(
        [str(go), "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), PLUGIN_PACKAGE],
        cwd=source,
        env=env,
    )
    reported = reported_version(partial)
    if reported != version:
        raise EnvironmentNotReady(
            f"the built plugin reports version {reported!r}, expected {version!r}\n{log.tail()}",
            hint=f"the -X {VERSION_SYMBOL} ldflag did not take; see {log.path}",
        )
    partial.replace(bin_dir / PLUGIN_FILE)
    shutil.copyfile(schema, schema_path(version))
    tfgen.unlink(missing_ok=True)

    seconds = time.monotonic() - started
    recorded = {
        "version": version,
        "source": digest,
        "build_seconds": round(seconds, 1),
        "bytes": (bin_dir / PLUGIN_FILE).stat().st_size,
        **counts,
    }
    marker_path(version).write_text(json.dumps(recorded) + "\n")
    log.note(
        f"{PLUGIN_FILE} v{version}: built in {seconds:.0f} s into {bin_dir} "
        f"({counts['resources']} resources, {counts['functions']} functions)"
    )
    return bin_dir / PLUGIN_FILE


def _schema_counts(schema: Path) -> dict[str, int]:
    spec = json.loads(schema.read_text())
    return {kind: len(spec.get(kind, {})) for kind in ("resources", "functions")}


# --- where the engine finds it ------------------------------------------------------------


def plugin_dir(pulumi_home: Path, version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    """The engine's plugin cache entry for this version: ``resource-openstack-v<X>``."""
    return Path(pulumi_home) / "plugins" / f"resource-{NAME}-v{version}"


def install_plugin(pulumi_home: Path, version: str = OPENSTACK_PROVIDER_VERSION) -> Path | None:
    """Put a launcher of the built plugin into ``$PULUMI_HOME``'s plugin cache (a no-op when
    it is not built). The engine then loads it for SDK version X without acquiring anything.

    The launcher becomes the plugin, ending with the engine: the engine starts its plugins
    in process groups of their own, and a killed engine left the plugin serving for ever."""
    plugin = find_provider(version)
    if plugin is None:
        return None
    target_dir = plugin_dir(pulumi_home, version)
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    launcher = target_dir / PLUGIN_FILE
    text = parent_death_launcher(plugin)
    if launcher.is_file() and not launcher.is_symlink() and launcher.read_text() == text:
        return launcher
    engine_build.install_executable(text, launcher)
    return launcher


# --- offline installation -----------------------------------------------------------------


def archive_name() -> str:
    machine = os.uname().machine
    return (
        f"migrate-engine-pulumi-v{PULUMI_VERSION}-{NAME}-v{OPENSTACK_PROVIDER_VERSION}"
        f"-{machine}.tar.gz"
    )


def _archive_members() -> list[tuple[Path, str]]:
    """(file, name in the archive) for the engine's bin/ and the plugin's bin/ and schema."""
    engine_root = engine_build.engine_root()
    if not engine_build.is_complete():
        raise EnvironmentNotReady(
            f"the Pulumi engine v{PULUMI_VERSION} is not built", hint="run `make engine`"
        )
    if not is_complete():
        raise EnvironmentNotReady(
            f"the OpenStack provider plugin v{OPENSTACK_PROVIDER_VERSION} is not built",
            hint="run `make provider`",
        )
    root = cache_root()
    members = []
    for directory in (engine_root / "bin", provider_bin_dir()):
        for path in sorted(directory.iterdir()):
            if path.is_file() and not path.name.endswith(".partial"):
                members.append((path, path.relative_to(root).as_posix()))
    members.append((schema_path(), schema_path().relative_to(root).as_posix()))
    return members


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pack(output_dir: Path) -> tuple[Path, str]:
    """Write engine and plugin into one tar.gz and its ``.sha256`` (sha256sum format)."""
    members = _archive_members()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / archive_name()
    partial = archive.with_name(archive.name + ".partial")

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        for path, name in members:
            tar.add(path, arcname=name, recursive=False, filter=normalise)
    partial.replace(archive)
    digest = sha256_of(archive)
    Path(f"{archive}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive, digest


def expected_sha256(archive: Path, given: str | None) -> str:
    if given:
        return given.strip().lower()
    sidecar = Path(f"{archive}.sha256")
    try:
        return sidecar.read_text().split()[0].lower()
    except (OSError, IndexError) as error:
        raise GuardRefused(
            f"no checksum for {archive}: {sidecar} is missing",
            hint="copy the .sha256 file made by `pack` beside the archive, or pass --sha256",
        ) from error


def install_archive(archive: Path, sha256: str | None = None) -> list[str]:
    """Check the archive's sha256, then unpack it into the cache; return what it installed."""
    archive = Path(archive)
    expected = expected_sha256(archive, sha256)
    actual = sha256_of(archive)
    if actual != expected:
        raise GuardRefused(
            f"{archive} has sha256 {actual}, expected {expected}",
            hint="the archive is damaged or not the one packed; copy it again",
        )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    installed: list[str] = []
    with tarfile.open(archive, "r:gz") as tar, tempfile.TemporaryDirectory(dir=root) as tmp:
        members = tar.getmembers()
        for member in members:
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise GuardRefused(f"{archive} holds an unexpected entry {member.name!r}")
        # Only regular files, written by hand (no tarfile extraction filter needed), each to
        # a temporary name first; the markers last, so a half-installed tree never looks
        # complete.
        ordered = sorted(members, key=lambda m: Path(m.name).name == MARKER_NAME)
        for number, member in enumerate(ordered):
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            staged = Path(tmp) / str(number)
            with source, staged.open("wb") as out:
                shutil.copyfileobj(source, out)
            staged.chmod(member.mode & 0o755 | 0o600)
            target = root / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            installed.append(member.name)
    return installed
