"""Runs ON a target machine (Debian's python3, standard library, next to a copy of
migrate/adapters/exchange.py): the system's interconnection with the exchange platform, step
by step, as one JSON document on stdout. Reads /etc/migrate/exchange.json and the secret
file it names; the secret never leaves this process.

    python3 exchange_probe.py CONFIG [--resource CODE ...] [--probe] [--budget-ms N]
"""

import argparse
import json
import socket
import ssl
import time
import urllib.parse


def timed(step, work):
    started = time.perf_counter()
    try:
        step.update(work() or {})
        step.setdefault("ok", True)
    except Exception as error:  # reported, never raised: every step says what it found
        step.update(ok=False, error=getattr(error, "message", None) or str(error),
                    hint=getattr(error, "hint", None), type=type(error).__name__)
        if getattr(error, "code", None):
            step["code"] = error.code
    step["ms"] = round((time.perf_counter() - started) * 1000, 3)
    return step["ok"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--resource", action="append", default=[])
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--budget-ms", type=float, default=2000.0)
    args = parser.parse_args()
    report = {}
    settings = {}

    def config():
        with open(args.config, encoding="utf-8") as handle:
            settings.update(json.load(handle))
        import client

        client.read_secret_file(settings["secret_file"])  # present, private, not empty
        return {"system": settings.get("system"), "url": settings.get("url"),
                "app_key": settings.get("app_key"), "ca_bundle": settings.get("ca_bundle")}

    if not timed(report.setdefault("config", {}), config):
        print(json.dumps(report))
        return
    parts = urllib.parse.urlsplit(settings["url"])
    host, port = parts.hostname, parts.port or 443
    addresses = []

    def dns():
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses.extend(sorted({f[4][0] for f in found}))
        return {"host": host, "addresses": addresses}

    def tcp():
        with socket.create_connection((host, port), timeout=5):
            return {"address": f"{host}:{port}"}

    def tls():
        context = ssl.create_default_context(cafile=settings["ca_bundle"])
        with socket.create_connection((host, port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=host) as wrapped:
            cert = wrapped.getpeercert()
            subject = dict(x[0] for x in cert.get("subject", ()))
            return {"version": wrapped.version(), "subject": subject.get("commonName"),
                    "not_after": cert.get("notAfter")}

    steps = [("dns", dns), ("tcp", tcp), ("tls", tls)]
    for name, work in steps:
        if not timed(report.setdefault(name, {}), work):
            print(json.dumps(report))
            return
    import client

    secret = client.read_secret_file(settings["secret_file"])
    with client.ExchangeClient(settings["url"], ca_bundle=settings["ca_bundle"],
                               app_key=settings["app_key"], app_secret=secret) as api:
        timed(report.setdefault("health", {}), lambda: {"status": api.health().get("status")})
        if not timed(report.setdefault("signed", {}), lambda: api.whoami()):
            print(json.dumps(report))
            return
        system = settings["system"]
        timed(report.setdefault("endpoint", {}), lambda: {
            k: v for k, v in api.get_system(system).items()
            if k in ("system_id", "base_url", "health_path", "name")})
        resources = report.setdefault("resources", {})
        for code in args.resource:
            timed(resources.setdefault(code, {}), lambda code=code: {
                k: v for k, v in api.get_resource(code).items()
                if k in ("code", "state", "state_label", "linked_at")})
        linked = [c for c in args.resource if resources[c].get("state") == "linked"]
        trip = report.setdefault("roundtrip", {"budget_ms": args.budget_ms})
        if linked:
            timed(trip, lambda: api.round_trip(linked[0]).as_dict())
        else:
            trip.update(ok=None, error="no resource is linked (已挂接) to exchange through")
        if args.probe:
            timed(report.setdefault("probe", {}), lambda: api.probe_system(system))
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
