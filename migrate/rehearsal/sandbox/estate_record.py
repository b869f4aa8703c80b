"""Ownership records: which bridges and machines of this host belong to which estate.

``<sandbox root>/estates/<estate_id>.json`` lists exactly what ``sandbox up`` created for
an estate, so ``status`` and ``down`` act on those and nothing else. The record is written
before a bridge or machine is created (intent first), so a killed ``up`` leaves nothing
that ``down`` cannot find.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox.host import sandbox_root

RECORD_VERSION = 1


def records_dir(root: Path | None = None) -> Path:
    return (root or sandbox_root()) / "estates"


def record_path(estate_id: str, root: Path | None = None) -> Path:
    return records_dir(root) / f"{estate_id}.json"


@dataclass
class OwnershipRecord:
    estate_id: str
    estate: str
    estate_root: str
    bridges: list[dict[str, Any]] = field(default_factory=list)
    machines: list[dict[str, Any]] = field(default_factory=list)
    mirror: str | None = None  # the package mirror sandbox up started, by name
    # what network.link_networks set up: {"networks": [...], "devices": [...]}
    links: dict[str, list[str]] = field(default_factory=dict)

    def bridge_devices(self) -> set[str]:
        return {b["device"] for b in self.bridges}

    def machine_names(self) -> set[str]:
        return {m["machine"] for m in self.machines}

    def add_bridge(self, entry: dict[str, Any]) -> bool:
        if entry["device"] in self.bridge_devices():
            return False
        self.bridges.append(entry)
        return True

    def add_machine(self, entry: dict[str, Any]) -> bool:
        if entry["machine"] in self.machine_names():
            return False
        self.machines.append(entry)
        return True

    def machine(self, machine: str) -> dict[str, Any]:
        return next(m for m in self.machines if m["machine"] == machine)

    def as_dict(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "estate_id": self.estate_id, "estate": self.estate,
                "estate_root": self.estate_root, "bridges": self.bridges,
                "machines": self.machines, "mirror": self.mirror, "links": self.links}


def read_record(estate_id: str, root: Path | None = None) -> OwnershipRecord | None:
    return _load(record_path(estate_id, root))


def _load(path: Path) -> OwnershipRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise StageFailed(f"ownership record {path} is unreadable: {error}",
                          hint="it lists the estate's sandbox bridges and machines;"
                               " restore it or remove them by hand") from None
    return OwnershipRecord(data["estate_id"], data.get("estate", ""),
                           data.get("estate_root", ""), list(data.get("bridges", [])),
                           list(data.get("machines", [])), data.get("mirror"),
                           dict(data.get("links") or {}))


def other_records(estate_id: str, root: Path | None = None) -> list[OwnershipRecord]:
    folder = records_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.stem != estate_id:
            record = _load(path)
            if record is not None:
                found.append(record)
    return found


def write_record(record: OwnershipRecord, root: Path | None = None) -> Path:
    path = record_path(record.estate_id, root)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(record.as_dict(), indent=2, ensure_ascii=False) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def remove_record(estate_id: str, root: Path | None = None) -> bool:
    path = record_path(estate_id, root)
    if path.exists():
        path.unlink()
        return True
    return False
