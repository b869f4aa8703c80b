"""Base images for sandbox machines: built once with debootstrap, cached, never changed.

An image is a Debian 12 root directory. Machines never write to it: each machine boots
with an overlay whose upper directory holds everything it changes (see machines.py).

Two images:
- ``cloud``: what the e-government cloud offers (systemd, sshd, python3, rsync, iproute2)
  plus the middleware the example systems run, because cloud machines have no Internet
  (postgresql, psycopg2, nginx-light, curl, cron, sudo), and nftables, with which each
  machine enforces its security group rules.
- ``legacy``: the department servers: the same plus what a department web app needs
  (nftables is installed there too, but no rules are loaded).

Services that must not start on every machine are disabled in the image: postgresql
and nginx start only where a stage enables them (``systemctl enable --now postgresql``
when a database is seeded or moved there), and the apt timers never run (no Internet).
cron stays enabled: legacy systems keep scheduled jobs. SSH host keys are removed
(each machine gets its own, see hostkeys.py), and apt's caches and lists are emptied.

The cache directory holds ``<name>-<digest>`` where the digest covers the whole recipe,
so a changed recipe builds a new image next to the old one. A build runs in a temporary
directory, renamed into place when complete, under a file lock per image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from migrate.adapters.processes import all_pids
from migrate.core.errors import GuardRefused, StageFailed
from migrate.rehearsal.sandbox.host import require_host, tool

log = logging.getLogger(__name__)

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path("/var/cache/migrate/images")
# Bump when the post-processing below changes, so old caches are not reused.
RECIPE_VERSION = 1

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "rsync",
    "iproute2",
)
MIDDLEWARE_PACKAGES = (
    "postgresql",
    "python3-psycopg2",
    "nginx-light",
    "curl",
    "ca-certificates",
    "cron",
    "sudo",
)
# Cloud machines enforce their security group rules themselves (see sandbox/provider.py).
FIREWALL_PACKAGES = ("nftables",)
DEPARTMENT_APP_PACKAGES = (
    "python3-flask",
    "gunicorn",
    "logrotate",
    "procps",
    "less",
    "openssl",
)
DISABLED_UNITS = (
    "postgresql.service",
    "nginx.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)


@dataclass(frozen=True)
class ImageRecipe:
    name: str
    packages: tuple[str, ...]
    disabled_units: tuple[str, ...] = DISABLED_UNITS
    suite: str = SUITE
    mirror: str = MIRROR
    variant: str = "minbase"
    version: int = RECIPE_VERSION

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def directory_name(self) -> str:
        return f"{self.name}-{self.digest()}"


RECIPES: dict[str, ImageRecipe] = {
    "cloud": ImageRecipe("cloud", BASE_PACKAGES + MIDDLEWARE_PACKAGES + FIREWALL_PACKAGES),
    "legacy": ImageRecipe(
        "legacy",
        BASE_PACKAGES + MIDDLEWARE_PACKAGES + FIREWALL_PACKAGES + DEPARTMENT_APP_PACKAGES,
    ),
}


def image_cache(cache: str | os.PathLike[str] | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    from_env = os.environ.get("MIGRATE_IMAGE_CACHE")
    return Path(from_env) if from_env else DEFAULT_CACHE


def recipe(name: str) -> ImageRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise GuardRefused(
            f"unknown sandbox image {name!r}",
            hint="known images: " + ", ".join(sorted(RECIPES)),
        ) from None


def image_path(name: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Where the image lives once built (it may not exist yet)."""
    return image_cache(cache) / recipe(name).directory_name()


def is_built(path: Path) -> bool:
    return (path / "usr/lib/os-release").is_file()


def ensure_image(name: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Return the image's directory, building it first if it is not cached."""
    target = image_path(name, cache)
    if is_built(target):
        return target
    require_host()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):
        if is_built(target):  # another process built it while we waited
            return target
        _remove_stale_builds(target)
        building = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        started = time.monotonic()
        try:
            _build(recipe(name), building)
            os.rename(building, target)
        except BaseException:
            _discard_build_dir(building)
            raise
        log.info("built image %s in %.0f s at %s", name, time.monotonic() - started, target)
    return target


@contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    lock_file = target.with_name(f".{target.name}.lock")
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_builds(target: Path) -> None:
    # We hold the lock, so any temporary build directory left here is from a dead process.
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        log.warning("removing an unfinished image build: %s", stale)
        _discard_build_dir(stale)


def _build(image: ImageRecipe, directory: Path) -> None:
    command = [
        tool("debootstrap"),
        f"--variant={image.variant}",
        "--include=" + ",".join(image.packages),
        image.suite,
        str(directory),
        image.mirror,
    ]
    log.info("building image %s: %s", image.name, " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    _stop_processes_rooted_in(directory)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise StageFailed(
            f"debootstrap failed for image {image.name} (exit {result.returncode}):\n{tail}",
            hint=f"check that {image.mirror} is reachable and there is free disk space",
        )
    _prepare_image(image, directory)


def _prepare_image(image: ImageRecipe, root: Path) -> None:
    _disable_units(root, image.disabled_units)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # Each machine gets its own id and hostname in its overlay.
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    # debootstrap copies the host's resolver; machines have no DNS of their own.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# sandbox machines have no resolver\n")
    _clean_apt(root)
    (root / "etc/migrate-image").write_text(
        json.dumps({"name": image.name, "digest": image.digest()}) + "\n"
    )


def _disable_units(root: Path, units: tuple[str, ...]) -> None:
    present = [u for u in units if _unit_file(root, u) is not None]
    if not present:
        return
    subprocess.run(
        ["systemctl", f"--root={root}", "disable", *present],
        capture_output=True,
        text=True,
        check=True,
    )


def _unit_file(root: Path, unit: str) -> Path | None:
    for directory in ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system"):
        candidate = root / directory / unit
        if candidate.exists():
            return candidate
    return None


def _clean_apt(root: Path) -> None:
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in root.glob(pattern):
            if path.is_file():
                path.unlink()
    for path in (root / "var/log").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")


def _stop_processes_rooted_in(directory: Path) -> None:
    """Kill daemons a package's postinst may have started inside the build chroot."""
    resolved = str(directory.resolve())
    for pid in all_pids():
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            continue
        if root == resolved or root.startswith(resolved + "/"):
            log.warning("killing process %d left running in the image build", pid)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _discard_build_dir(directory: Path) -> None:
    if not directory.exists():
        return
    _stop_processes_rooted_in(directory)
    _unmount_below(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _unmount_below(directory: Path) -> None:
    # debootstrap mounts /proc and /sys in the target; a killed build leaves them.
    prefix = str(directory.resolve())
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4] == prefix or line.split()[4].startswith(prefix + "/")
    ]
    for mount_point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)

