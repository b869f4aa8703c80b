"""The example estate's inventory for one system, written as a move would write it: stand-in
source host keys in a known_hosts file and stand-in targets at 10.99.0.N."""

from __future__ import annotations

from pathlib import Path


def example_inventory(estate: Path, tmp_path: Path, system_id: str) -> tuple[dict, dict]:
    """The system's plan entry and its inventory's ``all`` group."""
    from migrate.adapters.inventory import read_inventory, write_inventory
    from migrate.orchestrate.pipeline import make_plan, open_context

    context = open_context(estate)
    plan = make_plan(context, write=False).plan
    system = next(s for s in plan["systems"] if s["id"] == system_id)
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{h['address']} ssh-ed25519 AAAAsource{h['name']}\n"
                             for h in system["source_hosts"]))
    targets = {i["name"]: {"address": f"10.99.0.{n}", "host_key": "ssh-ed25519 AAAAtarget"}
               for n, i in enumerate(system["instances"], 1)}
    document = read_inventory(write_inventory(context, plan, system_id, targets, tmp_path,
                                              known))
    return system, document["all"]
