"""Runbooks for auditors: the plan runbook before a move, the evidence runbook after it.

Before a move, ``write_plan_runbooks`` renders one runbook per system and one per wave from
``plan.json`` (what will be created, the steps and exact commands in stage order, expected
duration and downtime, rollback, prerequisites, sign-off). After a move,
``write_evidence_runbooks`` renders one runbook per system from the run journal: what
happened stage by stage, checksums and row counts source vs target, verification results,
measured downtime, links to kept artifacts, and the hash of the last journal entry used,
which seals it.

Both are Markdown and a self-contained HTML page, rendered from ``templates/`` with
StrictUndefined, and deterministic: no clock is read; dates come from the plan (``as_of``) or
the journal (its last entry's time).

Evidence read from journal entries (``outputs`` of the stage's entry; anything absent is
rendered as "not recorded"):
- ``checksums``: ``[{"path", "source", "target"}]`` or ``{path: {"source", "target"}}``
- ``row_counts``: ``[{"table", "source", "target"}]`` or ``{table: {"source", "target"}}``
- ``checks`` (verify): ``[{"name", "ok", "detail"?}]``
- ``downtime_s`` (cutover): measured seconds the service was unavailable
- ``artifacts``: paths of kept files (relative ones are under the state directory)
- failed entries: ``outputs.error`` or ``details.error``
and the shape ``migrate.stages.move`` journals: a ``transfer`` entry whose ``outputs.plays``
ran prepare_target, transfer_files and migrate_database (each section lists it),
``outputs.files`` (sha256 manifests compared per source host), ``outputs.databases`` (rows
and checksums per table compared), ``outputs.cutover_play_s`` (the frozen time), and
``outputs.run_id`` (the run's kept artifacts under ``runs/<run id>/``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from migrate.adapters.render import FORMATS, TEMPLATES_DIR, render, write_text
from migrate.core.journal import Journal, Verification, digest_bytes, verification_summary
from migrate.core.loader import Estate
from migrate.core.plan import plan_digest
from migrate.core.terms import (
    CLOUD_TARGET_ZH,
    COPY_METHOD_ZH,
    DIRECTION_ZH,
    DISPOSITION_ZH,
    HOLDS_ZH,
    ZONE_ZH,
    result_text,
    rule_origin,
    stage_title,
    term,
    utc_and_cst,
    who,
)

STAGES = ("check_prerequisites", "provision", "prepare_target", "transfer_files",
          "migrate_database", "cutover", "verify", "rollback", "decommission_source")
STAGE_TITLES = {
    "check_prerequisites": "前置检查 Prerequisites",
    "provision": "资源开通 Provision the target",
    "prepare_target": "目标准备 Prepare the target",
    "transfer_files": "文件迁移 Transfer files",
    "migrate_database": "数据库迁移 Migrate databases",
    "cutover": "业务切换 Cutover",
    "verify": "验证 Verify",
    "rollback": "回退 Rollback",
    "decommission_source": "源端下线 Decommission the source",
}
STAGES_WITHOUT_PLAYS = ("verify",)  # their runs keep a result.json only
SUCCESS = ("ok", "changed", "unchanged")
NOT_RECORDED = "not recorded"
NO_REASON = "未说明 none given (run before rollback took --reason)"


REASON_PLACEHOLDER = "<回退原因 why>"


def stage_commands(estate_arg: str, sid: str) -> dict[str, list[str]]:
    """The exact commands an operator runs, per stage (empty: done by the previous command);
    ``abandon`` gives the targets up before a cutover, the source's traces of the transfer
    removed first (destroy refuses otherwise). Every one parses with the real CLI
    (tests/runbook/test_printed_commands.py)."""
    e, s = shlex.quote(estate_arg), f"--system {shlex.quote(sid)}"
    return {
        "check_prerequisites": [f"migrate validate {e}", f"migrate plan {e}",
                                f"migrate audit verify {e}", f"migrate preview {e} {s}"],
        "provision": [f"migrate provision {e} {s} --yes"],
        "prepare_target": [],
        "transfer_files": [f"migrate transfer {e} {s}"],
        "migrate_database": [],
        "cutover": [f"migrate transfer {e} {s}", f"migrate cutover {e} {s} --yes"],
        "verify": [f"migrate verify {e} {s}"],
        "rollback": [f"migrate rollback {e} {s} --yes --reason {shlex.quote(REASON_PLACEHOLDER)}",
                     f"migrate verify {e} {s}"],
        "abandon": [f"migrate rollback {e} {s} --yes --reason {shlex.quote(REASON_PLACEHOLDER)}",
                    f"migrate destroy {e} {s} --yes"],
        "decommission_source": [f"migrate decommission {e} {s} --yes",
                                f"migrate audit verify {e}"],
    }


# ---------------------------------------------------------------- plan runbooks


def _yes_no(flag: bool) -> str:
    return "是 yes" if flag else "否 no"


def _peer_text(peer: dict) -> str:
    if peer["kind"] == "instance":
        return f"{peer['instance']} ({peer['cidr']})"
    if peer["kind"] == "source_host":
        return f"source host {peer['host']} ({peer['cidr']})"
    return f"{peer['kind']} ({peer['cidr']})"


def _network_rows(plan: dict, keys: Iterable[str]) -> list[list[str]]:
    wanted = set(keys)
    return [[n["name"], n["department"]["name"], term(ZONE_ZH, n["zone"]), n["cidr"], n["gateway"]]
            for n in plan["networks"] if n["key"] in wanted]


def _address_text(instance: dict) -> str:
    """The planned address, and where the plan gives one, the floating IP's network."""
    floating = instance.get("floating_ip")
    if not floating:
        return instance["address"]
    return f"{instance['address']}（浮动 IP，{floating['network']}）"


def system_resources(plan: dict, system: dict) -> dict:
    """What provisioning creates for one system, as table rows."""
    instances, volumes, groups = [], [], []
    for i in system["instances"]:
        instances.append([i["resource_name"], i["flavor"], f"{i['vcpu']} vCPU / "
                          f"{i['memory_gb']:g} GB", i["cloud_image"], _address_text(i),
                          ", ".join(i["replaces"]), ", ".join(i["services"]) or "-"])
        boot = i["boot_volume"]
        volumes.append([f"{i['resource_name']}-boot", i["resource_name"], "/",
                        str(boot["size_gb"]), term(HOLDS_ZH, "boot"), _yes_no(boot["encrypted"])])
        for v in i["volumes"]:
            volumes.append([f"{i['resource_name']}-{v['name']}", i["resource_name"], v["mount"],
                            str(v["size_gb"]), term(HOLDS_ZH, v["holds"]),
                            _yes_no(v["encrypted"])])
        groups.append(i["security_group"])
    rules = [[f"sg-{system['id']}-{r['instance']}", term(DIRECTION_ZH, r["direction"]),
              f"{r['protocol']}/{r['port']}", _peer_text(r["peer"]), rule_origin(r["origin"]),
              _yes_no(r["temporary"])]
             for r in system["security_rules"]]
    return {"networks": _network_rows(plan, [system["network"]]), "instances": instances,
            "volumes": volumes, "security_groups": groups, "rules": rules,
            "temporary_rules": [row for row, r in zip(rules, system["security_rules"],
                                                      strict=True) if r["temporary"]]}


def system_data(system: dict) -> dict:
    data = system["data"]
    return {
        "files": [[f["host"], f["path"], f"{f['size_gb']:g}", f"{f['daily_change_gb']:g}",
                   f["instance"]] for f in data["files"]],
        "databases": [[d["host"], d["engine"], d["name"], f"{d['size_gb']:g}",
                       f"{d['daily_change_gb']:g}", d["instance"],
                       term(COPY_METHOD_ZH, d["method"])]
                      for d in data["databases"]],
        "total_gb": f"{data['total_gb']:g}",
        "replicated": [d["name"] for d in data["databases"]
                       if d["method"] == "logical_replication"],
        "binlog_replicated": [d["name"] for d in data["databases"]
                              if d["method"] == "binlog_replication"],
    }


def system_software(system: dict) -> dict:
    """What prepare_target installs, copies and rewrites on each instance, as table rows."""
    instances = system["instances"]
    return {
        "packages": [[i["resource_name"], ", ".join(i.get("packages", []))]
                     for i in instances if i.get("packages")],
        "configuration": [[c["host"], c["path"], i["resource_name"]]
                          for i in instances for c in i.get("configuration", [])],
        "rewrites": [[r["host"], r["file"], f"{r['old']} → {r['new']}", i["resource_name"]]
                     for i in instances for r in i.get("rewrites", [])],
    }


def _services(system: dict) -> list[list[str]]:
    return [[s["name"], s["unit"], str(s["port"]), s["health"], s["source_host"], s["instance"]]
            for s in system["services"]]


def _timing(system: dict) -> dict:
    estimates = system["estimates"]
    within = estimates["cutover_minutes"] <= system["max_downtime_minutes"]
    return {"initial_copy_minutes": estimates["initial_copy_minutes"],
            "cutover_minutes": estimates["cutover_minutes"],
            "max_downtime_minutes": system["max_downtime_minutes"],
            "bandwidth_mbps": f"{estimates['bandwidth_mbps']:g}",
            "within_window": within,
            "verdict": ("within the agreed window 在允许停机时间内" if within else
                        "EXCEEDS the agreed window 超出允许停机时间: agree a longer window "
                        "or reduce the final sync before cutting over")}


def _secret_refs(estate: Estate, sid: str) -> list[str]:
    """Names of the secrets the move needs (references only, never values)."""
    system = estate.systems[sid]
    refs = [system.source.ssh.key]
    refs += [d.password for d in system.workload.databases if getattr(d, "password", None)]
    if system.exchange is not None:
        refs.append(system.exchange.app_secret)
    return sorted({str(r) for r in refs})


def plan_system_context(estate: Estate, plan: dict, system: dict, estate_arg: str) -> dict:
    sid = system["id"]
    names = {s["id"]: s["name"] for s in plan["systems"]}
    waves = {s["id"]: s["wave"] for s in plan["systems"]}
    return {
        "title": f"迁移操作手册 Plan runbook: {system['name']} ({sid})",
        "estate": plan["estate"],
        "as_of": plan["as_of"],
        "plan_digest": plan_digest(plan),
        "cloud_target": plan["cloud"]["target"],
        "cloud_text": term(CLOUD_TARGET_ZH, plan["cloud"]["target"]),
        "zone": term(ZONE_ZH, system["zone"]),
        "system": system,
        "function": estate.systems[sid].function if sid in estate.systems else "",
        "depends_on": [[d, names.get(d, d), str(waves.get(d, "?"))] for d in system["depends_on"]],
        "resources": system_resources(plan, system),
        "data": system_data(system),
        "services": _services(system),
        "software": system_software(system),
        "timing": _timing(system),
        "secrets": _secret_refs(estate, sid) if sid in estate.systems else [],
        "stages": [{"name": st, "title": STAGE_TITLES[st]} for st in STAGES],
        "commands": stage_commands(estate_arg, sid),
        "reason_placeholder": REASON_PLACEHOLDER,
        "estate_arg": estate_arg,
        "warnings": [w for w in plan["warnings"] if w.startswith(f"{sid}:")],
        "resource_codes": system["exchange"]["resources"],
    }


def plan_wave_context(plan: dict, number: int, estate_arg: str) -> dict:
    members = [s for s in plan["systems"] if s["wave"] == number]
    earlier = [s for s in plan["systems"] if s["wave"] < number]
    rows = []
    for s in members:
        timing = _timing(s)
        rows.append([s["id"], s["name"], s["department"]["name"], f"等保{s['protection_level']}级",
                     term(ZONE_ZH, s["zone"]), str(len(s["instances"])),
                     f"{s['data']['total_gb']:g}",
                     str(timing["initial_copy_minutes"]), str(timing["cutover_minutes"]),
                     str(timing["max_downtime_minutes"]),
                     "在窗口内 ok" if timing["within_window"] else "超出 EXCEEDS"])
    network_keys = sorted({s["network"] for s in members})
    commands = {st: list(dict.fromkeys(c for s in members
                                       for c in stage_commands(estate_arg, s["id"])[st]))
                for st in STAGES}
    return {
        "title": f"迁移批次操作手册 Wave {number} runbook",
        "estate": plan["estate"],
        "as_of": plan["as_of"],
        "plan_digest": plan_digest(plan),
        "number": number,
        "systems": rows,
        "links": [(f"{s['id']} {s['name']}", f"{s['id']}") for s in members],
        "earlier": [[s["id"], s["name"], str(s["wave"])] for s in earlier],
        "networks": _network_rows(plan, network_keys),
        "stages": [{"name": st, "title": STAGE_TITLES[st]} for st in STAGES],
        "commands": commands,
        "initial_copy_minutes": sum(s["estimates"]["initial_copy_minutes"] for s in members),
        "cutover_minutes": sum(s["estimates"]["cutover_minutes"] for s in members),
        "warnings": [w for w in plan["warnings"]
                     if any(w.startswith(f"{s['id']}:") for s in members)],
    }


def index_context(plan: dict, evidence: list[str]) -> dict:
    return {
        "title": f"运行手册目录 Runbooks: {plan['estate']}",
        "estate": plan["estate"],
        "as_of": plan["as_of"],
        "plan_digest": plan_digest(plan),
        "waves": [(f"第{w['number']}批 Wave {w['number']}: {', '.join(w['systems'])}",
                   f"plan/wave-{w['number']}") for w in plan["waves"]],
        "systems": [(f"{s['id']} {s['name']} (wave {s['wave']})", f"plan/{s['id']}")
                    for s in plan["systems"]],
        "evidence": [(sid, f"evidence/{sid}") for sid in evidence],
        "not_planned": [[n["id"], term(DISPOSITION_ZH, n["disposition"]), n["merge_into"] or "",
                         "; ".join(_reason_text(r) for r in n["reasons"])]
                        for n in plan["not_planned"]],
    }


def _reason_text(reason: str) -> str:
    """A census reason without its code prefix (``shadow: ...``)."""
    code, sep, message = str(reason).partition(": ")
    return message if sep and code.isidentifier() else str(reason)


def _write_both(template: str, context: dict, stem: Path, formats: Iterable[str],
                templates_dir: Path) -> list[Path]:
    written = []
    for fmt in formats:
        text = render(template, fmt, {**context, "ext": fmt}, templates_dir)
        written.append(write_text(stem.with_name(f"{stem.name}.{fmt}"), text))
    return written


def write_plan_runbooks(estate: Estate, plan: dict, out_dir: Path, *,
                        estate_arg: str | None = None, formats: Iterable[str] = FORMATS,
                        templates_dir: Path = TEMPLATES_DIR) -> list[Path]:
    """Plan runbooks: ``out_dir/plan/<system>.{md,html}``, ``plan/wave-<n>.*``, ``index.*``."""
    arg = estate_arg or estate.display
    formats = tuple(formats)
    written: list[Path] = []
    for system in plan["systems"]:
        written += _write_both("plan_system.j2", plan_system_context(estate, plan, system, arg),
                               out_dir / "plan" / system["id"], formats, templates_dir)
    for wave in plan["waves"]:
        written += _write_both("plan_wave.j2", plan_wave_context(plan, wave["number"], arg),
                               out_dir / "plan" / f"wave-{wave['number']}", formats,
                               templates_dir)
    evidence = sorted(p.stem for p in (out_dir / "evidence").glob("*.md"))
    written += _write_both("index.j2", index_context(plan, evidence), out_dir / "index",
                           formats, templates_dir)
    return written


# ---------------------------------------------------------------- evidence runbooks


def _pairs(value: object, key: str) -> list[list[str]]:
    """Normalise ``[{key, source, target}]`` or ``{name: {source, target}}`` to rows."""
    items: list[tuple[str, object, object]] = []
    if isinstance(value, dict):
        items = [(str(k), v.get("source"), v.get("target")) for k, v in sorted(value.items())
                 if isinstance(v, dict)]
    elif isinstance(value, list):
        items = [(str(v.get(key, v.get("name", "?"))), v.get("source"), v.get("target"))
                 for v in value if isinstance(v, dict)]
    rows = []
    for name, source, target in items:
        match = "—" if source is None or target is None else _yes_no(source == target)
        rows.append([name, NOT_RECORDED if source is None else str(source),
                     NOT_RECORDED if target is None else str(target), match])
    return rows


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return NOT_RECORDED
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _artifact_links(paths: Iterable[str], state: Path, runbook_dir: Path
                    ) -> list[tuple[str, str | None]]:
    """(text, relative link) of each kept artifact; no link for one that is not there (a
    link that leads nowhere would read as evidence)."""
    links = []
    for raw in paths:
        path = Path(str(raw))
        path = path if path.is_absolute() else state / path
        href = Path(os.path.relpath(path, runbook_dir)).as_posix() if path.exists() else None
        links.append((_with_digest(str(raw), path) if href else str(raw), href))
    return links


def _with_digest(text: str, path: Path) -> str:
    """A kept file's name with its sha256 beside it, so a copy can be checked on its own."""
    return f"{text} · {digest_bytes(path.read_bytes())}" if path.is_file() else f"{text}/"


def _run_artifacts(outputs: dict, stage: str) -> list[str]:
    """What a stage keeps of its run: the run's result, and for a play (migrate.stages.move)
    the play's scrubbed artifacts. A verification runs no play: its checks are in its
    result (migrate.stages.verify), there is no artifacts folder to expect."""
    run_id = outputs.get("run_id")
    if not isinstance(run_id, str):
        return []
    plays = [] if stage in STAGES_WITHOUT_PLAYS else [f"runs/{run_id}/artifacts/{stage}"]
    return [*plays, f"runs/{run_id}/result.json"]


CHECK_RESULTS = {"passed": "pass 通过", "failed": "FAIL 未通过", "error": "FAIL 未通过",
                 "skipped": "skipped 跳过"}


def _check_rows(checks: object) -> list[list[str]]:
    """``outputs.checks``: a list of ``{name, ok, detail}``, or verification's
    ``{check id: {result, time_s}}``."""
    if isinstance(checks, dict):
        return [[name, CHECK_RESULTS.get(str(c.get("result")), str(c.get("result", "?"))),
                 _duration(c.get("time_s"))] for name, c in sorted(checks.items())
                if isinstance(c, dict)]
    return [[str(c.get("name", "?")), "pass 通过" if c.get("ok") else "FAIL 未通过",
             str(c.get("detail", ""))] for c in checks or [] if isinstance(c, dict)]


def _file_comparisons(files: object) -> list[list[str]]:
    """``outputs.files`` of migrate.stages.move: per source host, the sha256 manifests of both
    sides compared (cutover), or rsync's checksums of the files it sent (transfer)."""
    if not isinstance(files, dict):
        return []
    rows = []
    for host, c in sorted(files.items()):
        if isinstance(c, dict) and "sent" in c:
            rows.append([f"{host} → {c.get('target', '?')} ({c['sent']} files sent)",
                         str(c.get("checksums", NOT_RECORDED)),
                         f"{c.get('algorithm', '?')} of each file sent, checked by the receiver",
                         _yes_no(True)])
        elif isinstance(c, dict):
            equal = c.get("equal")
            rows.append([f"{host} → {c.get('target', '?')} ({c.get('files', '?')} files)",
                         str(c.get("manifest", NOT_RECORDED)),
                         "same manifest" if equal else "differs (see the manifests kept)",
                         _yes_no(bool(equal))])
    return rows


def _database_comparisons(databases: object, label: str = "") -> list[list[str]]:
    """``outputs.databases`` of migrate.stages.move: per table, rows and checksum compared
    (entries from before ``target_tables`` was recorded: the source's rows only)."""
    if not isinstance(databases, dict):
        return []
    rows = []
    for name, c in sorted(databases.items()):
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("target_tables"), dict):
            rows += _table_comparisons(f"{label}{name}", c)
            continue
        equal = bool(c.get("equal"))
        for table, sums in sorted((c.get("tables") or {}).items()):
            count = str(sums.get("rows", "?"))
            rows.append([f"{name}.{table}", count, count if equal else "differs",
                         _yes_no(equal)])
        if not c.get("tables"):
            rows.append([name, NOT_RECORDED, NOT_RECORDED, _yes_no(equal)])
    return rows


def _table_comparisons(database: str, c: dict) -> list[list[str]]:
    """Every table of one database, rows and checksum of both sides; the volatile ones shown
    as not compared."""
    here, there = c.get("tables") or {}, c["target_tables"]
    differing = set(c.get("differing") or [])
    left_out = set(c.get("not_compared") or [])
    rows = []
    for table in sorted(set(here) | set(there)):
        match = ("not compared (volatile_tables)" if table in left_out
                 else _yes_no(table not in differing))
        rows.append([f"{database}.{table}", _sums_text(here.get(table)),
                     _sums_text(there.get(table)), match])
    if not rows:
        rows.append([database, NOT_RECORDED, NOT_RECORDED, _yes_no(bool(c.get("equal")))])
    return rows


def _sums_text(sums: object) -> str:
    if not isinstance(sums, dict):
        return "missing 缺失"
    return f"{sums.get('rows', '?')} rows, checksum {sums.get('checksum', '?')}"


# A journal stage that runs several runbook stages: where its comparisons belong.
COMBINED_STAGES = {"transfer": {"files": "transfer_files", "databases": "migrate_database"},
                   "cutover": {"files": "cutover", "databases": "cutover"}}


def _belongs(entry: dict, stage: str) -> bool:
    plays = (entry.get("outputs") or {}).get("plays")
    return entry.get("stage") == stage or (isinstance(plays, dict) and stage in plays)


def _owns(entry: dict, stage: str, kind: str) -> bool:
    owner = COMBINED_STAGES.get(entry.get("stage", ""), {}).get(kind, entry.get("stage"))
    return owner == stage


PLAY_STATUS_ZH = {"successful": "成功", "failed": "失败", "timeout": "超时", "canceled": "已取消"}


def _result_in(entry: dict, stage: str) -> str:
    plays = (entry.get("outputs") or {}).get("plays") or {}
    play = plays.get(stage) if entry.get("stage") != stage else None
    if isinstance(play, dict):
        status = term(PLAY_STATUS_ZH, play.get("status", "?"))
        return f"{status}（由“{stage_title(entry['stage'])}”执行）"
    return result_text(entry["result"])


def stage_evidence(stage: str, entries: list[dict], state: Path, runbook_dir: Path) -> dict:
    """What the journal says about one stage of one system: its own entries, and the entries
    of commands that ran it as a play (``outputs.plays``)."""
    rows, checksums, row_counts, checks, artifacts, errors = [], [], [], [], [], []
    downtime, notes, reasons = None, [], []
    mine = [e for e in entries if _belongs(e, stage)]
    for e in mine:
        rows.append([str(e["seq"]), stage_title(e["stage"]), _result_in(e, stage), who(e),
                     utc_and_cst(e["at"]), _duration(e["duration_s"])])
        outputs = e.get("outputs") or {}
        if _owns(e, stage, "files"):
            checksums += _pairs(outputs.get("checksums"), "path")
            checksums += _file_comparisons(outputs.get("files"))
        if _owns(e, stage, "databases"):
            row_counts += _pairs(outputs.get("row_counts"), "table")
            failed = e.get("result") not in ("ok", "changed")
            row_counts += _database_comparisons(outputs.get("databases"),
                                                f"seq {e['seq']} (failed): " if failed else "")
        if e["stage"] == stage:
            checks += _check_rows(outputs.get("checks"))
        if e["stage"] == stage:
            for key in ("downtime_s", "cutover_play_s"):
                if isinstance(outputs.get(key), int | float) and downtime is None:
                    downtime = outputs[key]
            error = outputs.get("error") or (e.get("details") or {}).get("error")
            if error:
                errors.append(f"seq {e['seq']}: {error}")
            if stage == "rollback":
                reasons.append(f"seq {e['seq']}: {outputs.get('reason') or NO_REASON}")
            rolled = outputs.get("rolled_back")
            if isinstance(rolled, dict):
                notes.append(f"seq {e['seq']}: rolled back by itself, result "
                             f"{rolled.get('result', '?')}")
        kept = outputs.get("artifacts") if e["stage"] == stage else None
        kept = [str(k) for k in kept] if isinstance(kept, list) else []
        artifacts += _artifact_links(kept + _run_artifacts(outputs, stage), state, runbook_dir)
    last = mine[-1] if mine else None
    return {"name": stage, "title": STAGE_TITLES.get(stage, stage), "ran": bool(mine),
            "entries": rows, "result": _result_in(last, stage) if last else NOT_RECORDED,
            "checksums": checksums, "row_counts": row_counts, "checks": checks,
            "downtime": _duration(downtime) if downtime is not None else None,
            "artifacts": [(text, href) for text, href in artifacts if href],
            "missing_artifacts": [text for text, href in artifacts if not href],
            "errors": errors + notes, "reasons": reasons}


def evidence_context(estate_title: str, plan: dict, system: dict, entries: list[dict],
                     verification: Verification, state: Path, runbook_dir: Path) -> dict:
    sid = system["id"]
    mine = [e for e in entries if e.get("system") == sid]
    stages = [stage_evidence(st, mine, state, runbook_dir) for st in STAGES]
    covered = {e["stage"] for e in mine if any(_belongs(e, st) for st in STAGES)}
    other = sorted({e["stage"] for e in mine} - covered)
    stages += [stage_evidence(st, mine, state, runbook_dir) for st in other]
    seal = entries[-1] if entries else None
    cutover = next(s for s in stages if s["name"] == "cutover")
    return {
        "title": f"迁移证据 Evidence runbook: {system['name']} ({sid})",
        "estate": estate_title,
        "system": system,
        "plan_digest": plan_digest(plan),
        "as_of": utc_and_cst(seal["at"]) if seal else NOT_RECORDED,
        "stages": stages,
        "timeline": [[str(e["seq"]), stage_title(e["stage"]), result_text(e["result"]), who(e),
                      utc_and_cst(e["at"]), _duration(e["duration_s"])] for e in mine],
        "downtime": cutover["downtime"] or NOT_RECORDED,
        "max_downtime_minutes": system["max_downtime_minutes"],
        "seal": {"seq": str(seal["seq"]) if seal else NOT_RECORDED,
                 "hash": seal["hash"] if seal else NOT_RECORDED,
                 "at": utc_and_cst(seal["at"]) if seal else NOT_RECORDED,
                 "system_entries": str(len(mine)),
                 "last_system_hash": mine[-1]["hash"] if mine else NOT_RECORDED},
        "audit": audit_fields(verification),
    }


def audit_fields(verification: Verification) -> dict:
    """What the documents say about the journal's verification."""
    return {"ok": verification.ok, "entries": str(verification.entries),
            "last_hash": verification.last_hash or NOT_RECORDED,
            "problem": verification.problem or "", "check": verification.check or "",
            "status": verification.status, "key_id": verification.key_id or NOT_RECORDED,
            "checkpoints": str(verification.checkpoints),
            "warnings": list(verification.warnings),
            "summary": verification_summary(verification)}


def verify_for(journal: Journal) -> Verification:
    """``migrate audit verify`` on this journal, without creating its identity file."""
    return journal.verify()


def write_evidence_runbooks(estate: Estate, plan: dict, journal: Journal, out_dir: Path, *,
                            systems: Iterable[str] | None = None,
                            formats: Iterable[str] = FORMATS,
                            templates_dir: Path = TEMPLATES_DIR,
                            artifacts_dir: Path | None = None,
                            verification: Verification | None = None) -> list[Path]:
    """Evidence runbooks: ``out_dir/evidence/<system>.{md,html}`` for each planned system
    (or those chosen), from the journal as it is now, sealed by its last entry's hash.
    Artifact links are relative, to ``artifacts_dir`` (default: the state folder, where
    they are kept; an evidence bundle passes its own copy)."""
    entries = list(journal.entries())
    verification = verification or verify_for(journal)
    state = (artifacts_dir or journal.state_dir).resolve()
    chosen = set(systems) if systems is not None else None
    formats = tuple(formats)
    written: list[Path] = []
    for system in plan["systems"]:
        if chosen is not None and system["id"] not in chosen:
            continue
        stem = out_dir / "evidence" / system["id"]
        context = evidence_context(estate.settings.estate, plan, system, entries, verification,
                                   state, stem.parent.resolve())
        written += _write_both("evidence_system.j2", context, stem, formats, templates_dir)
    evidence = sorted(p.stem for p in (out_dir / "evidence").glob("*.md"))
    written += _write_both("index.j2", index_context(plan, evidence), out_dir / "index",
                           formats, templates_dir)
    return written


def default_runbooks_dir(estate: Estate) -> Path:
    """Where ``migrate runbook`` writes by default: ``runbooks/`` beside the manifests, so the
    estate's repository keeps them next to what they describe."""
    return estate.root / "runbooks"


def write_runbooks(estate: Estate, plan: dict, journal: Journal, out_dir: Path, *,
                   estate_arg: str | None = None, formats: Iterable[str] = FORMATS,
                   artifacts_dir: Path | None = None,
                   verification: Verification | None = None) -> list[Path]:
    """Plan runbooks, then evidence runbooks for every planned system (stages that have not
    run read "not recorded"), then the index listing both."""
    formats = tuple(formats)
    written = write_plan_runbooks(estate, plan, out_dir, estate_arg=estate_arg, formats=formats)
    return written + write_evidence_runbooks(estate, plan, journal, out_dir, formats=formats,
                                             artifacts_dir=artifacts_dir,
                                             verification=verification)


def cited_artifacts(entries: Iterable[dict]) -> list[str]:
    """Every kept file or folder the evidence runbooks link to, relative to the state folder
    (absolute paths outside it are left out: they are not the estate's to hand over)."""
    cited: list[str] = []
    for e in entries:
        outputs = e.get("outputs") or {}
        kept = outputs.get("artifacts")
        cited += [str(k) for k in kept if not Path(str(k)).is_absolute()] \
            if isinstance(kept, list) else []
        stages = [e.get("stage", ""), *((outputs.get("plays") or {}).keys())]
        for stage in stages:
            cited += _run_artifacts(outputs, stage)
    return list(dict.fromkeys(cited))
