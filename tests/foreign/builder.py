"""How the foreign servers are built and booted, whatever their recipe.

A recipe (packages, a setup script run as root, what answering means) is built once on the
bare legacy image; the machine is shut down and its upper dir kept as an overlay under
/var/cache/migrate/<recipe name>/<digest of the recipe and the image>/ with the secrets it
was built with (0600). Every session boots the server with that overlay as a read-only layer
under an empty upper dir of its own (a new host key, recorded in the session's known_hosts,
and the session's ssh key in authorized_keys), so a session never changes what the next one
boots. Stale overlays are removed only among the same recipe's digests, never another's.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.rehearsal.sandbox import images, machines, mirror, network
from migrate.rehearsal.sandbox.layout import upper_dir
from tests.foreign import world

CACHE_ROOT = Path("/var/cache/migrate")


@dataclass(frozen=True)
class Recipe:
    name: str  # its cache folder under CACHE_ROOT, its own: no recipe removes another's
    version: int
    machine: str  # the sandbox machine name
    hostname: str
    host: int  # last octet of its address on the foreign bridge
    packages: tuple[str, ...]
    script: Callable[[str], str]  # the setup script for the server's address
    answering: Callable[[str], None]  # waits until the server at this address answers
    secrets: tuple[tuple[str, str], ...]  # (file in /root/setup, key in facts)
    # run on every boot once it answers, before the session uses it
    in_use: Callable[[world.Access, str], None] | None = None

    def digest(self, image: Path, address: str, mirror_url: str) -> str:
        recipe = {"version": self.version, "image": image.name, "address": address,
                  "hostname": self.hostname, "packages": self.packages, "mirror": mirror_url,
                  "script": self.script(address)}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KeptServer:
    """What every foreign server's fixture gives, whatever its recipe adds."""
    name: str  # sandbox machine name
    address: str
    root: Path  # sandbox root the machine lives under
    access: world.Access
    setup_s: float  # from nothing to answering
    prepared: bool  # True: booted from the kept overlay (warm), False: built now (cold)
    phases: dict[str, float]  # seconds per step of the setup

    def ssh(self, command: str, stdin: str | None = None) -> str:
        return self.access.check(self.address, command, stdin)


@dataclass(frozen=True)
class Booted(KeptServer):
    facts: dict[str, str]  # the secrets it was built with

    def shared(self) -> dict[str, Any]:
        """KeptServer's fields, for the recipe's own server dataclass."""
        return {field.name: getattr(self, field.name)
                for field in dataclasses.fields(KeptServer)}


@contextmanager
def kept_server(recipe: Recipe, net: world.Net, package_mirror: mirror.Mirror, root: Path,
                access: world.Access) -> Iterator[Booted]:
    """The recipe's server, answering; destroyed (by its name) afterwards.

    Cold, the machine is built on the bare image, shut down, and its upper dir becomes the
    kept overlay. Either way the server then boots with the kept overlay as a read-only
    layer under an empty upper dir of its own, so nothing is copied."""
    image = images.ensure_image("legacy")
    _, public_key = world.operator_key(access.key.parent)
    bare = world.machine_spec(recipe.machine, net, recipe.host, str(image), public_key,
                              hostname=recipe.hostname)
    cache = CACHE_ROOT / recipe.name / recipe.digest(image, bare.ip, package_mirror.url)
    spec = dataclasses.replace(bare, layers=(str(cache / "upper"),))
    clock = _Clock()
    with world.machine(spec, root), _kept_overlay(cache) as lock:
        prepared = (cache / "upper").is_dir()
        if prepared:
            facts = json.loads((cache / "facts.json").read_text())
        else:
            facts = {key: secrets.token_urlsafe(18) for _, key in recipe.secrets}
            _boot(bare, root, access, package_mirror.url)
            clock.lap("boot the bare image")
            _build(recipe, bare.ip, access, facts)
            clock.lap("install and configure")
            _keep(bare, root, cache, facts)
            clock.lap("keep the overlay")
        fcntl.flock(lock, fcntl.LOCK_SH)  # in use: not removed while this machine runs
        _boot(spec, root, access, package_mirror.url)
        clock.lap("boot")
        recipe.answering(spec.ip)
        if recipe.in_use is not None:
            recipe.in_use(access, spec.ip)
        clock.lap("answering")
        yield Booted(name=recipe.machine, address=spec.ip, root=root, access=access,
                     setup_s=clock.total(), prepared=prepared, phases=clock.laps, facts=facts)


def password_file(folder: Path, database: str, password: str) -> Path:
    """The database password on the host (0600), as an estate keeps it."""
    path = folder / f"db-{database}"
    path.write_text(password + "\n")
    os.chmod(path, 0o600)
    return path


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.started


def _boot(spec: machines.MachineSpec, root: Path, access: world.Access, url: str) -> None:
    world.boot(spec, root, access.known_hosts, url)
    state = world.settle(access, spec.ip)
    assert state == "running", f"{spec.machine} did not boot cleanly: {state}"


def _build(recipe: Recipe, address: str, access: world.Access, facts: dict[str, str]) -> None:
    """The secrets into /root/setup over ssh's stdin (the script removes them), the script
    run as root, then until it answers."""
    for name, key in recipe.secrets:
        access.check(address, f"install -d -m 0700 /root/setup && umask 077 &&"
                              f" cat > /root/setup/{name}", stdin=facts[key] + "\n")
    access.check(address, "bash -s", stdin=recipe.script(address))
    recipe.answering(address)


def _keep(spec: machines.MachineSpec, root: Path, cache: Path, facts: dict[str, str]) -> None:
    """Shut the built machine down cleanly and keep its upper dir (moved, not copied)."""
    machines.stop_machine(spec.name, root)
    building = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True, mode=0o700)
    _move_tree(upper_dir(spec.name, root), building / "upper")
    facts_file = building / "facts.json"
    facts_file.write_text(json.dumps(facts) + "\n")
    os.chmod(facts_file, 0o600)
    os.rename(building, cache)
    _forget_stale_digests(cache)


def _move_tree(source: Path, target: Path) -> None:
    """Move an overlay upper dir exactly: owners, modes, xattrs, whiteouts (device nodes)."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        subprocess.run(["cp", "-a", str(source), str(target)], check=True)
        shutil.rmtree(source)


def _forget_stale_digests(kept: Path) -> None:
    """The same recipe's overlays of older versions (or images) are never used again:
    remove them, unless a session is using one. The folder holds this recipe's only."""
    for other in kept.parent.iterdir():
        if other == kept or other.name.startswith(".") or not other.is_dir():
            continue
        with open(other.with_name(f".{other.name}.lock"), "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(other)
            other.with_name(f".{other.name}.lock").unlink()


@contextmanager
def _kept_overlay(cache: Path) -> Iterator[int]:
    """The kept overlay's lock, held exclusively (to build it) until the caller shares it."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cache.parent, 0o700)
    with open(cache.with_name(f".{cache.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()


# ---- HTTP from the host ----------------------------------------------------------------


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """Status and body of a GET from the host (the address checked by the guard first)."""
    network.assert_local_address(urllib.parse.urlsplit(url).hostname or "")
    request = urllib.request.Request(url, headers={"User-Agent": "migrate-tests"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def wait_for(url: str, answered: Callable[[int, str], bool], timeout: float, what: str,
             request_timeout: float = 10.0, pause: float = 0.5) -> None:
    """Until a GET of ``url`` comes back as ``answered`` accepts; else fails naming ``what``
    and the last answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get(url, timeout=request_timeout)
        except OSError as error:
            last = str(error)
        else:
            if answered(status, body):
                return
            last = f"HTTP {status}: {body.strip()[:300]}"
        time.sleep(pause)
    raise AssertionError(f"{what}: {last}")
