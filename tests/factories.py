"""Build valid manifests as dicts, overriding only what a test is about."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from migrate.core.model import SystemManifest


def merge(base: dict, overrides: dict) -> dict:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def system_dict(sid: str, **overrides: Any) -> dict:
    base = {
        "schema_version": 1,
        "id": sid,
        "name": f"系统 {sid}",
        "department": {"code": sid.replace("-", "")[:16], "name": "市某局"},
        "function": "业务办理",
        "classification": "non_classified",
        "protection_level": 2,
        "census": {
            "usage_scope": "public",
            "usage_frequency": {"monthly_active_users": 1000, "last_used": date(2026, 11, 1)},
            "approval": {"department": "市发展和改革委员会", "date": date(2015, 6, 1),
                         "document": "示发改投资〔2015〕12号"},
            "funding": "fiscal",
            "network": "egov_extranet",
            "maintenance": {"vendor": "某公司", "last_update": date(2026, 9, 1), "active": True},
        },
        "source": {"ssh": {"user": "root", "key": "secret://ssh"},
                   "hosts": [{"name": "app1", "address": "192.168.10.21", "roles": ["web"]}]},
        "workload": {"services": [{"name": "web", "host": "app1", "unit": "web.service",
                                   "port": 8080, "health": "/health"}]},
        "target": {"zone": "egov_extranet",
                   "instances": [{"name": "app", "replaces": ["app1"], "vcpu": 2,
                                  "memory_gb": 4, "disk_gb": 40, "image": "debian-12"}],
                   "flows": [{"from": "exchange", "to": "app", "port": 8080}]},
        "depends_on": [],
        "exchange": {"app_key": sid, "app_secret": f"secret://exchange-{sid}", "resources": []},
    }
    return merge(base, overrides)


def system(sid: str, **overrides: Any) -> SystemManifest:
    return SystemManifest.model_validate(system_dict(sid, **overrides))


def usage(users: int, last_used: date | None = date(2026, 11, 1), **census: Any) -> dict:
    return {"census": {"usage_frequency": {"monthly_active_users": users,
                                           "last_used": last_used}, **census}}
