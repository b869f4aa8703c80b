"""The plays' filters for the replication tunnel's side on a target (beside the playbooks: every
play has them): the ``sshd -C`` connection spec of a source's tunnel ssh, and whether the
target's sshd, as ``sshd -T`` prints its effective settings for that connection, lets it
listen on its loopback tunnel ports (ssh -R). check_prerequisites asks before anything
changes, so a refusing sshd is named there instead of as ssh's "remote port forwarding
failed" when the transfer opens the tunnel. ``sshd -T`` output is host-read data: it decides
only by exact keyword and value, and shows a value escaped and shortened."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

# The tunnel's ssh (files/replication_tunnel.sh): root@TARGET on ssh's port, each forward
# asked with an explicit listen address (-R 127.0.0.1:PORT:...).
TUNNEL_USER = "root"
TUNNEL_LISTEN = "127.0.0.1"
SSH_PORT = 22
FORWARDING_ALLOWED = ("yes", "all", "remote")  # sshd -T prints "all" as "yes"
SHOWN_MAX = 80
PORT = re.compile(r"[0-9]{1,9}")  # as sshd reads it (a2port: decimal, leading zeros too)
HINT = ("let the target's sshd allow remote forwarding to root from the source hosts, e.g. in "
        "/etc/ssh/sshd_config.d/ a block 'Match User root Address SOURCE' with "
        "'AllowTcpForwarding remote', 'DisableForwarding no' and 'PermitListen "
        "127.0.0.1:PORT' (or no PermitListen), or plan the databases for final_dump")


def migrate_sshd_address(address: str) -> str:
    """``address`` as an sshd_config value (Match Address), refused unless an IP address."""
    return str(ipaddress.ip_address(str(address)))


def migrate_sshd_connection(source_address: str, target_address: str) -> str:
    """The ``sshd -T -C`` spec of the tunnel's connection from ``source_address`` to
    ``target_address`` (user, the source as host and address, the target's address and ssh
    port); refuses anything but two IP addresses (a comma would add keywords)."""
    source, target = migrate_sshd_address(source_address), migrate_sshd_address(target_address)
    return (f"user={TUNNEL_USER},host={source},addr={source},laddr={target},"
            f"lport={SSH_PORT}")


def sshd_settings(text: Any) -> dict[str, str]:
    """``sshd -T``'s lines as {keyword (lower case): value}; the first line of a keyword
    counts (sshd prints those read here once each), a line without a value is left out."""
    settings: dict[str, str] = {}
    for line in str(text or "").splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword and value.strip():
            settings.setdefault(keyword.lower(), value.strip())
    return settings


def host_matches(host: str, pattern: str) -> bool:
    """sshd's match_pattern: "*" any run of characters, "?" any one, all else literal."""
    return re.fullmatch("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                for c in pattern), host, re.DOTALL) is not None


def listen_admitted(permit_listen: str, port: int, host: str = TUNNEL_LISTEN) -> bool:
    """Whether sshd's PermitListen (``sshd -T``: "any", "none" or HOST:PORT entries, a bare
    PORT printed as "*:PORT") admits a listen on ``host``:``port``, as sshd compares them: the
    requested address against HOST as a pattern ("localhost" is not 127.0.0.1 to sshd), the
    port against PORT as a number or "*"."""
    entries = permit_listen.split()
    if entries == ["any"]:
        return True
    for entry in entries:
        allowed_host, colon, allowed_port = entry.rpartition(":")
        if colon and host_matches(host, allowed_host) and (allowed_port == "*" or (
                PORT.fullmatch(allowed_port) and int(allowed_port) == port)):
            return True
    return False


def shown(value: Any) -> str:
    """A host-read value for a message: quoted, control characters escaped, shortened."""
    text = repr(str(value))[1:-1]
    if len(text) > SHOWN_MAX:
        text = text[:SHOWN_MAX] + "..."
    return f"'{text}'"


def forwarding_refusals(settings: Mapping[str, str], ports: Iterable[int]) -> list[str]:
    """What in sshd's effective ``settings`` refuses the tunnel's listens on ``ports``, one
    "Option 'value' (why)" each; [] when the tunnel may open. A missing or unknown value
    refuses (sshd -T prints every option)."""
    refusals = []
    forwarding = settings.get("allowtcpforwarding")
    if forwarding not in FORWARDING_ALLOWED:
        refusals.append(f"AllowTcpForwarding {shown(forwarding or '')} (needs yes, all or "
                        "remote)")
    disabled = settings.get("disableforwarding")
    if disabled != "no":
        refusals.append(f"DisableForwarding {shown(disabled or '')} (needs no)")
    permit_listen = settings.get("permitlisten", "any")
    closed = [int(p) for p in ports if not listen_admitted(permit_listen, int(p))]
    if closed:
        wanted = ", ".join(f"{TUNNEL_LISTEN}:{p}" for p in closed)
        refusals.append(f"PermitListen {shown(permit_listen)} (does not admit {wanted})")
    return refusals


def migrate_tunnel_forwarding_problem(result: Mapping[str, Any], system: str,
                                      target: str) -> str:
    """What stops a source's replication tunnel into ``target`` ("NAME (ADDRESS)"), from
    one result of check_prerequisites' ``sshd -T`` loop (its item: [source name, source
    address, the source's forwards]); "" when nothing does or the check was skipped."""
    if not isinstance(result, Mapping) or result.get("skipped"):
        return ""
    item = result.get("item") or ["?", "?", []]
    source, address, forwards = item[0], item[1], item[2]
    where = (f"system {system}: the sshd of target {target} refuses the replication tunnel "
             f"from {source} ({address}) for {TUNNEL_USER}")
    if result.get("rc") != 0:
        said = (result.get("stderr") or result.get("msg") or "").strip().splitlines()
        return (f"{where}: 'sshd -T' failed there ({shown(said[-1] if said else '')}); hint: "
                "check the sshd configuration with 'sshd -t' on the target")
    ports = [f["port"] for f in forwards]
    refusals = forwarding_refusals(sshd_settings(result.get("stdout")), ports)
    if not refusals:
        return ""
    return f"{where}: {'; '.join(refusals)}; hint: {HINT}"


class FilterModule:
    def filters(self) -> dict:
        return {"migrate_sshd_address": migrate_sshd_address,
                "migrate_sshd_connection": migrate_sshd_connection,
                "migrate_tunnel_forwarding_problem": migrate_tunnel_forwarding_problem}
