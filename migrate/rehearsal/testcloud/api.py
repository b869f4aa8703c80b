"""A small OpenStack API client for the host side (keystone v3 password auth, JSON).

The host reaches the cloud over the management bridge only; every address is checked by
the sandbox's network guard first (the test cloud's networks count as allowed local
networks because they are routed through the project's own bridges).
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import network
from migrate.rehearsal.testcloud import machine as tc_machine
from migrate.targets.openstack_api import json_request

LOCAL_NETWORKS = (str(tc_machine.MGMT_NET), str(tc_machine.PROVIDER_NET))


def guard(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    network.assert_local_address(host, LOCAL_NETWORKS)


@dataclass
class Session:
    auth_url: str
    username: str
    password: str
    project: str
    region: str = "RegionOne"
    token: str = ""
    catalog: list[dict[str, Any]] = field(default_factory=list)
    issued: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_cloud(cls, cloud: dict[str, Any]) -> Session:
        auth = cloud["auth"]
        return cls(auth["auth_url"], auth["username"], auth["password"],
                   auth["project_name"], cloud.get("region_name", "RegionOne"))

    def authenticate(self) -> Session:
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.username, "domain": {"name": "Default"},
                "password": self.password}}},
            "scope": {"project": {"name": self.project, "domain": {"name": "Default"}}},
        }}
        url = self.auth_url.rstrip("/") + "/auth/tokens"
        status, headers, data = raw_request("POST", url, body)
        if status != 201:
            raise StageFailed(f"keystone refused the token request ({status}): {data}")
        self.token = headers["X-Subject-Token"]
        self.issued = data["token"]
        self.catalog = data["token"].get("catalog", [])
        return self

    def endpoint(self, service_type: str) -> str:
        for service in self.catalog:
            if service["type"] == service_type:
                for ep in service["endpoints"]:
                    if ep["interface"] == "public" and ep.get("region_id") == self.region:
                        return str(ep["url"]).rstrip("/")
        raise StageFailed(f"no public {service_type} endpoint in the catalog")

    def request(self, method: str, service_type: str, path: str,
                body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
                headers: dict[str, str] | None = None) -> Any:
        if not self.token:
            self.authenticate()
        url = self.endpoint(service_type) + path
        status, _, data = raw_request(method, url, body,
                                      {"X-Auth-Token": self.token, **(headers or {})})
        if status == 401:  # the token expired (an hour by default): once more with a new one
            self.authenticate()
            status, _, data = raw_request(method, url, body,
                                          {"X-Auth-Token": self.token, **(headers or {})})
        if status not in ok:
            raise StageFailed(f"{method} {url} answered {status}: {data}")
        return data

    def get(self, service_type: str, path: str) -> Any:
        return self.request("GET", service_type, path)


def raw_request(method: str, url: str, body: Any = None,
                headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> tuple[int, dict[str, str], Any]:
    guard(url)
    return json_request(method, url, body, headers, timeout)


def wait_for(predicate: Any, timeout: float, interval: float = 1.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StageFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
