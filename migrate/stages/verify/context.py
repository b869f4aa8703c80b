"""The verification context of one system: what its target machines must show, generated
from the manifest, the plan and the evidence the journal recorded (transfer/cutover).

``build_context`` is pure (plain documents in, one JSON-able document out); ``evidence_of``
picks the evidence from journal entries and the run artifacts. Never holds a secret: the
app secret stays in its file on the target (``/etc/migrate/exchange-secret``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CONTEXT_SCHEMA_VERSION = 1
EXCHANGE_CONFIG = "/etc/migrate/exchange.json"
LATENCY_BUDGET_MS = 2000.0  # publish + read back of one probe record, measured on the target
SAMPLE_LIMIT = 20  # rows of each catalogue interface compared between source and target
EVIDENCE_STAGES = ("cutover", "transfer")  # the final sync first, else the initial copy
MANIFEST_FOLDERS = {"cutover": "cutover", "transfer": "transfer_files"}


def sample_paths(path: str) -> list[str]:
    """The requests compared on an interface path: its first page, in id order."""
    return [f"{path}?limit={SAMPLE_LIMIT}&offset=0"]


def evidence_of(entries: Iterable[Mapping[str, Any]], system_id: str,
                state_dir: Path) -> dict[str, Any]:
    """The latest successful cutover's outputs (else the latest transfer's): file manifests
    (text read from the run's artifacts) and per-table rows and checksums of the source."""
    latest: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if (entry.get("system") == system_id and entry.get("result") == "ok"
                and entry.get("stage") in EVIDENCE_STAGES):
            latest[entry["stage"]] = entry
    chosen = next((latest[s] for s in EVIDENCE_STAGES if s in latest), None)
    if chosen is None:
        return {"stage": None, "run_id": None, "files": {}, "databases": {}}
    outputs = chosen.get("outputs") or {}
    run_id = outputs.get("run_id")
    folder = state_dir / "runs" / str(run_id) / "artifacts" / MANIFEST_FOLDERS[chosen["stage"]]
    files = {}
    for source, summary in (outputs.get("files") or {}).items():
        path = folder / "manifests" / f"{source}.sha256"
        files[source] = {**summary, "manifest_file": str(path),
                         "manifest_text": path.read_text() if path.is_file() else None}
    return {"stage": chosen["stage"], "run_id": run_id, "at": chosen.get("at"),
            "seq": chosen.get("seq"), "files": files,
            "databases": dict(outputs.get("databases") or {})}


def build_context(*, system: Mapping[str, Any], manifest: Mapping[str, Any],
                  targets: Mapping[str, Mapping[str, str]], evidence: Mapping[str, Any],
                  baseline: Mapping[str, Any] | None, exchange: Mapping[str, Any] | None,
                  sandbox: bool, run_dir: str, ssh_config: str,
                  endpoint: Mapping[str, str] | None = None,
                  rehearsal: Mapping[str, Any] | None = None,
                  encryption: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The context document the suites read. ``system`` is the plan's entry, ``manifest``
    the system manifest (as JSON), ``targets`` instance -> {address, host_key},
    ``exchange`` the estate's exchange settings {url, ca_bundle} or None, ``encryption``
    instance -> volume name -> its encryption as the target checked it through the cloud
    (an ``error`` when the check could not run), where the target has such a check."""
    sid = system["id"]
    hosts = {i["name"]: {"name": f"{sid}-{i['name']}", "address": targets[i["name"]]["address"]}
             for i in system["instances"]}
    return {
        "schema_version": CONTEXT_SCHEMA_VERSION,
        "system": sid,
        "name": system.get("name", sid),
        "sandbox": sandbox,
        "rehearsal": dict(rehearsal) if rehearsal is not None else None,
        "run_dir": run_dir,
        "ssh_config": ssh_config,
        "hosts": hosts,
        "services": [{**s, "host": hosts[s["instance"]]["name"]} for s in system["services"]],
        "ports": _ports(system, hosts),
        "volumes": [{"instance": i["name"], "host": hosts[i["name"]]["name"], **v,
                     "cloud_encryption": (encryption or {}).get(i["name"], {}).get(v["name"])}
                    for i in system["instances"] for v in i.get("volumes", [])],
        "files": _files(system, hosts, evidence),
        "databases": _databases(system, hosts, evidence),
        "evidence": {k: evidence.get(k) for k in ("stage", "run_id", "at", "seq")},
        "application": _application(system, manifest, hosts, baseline),
        "exchange": _exchange(system, manifest, hosts, exchange, endpoint),
    }


def _ports(system: Mapping[str, Any], hosts: Mapping[str, Mapping[str, str]]) -> dict:
    """Per instance: planned ingress (port, protocol, peer) and the ports the operator's
    station (the ``ops`` peer, and anyone where a port is open to every address) may reach;
    every other port must refuse it."""
    found: dict[str, dict] = {name: {"host": h["name"], "address": h["address"],
                                     "ingress": [], "operator_allowed": []}
                              for name, h in hosts.items()}
    for rule in system.get("security_rules", []):
        if rule["direction"] != "ingress" or rule["instance"] not in found:
            continue
        mine = found[rule["instance"]]
        mine["ingress"].append({"port": int(rule["port"]), "protocol": rule["protocol"],
                                "peer": rule["peer"]["kind"], "cidr": rule["peer"].get("cidr"),
                                "temporary": bool(rule.get("temporary"))})
        open_to_all = rule["peer"].get("cidr") == "0.0.0.0/0"  # the Internet zone's front end
        if rule["protocol"] == "tcp" and (rule["peer"]["kind"] == "ops" or open_to_all):
            mine["operator_allowed"].append(int(rule["port"]))
    for mine in found.values():
        mine["planned_ports"] = sorted({r["port"] for r in mine["ingress"]})
        mine["operator_allowed"] = sorted(set(mine["operator_allowed"]))
    return found


def _files(system: Mapping[str, Any], hosts: Mapping[str, Mapping[str, str]],
           evidence: Mapping[str, Any]) -> list[dict]:
    recorded = evidence.get("files") or {}
    trees = []
    for tree in system["data"]["files"]:
        source = tree["host"]
        summary = recorded.get(source) or {}
        trees.append({"source_host": source, "instance": tree["instance"],
                      "host": hosts[tree["instance"]]["name"],
                      "path": tree["path"].rstrip("/") or "/",
                      "evidence_stage": evidence.get("stage"),
                      "manifest_digest": summary.get("manifest"),
                      "manifest_file": summary.get("manifest_file"),
                      "files": summary.get("files"),
                      "manifest_text": summary.get("manifest_text")})
    return trees


def _databases(system: Mapping[str, Any], hosts: Mapping[str, Mapping[str, str]],
               evidence: Mapping[str, Any]) -> list[dict]:
    recorded = evidence.get("databases") or {}
    found = []
    for database in system["data"]["databases"]:
        summary = recorded.get(database["name"]) or {}
        found.append({"name": database["name"], "engine": database["engine"],
                      "instance": database["instance"],
                      "host": hosts[database["instance"]]["name"],
                      "source_host": database["host"],
                      "evidence_stage": evidence.get("stage"),
                      "tables": summary.get("tables"),
                      "volatile_tables": list(database.get("volatile_tables", []))})
    return found


def _application(system: Mapping[str, Any], manifest: Mapping[str, Any],
                 hosts: Mapping[str, Mapping[str, str]],
                 baseline: Mapping[str, Any] | None) -> dict:
    services = {s["name"]: s for s in system["services"]}
    health = [{"service": s["name"], "host": hosts[s["instance"]]["name"],
               "instance": s["instance"], "port": s["port"], "path": s["health"] or "/health"}
              for s in system["services"]]
    answers = (baseline or {}).get("answers", {})
    samples = []
    for resource in (manifest.get("exchange") or {}).get("resources", []):
        interface = resource.get("interface")
        if not interface or interface.get("service") not in services:
            continue
        service = services[interface["service"]]
        for path in sample_paths(interface["path"]):
            samples.append({"resource": resource["code"], "service": service["name"],
                            "host": hosts[service["instance"]]["name"],
                            "instance": service["instance"], "port": service["port"],
                            "path": path, "source": answers.get(path)})
    return {"health": health, "samples": samples,
            "baseline": {k: (baseline or {}).get(k) for k in ("recorded_at", "source_host")}}


def _exchange(system: Mapping[str, Any], manifest: Mapping[str, Any],
              hosts: Mapping[str, Mapping[str, str]], exchange: Mapping[str, Any] | None,
              endpoint: Mapping[str, str] | None) -> dict | None:
    section = manifest.get("exchange")
    if not section or not exchange:
        return None
    parts = urllib.parse.urlsplit(exchange["url"])
    endpoint_instance = None
    if endpoint:
        address = urllib.parse.urlsplit(endpoint["base_url"]).hostname
        endpoint_instance = next((n for n, h in hosts.items() if h["address"] == address), None)
    return {"url": exchange["url"], "host": parts.hostname, "port": parts.port or 443,
            "config": EXCHANGE_CONFIG, "app_key": section.get("app_key"),
            "resources": [r["code"] for r in section.get("resources", [])],
            "endpoint": dict(endpoint) if endpoint else None,
            "endpoint_host": hosts[endpoint_instance]["name"] if endpoint_instance else None,
            "latency_budget_ms": LATENCY_BUDGET_MS,
            "hosts": [h["name"] for h in hosts.values()]}
