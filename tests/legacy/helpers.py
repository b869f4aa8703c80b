"""Helpers of the legacy tests: the example estate with a secrets folder."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from migrate.core.loader import Estate, load_estate
from migrate.rehearsal.legacy.seed import HostSeed, build_host_seeds, secret_name

EXAMPLE_ESTATE = Path(__file__).resolve().parents[2] / "examples" / "estate"
SMALL_SCALE = 16 * 1024  # bytes per declared GB: keeps unit tests fast


@dataclass
class SeededEstate:
    root: Path
    estate: Estate
    secrets_dir: Path
    secret_values: dict[str, str]

    def seeds(self, system_id: str, scale: int = SMALL_SCALE) -> dict[str, HostSeed]:
        system = self.estate.systems[system_id]
        return {s.host: s for s in build_host_seeds(system, self.secrets_dir, scale)}


def write_secrets(estate: Estate, folder: Path) -> dict[str, str]:
    """A fresh random value (mode 0600) for every secret the manifests reference."""
    folder.mkdir(mode=0o700, exist_ok=True)
    refs = set()
    for system in estate.systems.values():
        refs.add(system.source.ssh.key)
        refs.update(d.password for d in system.workload.databases)
        if system.exchange is not None:
            refs.add(system.exchange.app_secret)
    values = {}
    for ref in sorted(refs):
        name = secret_name(ref)
        values[name] = secrets.token_urlsafe(24)
        path = folder / name
        path.write_text(values[name] + "\n", encoding="utf-8")
        path.chmod(0o600)
    return values


def make_seeded_estate(base: Path) -> SeededEstate:
    """A copy of the example estate under ``base`` with a secrets folder."""
    root = base / "estate"
    shutil.copytree(EXAMPLE_ESTATE, root,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    estate = load_estate(root)
    folder = root / estate.settings.secrets.dir
    return SeededEstate(root, estate, folder, write_secrets(estate, folder))
