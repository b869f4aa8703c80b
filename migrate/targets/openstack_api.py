"""The few OpenStack API calls migrate makes itself (the stacks use the provider): a keystone v3
session from the clouds.yaml entry the estate names, an instance's console output, and what
the block-storage API says of a volume's encryption.

clouds.yaml is found where OpenStack's own tools look (``OS_CLIENT_CONFIG_FILE``, then
``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``, ``/etc/openstack/clouds.yaml``);
credentials come only from that entry (password or application credential), never from other
``OS_*`` variables. TLS is always verified, against the entry's ``cacert`` when it names one;
an entry that turns verification off is refused.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migrate.core.errors import EnvironmentNotReady, StageFailed

CONFIG_ENV = "OS_CLIENT_CONFIG_FILE"
SEARCH = (Path("clouds.yaml"), Path("~/.config/openstack/clouds.yaml"),
          Path("/etc/openstack/clouds.yaml"))
TIMEOUT_S = 60.0
# cinder's v3 API in a service catalog: the current name first, the older ones after
BLOCK_STORAGE_TYPES = ("block-storage", "volumev3")


def clouds_yaml() -> Path:
    named = os.environ.get(CONFIG_ENV)
    candidates = [Path(named)] if named else [p.expanduser() for p in SEARCH]
    for path in candidates:
        if path.is_file():
            return path
    raise EnvironmentNotReady(
        f"no clouds.yaml ({', '.join(str(p) for p in candidates)})",
        hint=f"write the cloud's entry to ~/.config/openstack/clouds.yaml or point {CONFIG_ENV}"
             " at the file")


def cloud_entry(name: str) -> dict[str, Any]:
    path = clouds_yaml()
    try:
        clouds = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("clouds") or {}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise EnvironmentNotReady(f"{path} is not a readable clouds.yaml: {error}") from None
    if name not in clouds:
        raise EnvironmentNotReady(
            f"{path} has no cloud {name!r} (cloud.openstack.cloud in migrate.yaml); it has: "
            f"{', '.join(sorted(clouds)) or 'none'}", hint="add the entry or fix the name")
    entry = dict(clouds[name])
    if entry.get("verify") is False or str(entry.get("verify")).lower() == "false":
        raise EnvironmentNotReady(
            f"{path}: cloud {name!r} turns TLS verification off (verify: false)",
            hint="give the cloud's CA certificate as cacert: PATH instead")
    return entry


@dataclass
class Session:
    entry: dict[str, Any]
    token: str = ""
    catalog: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_cloud(cls, name: str, region: str | None = None) -> Session:
        """The clouds.yaml entry ``name``; ``region`` (cloud.openstack.region) instead of
        the entry's own when given."""
        entry = cloud_entry(name)
        if region:
            entry["region_name"] = region
        return cls(entry)

    @property
    def region(self) -> str | None:
        return self.entry.get("region_name")

    def authenticate(self) -> Session:
        auth = self.entry.get("auth") or {}
        url = str(auth.get("auth_url", "")).rstrip("/")
        if not url:
            raise EnvironmentNotReady("the clouds.yaml entry has no auth.auth_url")
        if not url.endswith("/v3"):
            url += "/v3"
        body = _auth_body(auth, self.entry)
        status, headers, data = self._raw("POST", url + "/auth/tokens", body)
        if status != 201:
            raise EnvironmentNotReady(f"keystone at {url} refused the credentials ({status})",
                                      hint="check the clouds.yaml entry's auth section")
        self.token = headers.get("X-Subject-Token", "")
        self.catalog = data["token"].get("catalog", [])
        return self

    def endpoint(self, service_type: str) -> str:
        interface = self.entry.get("interface", "public")
        for service in self.catalog:
            if service["type"] != service_type:
                continue
            for point in service["endpoints"]:
                if point["interface"] == interface and (
                        self.region is None or point.get("region_id") == self.region):
                    return str(point["url"]).rstrip("/")
        raise EnvironmentNotReady(f"the cloud's catalog has no {interface} {service_type} "
                                  f"endpoint{f' in region {self.region}' if self.region else ''}")

    def request(self, method: str, service_type: str, path: str, body: Any = None,
                absent: tuple[int, ...] = ()) -> Any:
        """The answer of one call; None when its status is one of ``absent`` (e.g. 404)."""
        if not self.token:
            self.authenticate()
        url = self.endpoint(service_type) + path
        status, _, data = self._raw(method, url, body, {"X-Auth-Token": self.token})
        if status == 401:  # the token expired: once more with a new one
            self.authenticate()
            status, _, data = self._raw(method, url, body, {"X-Auth-Token": self.token})
        if status in absent:
            return None
        if status >= 300:
            raise StageFailed(f"{method} {urllib.parse.urlsplit(url).path} answered {status}")
        return data

    def console_output(self, server_id: str) -> str:
        found = self.request("POST", "compute", f"/servers/{server_id}/action",
                             {"os-getConsoleOutput": {}})
        return str((found if isinstance(found, dict) else {}).get("output") or "")

    def block_storage(self, path: str, absent: tuple[int, ...] = ()) -> Any:
        """GET on cinder's v3 API, under whichever of its service types the catalog names."""
        if not self.token:
            self.authenticate()
        named = {service["type"] for service in self.catalog}
        service_type = next((t for t in BLOCK_STORAGE_TYPES if t in named),
                            BLOCK_STORAGE_TYPES[0])
        return self.request("GET", service_type, path, absent=absent)

    def _raw(self, method: str, url: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        try:
            return json_request(method, url, body, headers, context=self._tls())
        except (urllib.error.URLError, OSError) as error:
            raise StageFailed(f"the cloud's API at {urllib.parse.urlsplit(url).netloc} is not "
                              f"reachable: {getattr(error, 'reason', error)}") from None

    def _tls(self) -> ssl.SSLContext:
        cacert = self.entry.get("cacert")
        return ssl.create_default_context(cafile=str(Path(cacert).expanduser())
                                          if cacert else None)


def json_request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
                 timeout: float = TIMEOUT_S, context: ssl.SSLContext | None = None
                 ) -> tuple[int, dict[str, str], Any]:
    """One JSON API call: status, headers, and the answer parsed (its text when it is not
    JSON). An HTTP error status is an answer; a network failure raises."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, got, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, got, text = error.code, dict(error.headers), error.read()
    answer = text.decode(errors="replace")
    try:
        return status, got, json.loads(answer) if answer else None
    except ValueError:
        return status, got, answer


def _auth_body(auth: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("auth_type") == "v3applicationcredential" or "application_credential_id" in auth:
        return {"auth": {"identity": {"methods": ["application_credential"],
                                      "application_credential": {
                                          "id": auth.get("application_credential_id"),
                                          "secret": auth.get("application_credential_secret")}}}}
    user = {"name": auth.get("username"), "password": auth.get("password"),
            "domain": {"name": auth.get("user_domain_name", "Default")}}
    scope = {"project": {"name": auth.get("project_name"),
                         "domain": {"name": auth.get("project_domain_name", "Default")}}}
    if auth.get("project_id"):
        scope = {"project": {"id": auth["project_id"]}}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": scope}}
