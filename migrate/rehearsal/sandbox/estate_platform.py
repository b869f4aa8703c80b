"""The sandbox's exchange platform machine: CA, server certificate, service, apps.

The reference server (``migrate/rehearsal/exchange/server.py``, standard library only) is copied
into the machine's upper directory and run by systemd on port 443. Its database lives
under /var/lib/exchange, so registrations survive a restart of the service or machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from migrate.adapters.exchange import ExchangeClient, ExchangeError, ExchangeHTTPError
from migrate.core.errors import StageFailed
from migrate.core.loader import Estate
from migrate.rehearsal.exchange import pki
from migrate.rehearsal.sandbox import network
from migrate.rehearsal.sandbox.estate_secrets import read_token, secrets_folder

SERVER_SOURCE = Path(__file__).resolve().parent.parent / "exchange" / "server.py"
UNIT = "exchange.service"
SERVER_PATH = "opt/exchange/server.py"
CERT_PATH = "etc/exchange/server.pem"
KEY_PATH = "etc/exchange/server.key"
TOKEN_PATH = "etc/exchange/admin.token"
STATE_DIR = "/var/lib/exchange"


def ca_bundle_path(estate: Estate) -> Path:
    return (estate.root / estate.settings.exchange.ca_bundle).absolute()


def ensure_ca(estate: Estate, sandbox_state: Path) -> pki.CertificateAuthority:
    key_dir = sandbox_state / "ca"
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(key_dir, 0o700)
    return pki.ensure_ca(ca_bundle_path(estate), key_dir / "ca.key")


def service_unit(probe_networks: Iterable[str]) -> str:
    """The platform's systemd unit; it probes only the sandbox's own networks (a platform
    without --probe-allow-network refuses every reverse probe)."""
    probes = "".join(f" --probe-allow-network {cidr}" for cidr in probe_networks)
    if not probes:
        raise StageFailed("the sandbox platform needs the networks it may probe (its bridges)")
    return (
        "[Unit]\n"
        "Description=Exchange platform (reference implementation, sandbox)\n"
        "After=network.target migrate-address.service\n"
        "\n[Service]\n"
        "Type=simple\n"
        "StateDirectory=exchange\n"
        "StateDirectoryMode=0700\n"
        f"ExecStart=/usr/bin/python3 /{SERVER_PATH} --listen 0.0.0.0:443"
        f" --db {STATE_DIR}/exchange.db --cert /{CERT_PATH} --key /{KEY_PATH}"
        f" --admin-token-file /{TOKEN_PATH} --auto-approve{probes}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def install_platform(upper: Path, ca: pki.CertificateAuthority, host_name: str, ip: str,
                     admin_token_file: Path, probe_networks: Iterable[str]) -> list[str]:
    """Write the server, its TLS material, token and unit into the machine's upper dir.

    Returns what changed (file names), so a second run can say it changed nothing.
    """
    changed = []
    before = _read(upper / CERT_PATH)
    pki.ensure_server_cert(ca, upper / CERT_PATH, upper / KEY_PATH,
                           dns_names=[host_name], ip_addresses=[ip])
    if _read(upper / CERT_PATH) != before:
        changed.append("server certificate")
    files = {
        SERVER_PATH: (SERVER_SOURCE.read_bytes(), 0o644),
        TOKEN_PATH: (admin_token_file.read_bytes(), 0o600),
        f"etc/systemd/system/{UNIT}": (service_unit(probe_networks).encode(), 0o644),
    }
    for relative, (data, mode) in files.items():
        if _write_if_changed(upper / relative, data, mode):
            changed.append(relative)
    wants = upper / "etc/systemd/system/multi-user.target.wants" / UNIT
    if not wants.is_symlink():
        wants.parent.mkdir(parents=True, exist_ok=True)
        wants.symlink_to(f"../{UNIT}")
        changed.append(str(wants.relative_to(upper)))
    return changed


def add_hosts_line(upper: Path, host_name: str, ip: str) -> None:
    """Map the platform's host name to its sandbox address in the machine's /etc/hosts."""
    hosts = upper / "etc/hosts"
    lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1 localhost"]
    entry = f"{ip} {host_name}"
    kept = [line for line in lines if host_name not in line.split()[1:]]
    if entry not in kept:
        kept.append(entry)
    text = "\n".join(kept) + "\n"
    if not hosts.exists() or hosts.read_text() != text:
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(text)
        os.chmod(hosts, 0o644)


def platform_client(estate: Estate, ip: str, admin_token_file: Path | None = None,
                    app_key: str | None = None, app_secret: str | None = None
                    ) -> ExchangeClient:
    """A client that connects to the sandbox platform's address and verifies the URL's name."""
    network.assert_local_address(ip)
    token = read_token(admin_token_file) if admin_token_file else None
    return ExchangeClient(estate.settings.exchange.url, ca_bundle=str(ca_bundle_path(estate)),
                          admin_token=token, app_key=app_key, app_secret=app_secret,
                          connect_address=ip)


def wait_platform_healthy(estate: Estate, ip: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    last: Exception | None = None
    with platform_client(estate, ip) as client:
        while time.monotonic() - started < timeout:
            try:
                if client.health().get("status") == "ok":
                    return time.monotonic() - started
            except ExchangeError as error:
                last = error
            client.close()
            time.sleep(0.2)
    raise StageFailed(f"the exchange platform at {ip} did not answer /api/v1/health within"
                      f" {timeout:.0f} s: {getattr(last, 'message', last)}",
                      hint="look at the machine's journal: journalctl -u exchange.service")


def ensure_apps(estate: Estate, ip: str, admin_token_file: Path) -> list[str]:
    """One app per system with an exchange section, holding the secrets file's value.

    Returns the app keys created or re-keyed (empty when all were already right).
    """
    changed = []
    folder = secrets_folder(estate)
    with platform_client(estate, ip, admin_token_file) as admin:
        existing = {app["app_key"]: app for app in admin.list_apps()}
        for sid in sorted(estate.systems):
            exchange = estate.systems[sid].exchange
            if exchange is None:
                continue
            secret = read_token(folder / exchange.app_secret.removeprefix("secret://"))
            key = exchange.app_key
            if key not in existing:
                admin.create_app(sid, app_key=key, name=estate.systems[sid].name,
                                 app_secret=secret)
                changed.append(key)
            elif not _secret_works(estate, ip, key, secret):
                admin.rotate_app(key, app_secret=secret)
                changed.append(key)
    return changed


def _secret_works(estate: Estate, ip: str, key: str, secret: str) -> bool:
    try:
        with platform_client(estate, ip, app_key=key, app_secret=secret) as client:
            client.whoami()
    except ExchangeHTTPError:
        return False
    return True


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_if_changed(path: Path, data: bytes, mode: int) -> bool:
    if _read(path) == data:
        os.chmod(path, mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
    os.replace(temporary, path)
    return True
