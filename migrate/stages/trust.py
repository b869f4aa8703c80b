"""``migrate trust``: fetch each source host's SSH key, show its SHA256 fingerprint for the
operator to confirm, and record it in the estate's known_hosts file.

Nothing is trusted silently. A key is recorded only when the operator confirms it on a
terminal or names its fingerprint (``--accept SHA256:...``), which is how an unattended job
(no terminal, or ``CI=true``) says which keys it expects: a job can then never accept a key
it was not told about. A key that differs from the recorded one is reported as CHANGED and
replaced only when its new fingerprint is named or typed in full by the operator.

Fetching is a bare SSH key exchange (paramiko ``Transport``, no authentication); the address
passes the sandbox guard first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from migrate.adapters.access import (
    fingerprint_of,
    guard_address,
    is_key_line,
    known_hosts_name,
    names_host,
    offered_host_key,
    require_estate_known_hosts,
)
from migrate.core.errors import HostKeyChanged, HostKeyUnknown, InvalidInput, Problem, StageFailed
from migrate.core.loader import Estate
from migrate.targets.context import Context

NEW, SAME, CHANGED = "new", "same", "changed"


@dataclass(frozen=True)
class SourceAddress:
    """A source host to trust: from a manifest (system, host) or named on the command line."""

    address: str
    port: int = 22
    system: str | None = None
    host: str | None = None

    @property
    def name(self) -> str:
        return known_hosts_name(self.address, self.port)

    def label(self) -> str:
        owner = f"{self.system}/{self.host}" if self.system else "(no manifest yet)"
        return f"{owner} {self.name}"


@dataclass(frozen=True)
class KnownKey:
    key_type: str
    key_base64: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.key_base64)


@dataclass(frozen=True)
class HostKeyCheck:
    """What a host offered, against what the file records for it."""

    target: SourceAddress
    offered: KnownKey
    state: str  # new | same | changed
    recorded: tuple[KnownKey, ...] = ()

    def line(self) -> str:
        return f"{self.target.name} {self.offered.key_type} {self.offered.key_base64}"

    def as_dict(self) -> dict:
        return {"system": self.target.system, "host": self.target.host,
                "address": self.target.address, "port": self.target.port,
                "key_type": self.offered.key_type, "fingerprint": self.offered.fingerprint,
                "state": self.state,
                "recorded": [f"{k.key_type} {k.fingerprint}" for k in self.recorded]}


@dataclass
class TrustOutcome:
    known_hosts: Path
    checks: list[HostKeyCheck]
    recorded: list[HostKeyCheck] = field(default_factory=list)
    refused: list[HostKeyCheck] = field(default_factory=list)
    unmatched_accepts: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    def action_of(self, check: HostKeyCheck) -> str:
        if check.state == SAME:
            return "already trusted"
        if check in self.recorded:
            return "recorded" if check.state == NEW else "REPLACED (confirmed)"
        return "NOT trusted"

    def as_dict(self) -> dict:
        return {"known_hosts": str(self.known_hosts),
                "hosts": [{**c.as_dict(), "action": self.action_of(c)} for c in self.checks],
                "unmatched_accepts": self.unmatched_accepts, "unreachable": self.unreachable}


# ---- fingerprints and known_hosts lines (pure) ----------------------------------------


def normalise_fingerprint(text: str) -> str:
    text = text.strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"


def recorded_keys(lines: Iterable[str], name: str) -> list[KnownKey]:
    """The keys a known_hosts text records for ``name`` (markers such as @revoked and
    comments are not keys)."""
    found = []
    for line in lines:
        if is_key_line(line) and names_host(line.split()[0], name):
            found.append(KnownKey(*line.split()[1:3]))
    return found


def compare(target: SourceAddress, offered: KnownKey, lines: list[str]) -> HostKeyCheck:
    recorded = tuple(recorded_keys(lines, target.name))
    if offered in recorded:
        return HostKeyCheck(target, offered, SAME, recorded)
    return HostKeyCheck(target, offered, CHANGED if recorded else NEW, recorded)


def updated_lines(lines: list[str], trusted: Iterable[HostKeyCheck]) -> list[str]:
    """The file's lines with each trusted key recorded; a changed host's old keys removed
    (every other line, comments included, kept as it was)."""
    result = list(lines)
    for check in trusted:
        if check.state == CHANGED:
            result = [line for line in result if not _is_key_line_of(line, check.target.name)]
        if check.state != SAME:
            result.append(check.line())
    return result


def _is_key_line_of(line: str, name: str) -> bool:
    return is_key_line(line) and names_host(line.split()[0], name)


# ---- which hosts ------------------------------------------------------------------------


def trust_targets(estate: Estate, systems: Iterable[str] = (),
                  addresses: Iterable[str] = (), port: int = 22) -> list[SourceAddress]:
    """The source hosts of the chosen systems (default: every system), and addresses named
    on the command line (hosts no manifest lists yet)."""
    chosen = list(systems)
    unknown = [s for s in chosen if s not in estate.systems]
    if unknown:
        raise InvalidInput([Problem(estate.display, None, "--system",
                                    f"unknown system '{s}'",
                                    f"systems: {', '.join(sorted(estate.systems))}")
                            for s in unknown])
    extra = list(addresses)
    ids = chosen or ([] if extra else list(estate.systems))
    targets = [SourceAddress(h.address, estate.systems[sid].source.ssh.port, sid, h.name)
               for sid in ids for h in estate.systems[sid].source.hosts]
    targets += [SourceAddress(a, port) for a in extra]
    return list({t.name: t for t in targets}.values())


# ---- fetching ---------------------------------------------------------------------------


def fetch_host_key(address: str, port: int = 22, preferred: Iterable[str] = ()) -> KnownKey:
    """The host key ``address`` offers in a key exchange (no login), preferring the key
    types in ``preferred`` (those recorded for it). The caller guarded the address."""
    key = offered_host_key(address, port, preferred)
    return KnownKey(key.get_name(), key.get_base64())


def check_host_keys(context: Context, targets: list[SourceAddress],
                    known_hosts: Path) -> tuple[list[HostKeyCheck], list[str]]:
    """Each reachable host's key against the file, and what kept the others from answering.
    Every address passes the sandbox guard before the first one is contacted."""
    for target in targets:
        guard_address(context, target.address)
    lines = read_lines(known_hosts)
    checks, unreachable = [], []
    for target in targets:
        preferred = [k.key_type for k in recorded_keys(lines, target.name)]
        try:
            offered = fetch_host_key(target.address, target.port, preferred)
        except StageFailed as error:
            unreachable.append(f"{target.label()}: {error.message}")
            continue
        checks.append(compare(target, offered, lines))
    return checks, unreachable


# ---- deciding and recording -------------------------------------------------------------

Confirm = Callable[[HostKeyCheck], bool]


def decide(checks: list[HostKeyCheck], accepted: Iterable[str],
           confirm: Confirm | None) -> tuple[list[HostKeyCheck], list[HostKeyCheck]]:
    """(to record, refused). A new or changed key is recorded when its fingerprint is in
    ``accepted`` or, on a terminal (``confirm`` given), when the operator confirms it."""
    named = {normalise_fingerprint(a) for a in accepted}
    to_record, refused = [], []
    for check in checks:
        if check.state == SAME:
            continue
        if check.offered.fingerprint in named or (confirm is not None and confirm(check)):
            to_record.append(check)
        else:
            refused.append(check)
    return to_record, refused


def trust_estate(context: Context, targets: list[SourceAddress], accepted: Iterable[str] = (),
                 confirm: Confirm | None = None) -> TrustOutcome:
    """Fetch, compare, decide and record what was confirmed; ``raise_for_refused`` then
    says what stays untrusted or unreachable."""
    known_hosts = require_estate_known_hosts(context.estate)
    accepted = [normalise_fingerprint(a) for a in accepted]
    checks, unreachable = check_host_keys(context, targets, known_hosts)
    to_record, refused = decide(checks, accepted, confirm)
    if to_record:
        write_lines(known_hosts, updated_lines(read_lines(known_hosts), to_record))
    offered = {c.offered.fingerprint for c in checks}
    outcome = TrustOutcome(known_hosts, checks, to_record, refused,
                           [a for a in accepted if a not in offered], unreachable)
    if to_record or refused:
        context.journal.append("trust", result="failed" if refused else "ok",
                               outputs=outcome.as_dict())
    return outcome


def raise_for_refused(outcome: TrustOutcome) -> None:
    """HostKeyChanged or HostKeyUnknown for keys left untrusted; StageFailed when the only
    problem is hosts that did not answer."""
    if not outcome.refused:
        if outcome.unreachable:
            raise StageFailed(f"{len(outcome.unreachable)} source host(s) did not answer: "
                              + "; ".join(outcome.unreachable),
                              hint="the others were checked; run again when they are up")
        return
    changed = [c for c in outcome.refused if c.state == CHANGED]
    lines = "; ".join([*(f"{c.target.label()} {c.state.upper()} {c.offered.key_type} "
                         f"{c.offered.fingerprint}{_was(c)}" for c in outcome.refused),
                       *(f"{u} (did not answer)" for u in outcome.unreachable)])
    hint = ("confirm each fingerprint out of band (on the host: ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub), then run again on a terminal or with "
            "--accept FINGERPRINT for each; nothing else was changed")
    if changed:
        raise HostKeyChanged(f"{len(changed)} source host key(s) CHANGED and not replaced: "
                             f"{lines}", hint)
    raise HostKeyUnknown(f"{len(outcome.refused)} source host key(s) not trusted: {lines}", hint)


def _was(check: HostKeyCheck) -> str:
    if check.state != CHANGED:
        return ""
    return " (recorded: " + ", ".join(f"{k.key_type} {k.fingerprint}"
                                       for k in check.recorded) + ")"


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def write_lines(path: Path, lines: list[str]) -> None:
    """Write the known_hosts file atomically (0644: public keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def unattended() -> bool:
    """No operator to ask: no terminal, or a CI job (``CI=true``)."""
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return ci or not sys.stdin.isatty()
