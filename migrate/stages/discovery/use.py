"""A system's use as discovery observed it, in the census's terms: from the hosts' observed
data (pure), or from the discovery documents an estate holds (no login, no paramiko)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1  # of the discovery document (``migrate discover``)

Observed = dict[str, dict[str, Any]]  # host name -> observed


def observed_use(observed: Observed) -> dict[str, Any] | None:
    """The system's use as its hosts' web access logs show it, in the census's terms: the
    distinct clients of the busiest host's latest complete month, and the day of the last
    request on any host; None when no host has an access log."""
    logs = [seen["web_access"] for seen in observed.values() if seen.get("web_access")]
    if not logs:
        return None
    users = [log["monthly_users"] for log in logs if log.get("monthly_users")]
    chosen = max(users, key=lambda u: u["distinct_clients"]) if users else None
    last = max((log["last_request"] for log in logs if log.get("last_request")), default=None)
    return {"monthly_active_users": chosen["distinct_clients"] if chosen else None,
            "month": chosen["month"] if chosen else None,
            "partial_month": bool(chosen and chosen["partial"]),
            "last_used": last[:10] if last else None}


def observed_uses(folder: Path, system_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each system with a discovery document in ``folder`` whose hosts had access logs:
    its observed use, with the document and the time it was observed."""
    found = {}
    for system_id in system_ids:
        path = folder / f"{system_id}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("schema_version") != SCHEMA_VERSION:
            continue
        use = observed_use({h["name"]: h.get("observed") or {} for h in document["hosts"]})
        if use is not None:
            found[system_id] = {**use, "document": str(path),
                                "discovered_at": document.get("discovered_at")}
    return found
