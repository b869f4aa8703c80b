"""The census (自查 and 清理): one disposition per system, with the reasons behind it.

Dispositions, in order of precedence:
- ``refuse``: classified (涉密), or a protection level above the cloud's; never planned.
- ``decommission``: a zombie (僵尸系统) by any official criterion (DOMAIN.md, 清理).
- ``merge``: a shadow (影子系统): in a duplicates group, every system but the most used one.
- ``migrate``: everything else.
Every threshold lives in ``Thresholds`` and is reported with each reason that used it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Literal

from migrate.core.model import SystemManifest

Disposition = Literal["migrate", "decommission", "merge", "refuse"]
DISPOSITIONS: tuple[Disposition, ...] = ("migrate", "decommission", "merge", "refuse")
DISPOSITION_ZH = {"migrate": "迁移上云", "decommission": "清理下线", "merge": "整合合并",
                  "refuse": "不予迁移"}


@dataclass(frozen=True)
class Thresholds:
    """The one place the census's numbers live."""

    idle_days: int = 180
    """No use for this many days: 长期无人使用 (resources idle for a long time)."""
    low_use_monthly_users: int = 50
    """Below this, use is low: with inactive maintenance, 停止更新维护."""
    small_scope_monthly_users: int = 10
    """Below this with department/internal scope: 使用范围小、频度低."""
    small_scopes: tuple[str, ...] = ("department", "internal")


@dataclass(frozen=True)
class ObservedUse:
    """Use observed on the source hosts (``migrate discover``: the web servers' access logs).
    Where a system has one, the census judges by it rather than by the declared figures."""

    monthly_active_users: int | None
    last_used: date | None
    month: str | None  # whose distinct clients ``monthly_active_users`` counts
    source: str  # where it was observed: the access logs, which discovery document


@dataclass(frozen=True)
class Use:
    """The figures a verdict rests on, and where they come from."""

    monthly_active_users: int
    last_used: date | None
    basis: str  # "declared" | "observed"
    source: str | None = None

    def note(self) -> str:
        return "" if self.basis == "declared" else f"; use observed in {self.source}"


def use_of(system: SystemManifest, observed: ObservedUse | None) -> Use:
    """Observed figures where discovery has them, each one separately; else the declared."""
    declared = system.census.usage_frequency
    if observed is None:
        return Use(declared.monthly_active_users, declared.last_used, "declared")
    users = declared.monthly_active_users if observed.monthly_active_users is None \
        else observed.monthly_active_users
    last = declared.last_used if observed.last_used is None else observed.last_used
    return Use(users, last, "observed", observed.source)


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    threshold: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Verdict:
    system_id: str
    disposition: Disposition
    reasons: tuple[Reason, ...]
    merge_into: str | None = None
    use: Use | None = None

    def as_dict(self) -> dict:
        document = {
            "id": self.system_id,
            "disposition": self.disposition,
            "reasons": [str(r) for r in self.reasons],
            "reason_details": [asdict(r) for r in self.reasons],
            "merge_into": self.merge_into,
        }
        if self.use is not None and self.use.basis == "observed":
            document["use"] = {"basis": "observed", "source": self.use.source,
                               "monthly_active_users": self.use.monthly_active_users,
                               "last_used": self.use.last_used.isoformat()
                               if self.use.last_used else None}
        return document


@dataclass(frozen=True)
class CensusResult:
    as_of: date
    thresholds: Thresholds
    verdicts: dict[str, Verdict]

    def with_disposition(self, disposition: Disposition) -> list[str]:
        return [sid for sid, v in self.verdicts.items() if v.disposition == disposition]

    def counts(self) -> dict[str, int]:
        return {d: len(self.with_disposition(d)) for d in DISPOSITIONS}

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "thresholds": asdict(self.thresholds),
            "counts": self.counts(),
            "systems": [v.as_dict() for v in self.verdicts.values()],
        }


def take_census(
    systems: dict[str, SystemManifest],
    cloud_level: int,
    as_of: date,
    thresholds: Thresholds = Thresholds(),
    observed: Mapping[str, ObservedUse] | None = None,
) -> CensusResult:
    """``observed``: use that discovery saw on a system's hosts, which the census then
    judges by instead of the manifest's declared figures (and says so in each reason)."""
    uses = {sid: use_of(system, (observed or {}).get(sid)) for sid, system in systems.items()}
    verdicts: dict[str, Verdict] = {}
    for sid in sorted(systems):
        reasons = refusal_reasons(systems[sid], cloud_level)
        if reasons:
            verdicts[sid] = Verdict(sid, "refuse", tuple(reasons), use=uses[sid])
            continue
        reasons = zombie_reasons(systems[sid], as_of, thresholds, uses[sid])
        if reasons:
            verdicts[sid] = Verdict(sid, "decommission", tuple(reasons), use=uses[sid])
    eligible = {sid: s for sid, s in systems.items() if sid not in verdicts}
    for sid, (survivor, reason) in shadow_merges(eligible, uses).items():
        verdicts[sid] = Verdict(sid, "merge", (reason,), merge_into=survivor, use=uses[sid])
    for sid in sorted(systems):
        if sid not in verdicts:
            verdicts[sid] = Verdict(sid, "migrate", (Reason(
                "in_use", "in use, not classified, within the cloud's protection level; "
                f"moves onto the e-government cloud{in_use_note(uses[sid])}"),), use=uses[sid])
    return CensusResult(as_of, thresholds, dict(sorted(verdicts.items())))


def in_use_note(use: Use) -> str:
    if use.basis == "declared":
        return ""
    last = use.last_used.isoformat() if use.last_used else "never"
    return f" ({use.monthly_active_users} monthly active users, last used {last}{use.note()})"


def refusal_reasons(system: SystemManifest, cloud_level: int) -> list[Reason]:
    reasons = []
    if system.classification == "classified":
        reasons.append(Reason("classified", "classified (涉密) system: only non-classified "
                              "systems may go onto the e-government cloud"))
    if system.protection_level > cloud_level:
        reasons.append(Reason(
            "above_cloud_level",
            f"protection level {system.protection_level} (等保{system.protection_level}级) is "
            f"above the cloud's level {cloud_level}",
            {"cloud_protection_level": cloud_level}))
    return reasons


def zombie_reasons(system: SystemManifest, as_of: date, t: Thresholds,
                   use: Use | None = None) -> list[Reason]:
    census = system.census
    use = use or use_of(system, None)
    users, last_used, note = use.monthly_active_users, use.last_used, use.note()
    reasons = []
    if last_used is None:
        reasons.append(Reason("idle", f"never used (长期无人使用){note}",
                              {"idle_days": t.idle_days}))
    elif (as_of - last_used).days >= t.idle_days:
        reasons.append(Reason(
            "idle",
            f"last used {last_used.isoformat()}, {(as_of - last_used).days} days before "
            f"{as_of.isoformat()} (长期无人使用; threshold {t.idle_days} days){note}",
            {"idle_days": t.idle_days}))
    if census.replaceable_by:
        reasons.append(Reason("replaceable", f"its function can be replaced by "
                              f"{census.replaceable_by} (功能可被替代)"))
    if not census.maintenance.active and users < t.low_use_monthly_users:
        reasons.append(Reason(
            "unmaintained",
            f"maintenance stopped and {users} monthly active users (停止更新维护; "
            f"low use is fewer than {t.low_use_monthly_users}){note}",
            {"low_use_monthly_users": t.low_use_monthly_users}))
    if census.usage_scope in t.small_scopes and users < t.small_scope_monthly_users:
        reasons.append(Reason(
            "small_and_rare",
            f"{census.usage_scope} scope and {users} monthly active users (使用范围小、频度低; "
            f"threshold fewer than {t.small_scope_monthly_users}){note}",
            {"small_scope_monthly_users": t.small_scope_monthly_users,
             "small_scopes": list(t.small_scopes)}))
    return reasons


def _use_rank(system: SystemManifest, use: Use) -> tuple:
    return (use.monthly_active_users, use.last_used or date.min, system.id)


def shadow_merges(systems: dict[str, SystemManifest], uses: Mapping[str, Use] | None = None
                  ) -> dict[str, tuple[str, Reason]]:
    """Group systems linked by ``duplicates`` (either direction); all but the most used go."""
    uses = {sid: (uses or {}).get(sid) or use_of(s, None) for sid, s in systems.items()}
    parent = {sid: sid for sid in systems}

    def root(sid: str) -> str:
        while parent[sid] != sid:
            parent[sid] = parent[parent[sid]]
            sid = parent[sid]
        return sid

    for sid in sorted(systems):
        for other in systems[sid].census.duplicates:
            if other in systems:
                parent[root(other)] = root(sid)
    groups: dict[str, list[str]] = {}
    for sid in sorted(systems):
        groups.setdefault(root(sid), []).append(sid)
    merges: dict[str, tuple[str, Reason]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        survivor = max(members, key=lambda m: _use_rank(systems[m], uses[m]))
        kept = uses[survivor].monthly_active_users
        for member in members:
            if member == survivor:
                continue
            users = uses[member].monthly_active_users
            merges[member] = (survivor, Reason(
                "shadow",
                f"shadow system (影子系统) of {survivor}: same or similar function, "
                f"{users} monthly active users against {kept}; the less used one is merged "
                f"into {survivor}{uses[member].note() or uses[survivor].note()}",
                {"rule": "less monthly active users goes; ties go by later last use"}))
    return merges
