"""``migrate sandbox ...``: the rehearsal's own commands, which the sandbox plugs into the CLI
(entry point ``sandbox`` of the group ``migrate.commands``). They use the CLI's options and
printing; errors go through its one boundary like every command's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from migrate.cli.main import ESTATE, OUTPUT, emit_json, out, rich_table, stage_progress
from migrate.orchestrate import pipeline
from migrate.rehearsal.sandbox import estate as sandbox_estate
from migrate.rehearsal.sandbox import images


@click.group()
def sandbox() -> None:
    """The local rehearsal cloud: systemd-nspawn machines on this host (needs root)."""


@sandbox.command("images")
@click.argument("names", nargs=-1)
@OUTPUT
def sandbox_images(names: tuple[str, ...], output: str) -> None:
    """Build the sandbox base images (cloud, legacy) once with debootstrap; cached after."""
    built = []
    for name in names or tuple(sorted(images.RECIPES)):
        started = time.monotonic()
        path = images.ensure_image(name)
        built.append({"image": name, "path": str(path),
                      "seconds": round(time.monotonic() - started, 1)})
        if output != "json":
            out.print(f"image {name}: {path} ({built[-1]['seconds']} s)")
    if output == "json":
        emit_json({"images": built})


def print_sandbox_report(report: Any, output: str, verb: str) -> None:
    if output == "json":
        emit_json(report.as_dict())
        return
    rows = [(m.name, m.role, m.system_id or "", m.address, m.status,
             "" if m.boot_s is None else f"{m.boot_s:.1f} s") for m in report.machines]
    out.print(rich_table("Sandbox machines", ("machine", "role", "system", "address", "status",
                                              "boot"), rows))
    out.print(rich_table("Sandbox bridges", ("bridge", "network", "gateway", "role"),
                         [(b.device, b.network, b.gateway, b.role) for b in report.bridges]))
    summary = f"{len(report.changes)} changes" if report.changes else "no changes"
    out.print(f"sandbox {verb}: {summary} ({report.duration_s:.1f} s)")


@sandbox.command("up")
@ESTATE
@click.option("--scale", type=click.IntRange(min=0), default=None,
              help="Seed bytes per declared GB [default: 256 KiB, capped at 48 MiB a system].")
@OUTPUT
def sandbox_up(estate: Path, scale: int | None, output: str) -> None:
    """Bring up the legacy server rooms and the exchange platform of ESTATE on this host."""
    loaded = pipeline.open_estate(estate)
    report = sandbox_estate.sandbox_up(loaded, scale=scale, progress=stage_progress)
    print_sandbox_report(report, output, "up")


@sandbox.command("status")
@ESTATE
@OUTPUT
def sandbox_status(estate: Path, output: str) -> None:
    """List the machines and bridges the sandbox made for ESTATE, as the host has them."""
    report = sandbox_estate.sandbox_status(pipeline.open_estate(estate))
    print_sandbox_report(report, output, "status")


@sandbox.command("down")
@ESTATE
@OUTPUT
def sandbox_down(estate: Path, output: str) -> None:
    """Remove every machine and bridge the sandbox made for ESTATE, and nothing else."""
    report = sandbox_estate.sandbox_down(pipeline.open_estate(estate), progress=stage_progress)
    print_sandbox_report(report, output, "down")
