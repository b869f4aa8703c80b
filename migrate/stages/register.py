"""Catalogue registration (接入登记 and 编目挂接): a system's endpoint and its catalogue
resources on the data sharing and exchange platform, from the manifest and the plan.

Idempotent: registering what the platform already holds changes nothing and says so. The
platform client is given (the pipeline builds it with the estate's CA bundle and secret), so
this stage knows nothing of TLS, secrets or the sandbox.
"""

from __future__ import annotations

from typing import Any

from migrate.core.model import SystemManifest
from migrate.core.plan import endpoint_of

STATE_LABELS = {"unlinked": "未挂接", "pending_review": "待审核", "linked": "已挂接"}


def register_catalogue(system: SystemManifest, planned: dict, client: Any,
                       side: str = "target") -> dict:
    """Register the endpoint (on the target, or back on the source after a rollback) and
    every catalogue resource; report each resource's state."""
    assert system.exchange is not None
    base_url, health_path = endpoint_of(system, planned, side)
    wanted = {"name": system.name, "base_url": base_url, "health_path": health_path,
              "department": {"code": system.department.code, "name": system.department.name}}
    before = _registered_endpoint(client, system.id)
    client.register_system(
        system.id, name=system.name, department_code=system.department.code,
        department_name=system.department.name, base_url=base_url, health_path=health_path)
    endpoint_changed = before is None or any(before.get(k) != v for k, v in wanted.items())
    resources = []
    for resource in system.exchange.resources:
        answer = client.put_resource(resource.model_dump(mode="json", exclude_none=True))
        state = answer.get("state", "unknown")
        resources.append({"code": resource.code, "name": resource.name, "state": state,
                          "state_zh": STATE_LABELS.get(state, state),
                          "changed": bool(answer.get("changed", True))})
    return {
        "system": system.id,
        "endpoint": {"base_url": base_url, "health_path": health_path, "side": side,
                     "changed": endpoint_changed},
        "resources": resources,
        "changed": endpoint_changed or any(r["changed"] for r in resources),
        "linked": sum(r["state"] == "linked" for r in resources),
    }


def _registered_endpoint(client: Any, system_id: str) -> dict | None:
    from migrate.adapters.exchange import ExchangeHTTPError

    try:
        return client.get_system(system_id)
    except ExchangeHTTPError as error:
        if error.status == 404:
            return None
        raise
