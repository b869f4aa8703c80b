"""Interconnection with the exchange platform, checked FROM each target machine: the
platform's name resolves and its port answers, TLS verifies against the installed CA
bundle, signed (HMAC) requests are accepted, the system's endpoint and every catalogue
resource are registered (resources 已挂接), a probe record makes the round trip within the
latency budget, and the platform's reverse probe reaches the system.

One run of ``exchange_probe.py`` per machine (with a copy of migrate/adapters/exchange.py)
answers every check of that machine; a step that could not run because an earlier one
failed is skipped, naming that failure.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest

import migrate.adapters.exchange as client_module

HERE = Path(__file__).resolve().parent
REPORTS: dict[str, dict] = {}
NEEDS = {"dns": "config", "tcp": "dns", "tls": "tcp", "signed": "tls", "endpoint": "signed",
         "resources": "signed", "roundtrip": "signed", "probe": "signed"}


def exchange(context: dict) -> dict:
    if not context["exchange"]:
        pytest.skip("the system has no exchange section: it does not interconnect")
    return context["exchange"]


def report_of(host_name: str, context: dict, hosts: Any) -> dict:
    """Run the probe once per machine (the endpoint's machine also asks for the reverse
    probe), cached for the session."""
    if host_name in REPORTS:
        return REPORTS[host_name]
    settings = exchange(context)
    host = hosts[host_name]
    folder = f"/run/migrate-verify-{secrets.token_hex(4)}"
    files = {"client.py": Path(client_module.__file__).read_bytes(),
             "exchange_probe.py": (HERE / "exchange_probe.py").read_bytes()}
    copy = " && ".join(
        f"echo {base64.b64encode(data).decode()} | base64 -d > {folder}/{name}"
        for name, data in files.items())
    arguments = [settings["config"], "--budget-ms", str(settings["latency_budget_ms"])]
    for code in settings["resources"]:
        arguments += ["--resource", code]
    if host_name == settings["endpoint_host"]:
        arguments.append("--probe")
    done = host.run(
        f"umask 077 && mkdir -p {folder} && {copy} && "
        f"python3 {folder}/exchange_probe.py {' '.join(map(shlex.quote, arguments))}; "
        f"status=$?; rm -rf {folder}; exit $status")
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {"config": {"ok": False, "error": f"the probe did not run (exit {done.rc}): "
                                                   f"{done.stderr.strip()[-300:]}"}}
    REPORTS[host_name] = report
    return report


def step(report: dict, name: str) -> dict:
    """The step's result, or a skip naming the earlier failure that kept it from running."""
    if name in report:
        return report[name]
    cause = NEEDS.get(name)
    while cause and cause not in report:
        cause = NEEDS.get(cause)
    failed = report.get(cause, {}) if cause else {}
    pytest.skip(f"not run: {cause} failed first ({failed.get('error', 'unknown')})")


def problem(found: dict) -> str:
    text = found.get("error") or "failed"
    return f"{text} (hint: {found['hint']})" if found.get("hint") else text


def endpoint_host(context: dict) -> str:
    settings = exchange(context)
    if not settings["endpoint_host"]:
        pytest.skip("no target machine serves the system's endpoint")
    return settings["endpoint_host"]


def test_exchange_settings_installed(exchange_host: str, context: dict, hosts: Any,
                                     check: Any) -> None:
    found = step(report_of(exchange_host, context, hosts), "config")
    check.evidence("settings", {k: found.get(k) for k in ("system", "url", "app_key")})
    settings = exchange(context)
    ok = found["ok"] and found.get("system") == context["system"] \
        and found.get("url") == settings["url"] and found.get("app_key") == settings["app_key"]
    check.expect(ok, expected=f"{settings['config']} for {context['system']} (url "
                              f"{settings['url']}, app key {settings['app_key']}) and a 0600 "
                              "secret file",
                 found=problem(found) if not found["ok"] else
                 f"system {found.get('system')}, url {found.get('url')}, "
                 f"app key {found.get('app_key')}",
                 host=exchange_host, look_at="the prepare_target play (it installs them)")


def test_platform_name_resolves(exchange_host: str, context: dict, hosts: Any,
                                check: Any) -> None:
    found = step(report_of(exchange_host, context, hosts), "dns")
    check.evidence("dns", found)
    check.expect(found["ok"], expected=f"{exchange(context)['host']} resolves",
                 found=found.get("error") or ", ".join(found.get("addresses", [])),
                 host=exchange_host, look_at="/etc/hosts and /etc/resolv.conf on the target")


def test_platform_port_reachable(exchange_host: str, context: dict, hosts: Any,
                                 check: Any) -> None:
    found = step(report_of(exchange_host, context, hosts), "tcp")
    check.evidence("tcp", found)
    settings = exchange(context)
    check.expect(found["ok"], expected=f"TCP {settings['host']}:{settings['port']} accepts",
                 found=problem(found), host=exchange_host,
                 look_at="the platform's service, and the security rule to the exchange "
                         "network (egress 443)")


def test_tls_verified_against_ca_bundle(exchange_host: str, context: dict, hosts: Any,
                                        check: Any) -> None:
    found = step(report_of(exchange_host, context, hosts), "tls")
    check.evidence("tls", found)
    check.expect(found["ok"], expected="the platform's certificate verifies against "
                                       "/etc/migrate/exchange-ca.pem for its host name",
                 found=problem(found) if not found["ok"] else
                 f"{found.get('version')} certificate {found.get('subject')}",
                 host=exchange_host, look_at="exchange.ca_bundle of migrate.yaml")


def test_signed_request_accepted(exchange_host: str, context: dict, hosts: Any,
                                 check: Any) -> None:
    found = step(report_of(exchange_host, context, hosts), "signed")
    check.evidence("whoami", {k: found.get(k) for k in ("app_key", "system_id", "ms", "code")})
    ok = found["ok"] and found.get("system_id") == context["system"]
    check.expect(ok, expected=f"a signed (HMAC) request accepted as {context['system']}",
                 found=problem(found) if not found["ok"] else
                 f"accepted as {found.get('system_id')}",
                 host=exchange_host,
                 look_at="the app key and secret of the system on the platform "
                         "(/etc/migrate/exchange-secret, the estate's secrets folder)")


def test_endpoint_registered(context: dict, hosts: Any, check: Any) -> None:
    host_name = endpoint_host(context)
    found = step(report_of(host_name, context, hosts), "endpoint")
    wanted = exchange(context)["endpoint"]
    check.evidence("endpoint", found)
    ok = found["ok"] and all(found.get(k) == wanted[k] for k in ("base_url", "health_path"))
    check.expect(ok, expected=f"endpoint {wanted['base_url']}{wanted['health_path']} "
                              "registered (接入登记)",
                 found=problem(found) if not found["ok"] else
                 f"{found.get('base_url')}{found.get('health_path')}",
                 host=host_name, look_at=f"migrate register --system {context['system']}")


def test_resource_linked(resource_code: str, context: dict, hosts: Any, check: Any) -> None:
    host_name = endpoint_host(context)
    found = step(report_of(host_name, context, hosts), "resources").get(resource_code)
    if found is None:
        pytest.skip("not asked")
    check.evidence("resource", found)
    check.expect(found["ok"] and found.get("state") == "linked",
                 expected=f"resource {resource_code} registered and 已挂接 (linked)",
                 found=problem(found) if not found["ok"] else
                 f"state {found.get('state')} ({found.get('state_label')})",
                 host=host_name, look_at=f"migrate register --system {context['system']}; "
                                         "the platform's review of the catalogue")


def test_round_trip_within_budget(context: dict, hosts: Any, check: Any) -> None:
    host_name = endpoint_host(context)
    found = step(report_of(host_name, context, hosts), "roundtrip")
    budget = exchange(context)["latency_budget_ms"]
    check.evidence("roundtrip", found)
    if found.get("ok") is None:
        pytest.fail(f"expected a probe record's round trip; found {found['error']} "
                    f"(on {host_name}); look at the resource checks", pytrace=False)
    ok = found["ok"] and found.get("payload_matches") and found.get("total_ms", 1e9) <= budget
    check.expect(ok, expected=f"a probe record published and read back intact within "
                              f"{budget:.0f} ms",
                 found=problem(found) if not found["ok"] else
                 f"{found.get('total_ms')} ms, payload "
                 f"{'intact' if found.get('payload_matches') else 'differs'}",
                 host=host_name, look_at="the platform's load and the network path")


def test_reverse_probe_reaches_system(context: dict, hosts: Any, check: Any) -> None:
    host_name = endpoint_host(context)
    found = step(report_of(host_name, context, hosts), "probe")
    check.evidence("probe", {k: found.get(k) for k in ("url", "ok", "status", "latency_ms",
                                                       "error", "body_sha256")})
    check.expect(bool(found.get("ok")) and found.get("status") == 200,
                 expected="the platform's probe of the registered health URL answered 200",
                 found=problem(found) if found.get("error") else
                 f"HTTP {found.get('status')}",
                 host=host_name,
                 look_at="the service, the security rule from the exchange network to its "
                         "port, and the registered endpoint")
