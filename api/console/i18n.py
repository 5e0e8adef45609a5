"""The console's message catalogue: Simplified Chinese by default, English on request (`?lang=en`, a cookie)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"
COOKIE = "mw_lang"

# key -> (zh, en). Keys are the English text's gist; templates call t("key").
_MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("矿山安全监测预警平台", "Minewatch console"),
    "overview": ("总览", "Overview"),
    "cases": ("督办案件", "Cases"),
    "case": ("督办案件", "Case"),
    "mine": ("矿山", "Mine"),
    "mines": ("矿山", "Mines"),
    "history": ("超限历史", "Exceedance history"),
    "api_docs": ("接口文档", "API docs"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_credentials": ("用户名或密码错误", "Wrong user name or password"),
    "throttled": ("登录失败次数过多，请15分钟后再试", "Too many failed sign-ins; try again in 15 minutes"),
    "csrf_failed": ("表单已过期或来源不明（CSRF校验失败），请刷新页面后重试",
                    "The form expired or did not come from this console (CSRF check failed); reload and retry"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "role_mine": ("矿山用户", "mine user"), "role_county": ("县级监管", "county regulator"),
    "role_city": ("市级监管", "city regulator"), "role_province": ("省级监管", "province regulator"),
    "role_admin": ("管理员", "administrator"),
    "state": ("状态", "State"),
    "status_normal": ("正常", "normal"), "status_warning": ("报警", "warning"),
    "status_under_order": ("停产整顿", "under order"), "status_offline": ("离线", "offline"),
    "open_cases": ("未办结案件", "Open cases"),
    "open_cases_by_level": ("各级督办中的案件", "Open cases by supervising level"),
    "overdue": ("已超期", "overdue"),
    "overdue_first": ("超期案件优先", "Overdue cases first"),
    "map": ("矿山分布", "Map"),
    "no_coordinates": ("所辖矿山均无坐标，不显示地图", "No mine in scope has coordinates; no map"),
    "code": ("编码", "Code"), "name": ("名称", "Name"), "kind": ("类型", "Kind"),
    "county": ("县", "County"),
    "level": ("级别", "Level"), "rule": ("规则", "Rule"), "opened_at": ("立案时间", "Opened"),
    "deadline": ("整改期限", "Deadline"), "title": ("标题", "Title"),
    "level_mine": ("矿级", "mine"), "level_county": ("县级", "county"), "level_city": ("市级", "city"),
    "level_province": ("省级", "province"),
    "cs_open": ("待叫应", "open"), "cs_acknowledged": ("已叫应", "acknowledged"),
    "cs_rectifying": ("整改中", "rectifying"), "cs_rectified": ("待验收", "rectified"),
    "cs_verified": ("已验收", "verified"), "cs_closed": ("已销号", "closed"),
    "live_gases": ("实时气体监测", "Live gas readings"),
    "refreshes": ("每5秒自动刷新", "refreshes every 5 s"),
    "as_of": ("数据时间", "as of"),
    "point": ("测点", "Point"), "location": ("位置", "Location"), "value": ("当前值", "Value"),
    "thresholds": ("阈值", "Thresholds"), "alarm": ("报警", "alarm"), "power_off": ("断电", "power off"),
    "no_readings": ("近30分钟无数据", "no readings in the last 30 minutes"),
    "no_evidence_readings": ("该时段无读数", "no readings in this window"),
    "os_active": ("执行中", "active"), "os_awaiting_verification": ("待验收", "awaiting verification"),
    "os_lifted": ("已解除", "lifted"),
    "personnel": ("井下人员", "Personnel underground"),
    "area": ("区域", "Area"), "count": ("人数", "Count"), "approved": ("核定人数", "Approved"),
    "total": ("合计", "Total"), "over_limit": ("超员", "over limit"),
    "active_order": ("停产整顿指令", "Shutdown order"), "no_order": ("无在执行的停产指令", "No order in force"),
    "min_end": ("最早解除时间", "Minimum end"), "start": ("开始", "Start"), "end": ("结束", "End"),
    "findings": ("发现的问题", "Findings"), "evidence": ("证据", "Evidence"),
    "measures": ("四项措施", "The four measures"),
    "m_power_off_evacuate": ("停电撤人", "power off and evacuate"),
    "m_analyse_cause": ("分析原因", "analyse the cause"),
    "m_stop_rectify": ("停产整改", "stop and rectify"),
    "m_hold_accountable": ("追究责任", "hold accountable"),
    "recorded": ("已落实", "recorded"), "missing": ("未落实", "missing"), "by_data": ("数据确认", "by data"),
    "record": ("登记", "Record"), "note": ("说明", "Note"),
    "full_history": ("办理记录", "History"), "actor": ("办理人", "Actor"), "action": ("操作", "Action"),
    "comment": ("意见", "Comment"), "at": ("时间", "At"),
    "notifications": ("通知及送达", "Notifications and delivery"), "receiver": ("接收人", "Receiver"),
    "channel": ("渠道", "Channel"), "attempts": ("尝试次数", "Attempts"), "delivered_at": ("送达时间", "Delivered"),
    "actions": ("可办理的操作", "Actions you may take"),
    "no_actions": ("当前状态下您无可办理的操作", "Nothing for you to do in this state"),
    "a_acknowledge": ("叫应", "Acknowledge"), "a_plan": ("制定整改方案", "Plan"),
    "a_submit": ("提交整改材料", "Submit"), "a_verify": ("验收通过", "Verify"),
    "a_reject": ("退回", "Refuse"), "a_close": ("销号", "Close"), "a_measure": ("四项措施", "Measure"),
    "refused_403": ("无权办理（403）", "Not allowed (403)"),
    "refused_409": ("当前状态不能办理（409）", "Not in this state (409)"),
    "refused_422": ("请求不完整（422）", "Incomplete request (422)"),
    "refused_404": ("未找到（404）", "Not found (404)"),
    "done": ("已办理", "Done"),
    "filter": ("筛选", "Filter"), "all": ("全部", "all"), "since": ("起", "Since"), "until": ("止", "Until"),
    "gas": ("气体", "Gas"), "peak": ("峰值", "Peak"), "episodes": ("测点超限段", "Episodes"),
    "export_csv": ("导出CSV", "Export CSV"), "export_xlsx": ("导出Excel", "Export XLSX"),
    "no_rows": ("无记录", "Nothing to show"),
    "ongoing": ("持续中", "ongoing"),
    "not_found": ("未找到，或不在您的管辖范围内", "Not found, or outside your scope"),
    "withdrawn": ("已撤销", "withdrawn"),
    "language": ("English", "中文"),
    "view": ("查看", "Open"),
    "first_rows": ("问题矿山优先，显示前", "problems first, showing the first"),
    "show_all": ("显示全部", "show all"),
    "more_cases": ("更多案件", "more cases"),
    "board_page": ("第", "page"),
    "newest_only": ("仅显示最近200条；更早的记录请用筛选或导出", "Showing the newest 200; filter or export for older ones"),
    "demo": ("演示", "demo"),
}


def translator(lang: Lang) -> Callable[[str], str]:
    """`t(key)` for one language; an unknown key shows itself, so a gap is visible, not fatal."""
    index = LANGS.index(lang)

    def t(key: str) -> str:
        pair = _MESSAGES.get(key)
        return pair[index] if pair else key

    return t


def pick(query: str | None, cookie: str | None) -> Lang:
    """The language asked for by the query (`?lang=`), else the cookie, else Chinese."""
    for value in (query, cookie):
        if value in LANGS:
            return value  # type: ignore[return-value]
    return DEFAULT_LANG
