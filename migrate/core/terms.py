"""The Chinese terms documents show for the project's codes, one term per concept (the
government's: 自查、清理、整合、接入、共享), and times in UTC beside China Standard Time.

Documents print the term, never the code; JSON and CSV keep the codes (machines read those).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from migrate.core.census import DISPOSITION_ZH

CST = timezone(timedelta(hours=8), "CST")

STAGE_ZH = {
    "genesis": "日志创建", "signing_begins": "开始签名", "census": "自查", "plan": "迁移计划",
    "check_prerequisites": "前置检查", "preview": "资源预览", "provision": "资源开通",
    "preflight": "云资源预检", "prepare_target": "目标准备", "transfer": "数据迁移",
    "transfer_files": "文件迁移",
    "migrate_database": "数据库迁移", "cutover": "业务切换", "verify": "验证",
    "rollback": "回退", "decommission_source": "源端下线", "register": "接入共享平台",
    "destroy": "资源释放", "runbook": "生成手册", "report": "生成报告", "run": "整体运行",
    "evidence": "导出证据",
}
RESULT_ZH = {"ok": "成功", "changed": "成功（有变更）", "unchanged": "成功（无变更）",
             "failed": "失败", "check": "演练（未变更）", "check_failed": "演练失败"}
PROGRESS_ZH = {"planned": "计划迁移", "not_started": "未开始", "provisioned": "已开通",
               "transferred": "已迁移数据", "cut_over": "已切换", "verified": "已验证",
               "rolled_back": "已回退", "failed": "失败", "decommissioned": "源端已下线"}
SHARE_ZH = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
ZONE_ZH = {"internet": "互联网区", "egov_extranet": "政务外网区"}
NETWORK_ZH = {"egov_extranet": "政务外网", "internet": "互联网", "department_private": "部门专网"}
USAGE_SCOPE_ZH = {"public": "面向公众", "cross_department": "跨部门", "department": "本部门",
                  "internal": "内部科室"}
FUNDING_ZH = {"fiscal": "财政资金", "self_raised": "自筹资金", "purchased_service": "购买服务",
              "other": "其他"}
MERGE_ZH = DISPOSITION_ZH
CLASSIFICATION_ZH = {"classified": "涉密", "non_classified": "非涉密"}


def term(table: dict[str, str], code: object) -> str:
    """The term for ``code``; a code the table lacks is shown as it is (never hidden)."""
    return table.get(str(code), str(code))


def stage_title(stage: str) -> str:
    return term(STAGE_ZH, stage)


def result_text(result: str) -> str:
    return term(RESULT_ZH, result)


def utc_and_cst(at: object) -> str:
    """``2026-11-20T01:00:00.000Z`` as ``2026-11-20 01:00:00 UTC（北京时间 09:00:00）``, with
    the date too when it differs in Beijing."""
    text = str(at)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    utc = moment.astimezone(UTC)
    cst = moment.astimezone(CST)
    local = cst.strftime("%H:%M:%S") if cst.date() == utc.date() \
        else cst.strftime("%Y-%m-%d %H:%M:%S")
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC（北京时间 {local}）"


def who(entry: dict) -> str:
    """The named operator, with the login beside it; entries before operators were named
    (``actor``) or without a name show the login and say so."""
    login = entry.get("login") or entry.get("actor") or "?"
    name = entry.get("operator")
    return f"{name}（{login}）" if name else f"未具名操作员（{login}）"

DIRECTION_ZH = {"ingress": "入方向", "egress": "出方向"}
RULE_ORIGIN_ZH = {"management": "运维管理", "migration": "迁移（临时）",
                  "interconnection": "系统互联", "metadata": "云平台元数据服务",
                  "dns": "域名解析", "ntp": "时间同步", "packages": "软件包镜像源"}
COPY_METHOD_ZH = {"final_dump": "切换时导出导入", "logical_replication": "逻辑复制",
                  "binlog_replication": "主从复制（binlog）"}
HOLDS_ZH = {"files": "文件", "databases": "数据库", "boot": "系统盘"}
CLOUD_TARGET_ZH = {"sandbox": "本地演练环境", "openstack": "电子政务云（OpenStack）"}


def rule_origin(origin: str) -> str:
    """Where a security rule comes from; ``target.flows[n]`` is a business flow."""
    if origin.startswith("target.flows["):
        return "业务访问 " + origin.removeprefix("target.")
    return term(RULE_ORIGIN_ZH, origin)
