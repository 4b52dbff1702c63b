"""The console's labels in Chinese and English, from one catalogue.

Every label the console shows is a key here with both languages; a test holds the
catalogue complete. State and trigger names are shown by their labels where the
standard workflow's are listed, else by their own names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

LANGUAGES = ("zh", "en")

CATALOGUE: Mapping[str, tuple[str, str]] = {
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "sign_in_as": ("选择身份登录", "Sign in as"),
    "inbox": ("待办", "Inbox"),
    "board": ("督办看板", "Supervision board"),
    "report": ("上报", "Report"),
    "new_report": ("新的上报", "New report"),
    "case": ("工单", "Case"),
    "state": ("状态", "State"),
    "description": ("描述", "Description"),
    "address": ("地址", "Address"),
    "area": ("网格", "Grid"),
    "category": ("类别", "Category"),
    "lead_unit": ("承办单位", "Lead unit"),
    "reported_at": ("上报时间", "Reported"),
    "due_at": ("办理时限", "Due"),
    "light": ("预警", "Light"),
    "clock": ("时限", "Clock"),
    "history": ("处理记录", "History"),
    "actions": ("可办理的操作", "Actions"),
    "no_actions": ("当前没有可办理的操作", "Nothing to do here now"),
    "contact": ("联系人", "Contact"),
    "empty_inbox": ("没有待办工单", "No case is waiting on you"),
    "at": ("时间", "When"),
    "who": ("操作人", "Who"),
    "trigger": ("操作", "Action"),
    "submit": ("提交", "Submit"),
    "unit": ("单位", "Unit"),
    "open": ("在办", "Open"),
    "yellow": ("黄灯", "Yellow"),
    "red": ("红灯", "Red"),
    "supervised": ("督办", "Supervised"),
    "overdue": ("超期", "Overdue"),
    "total": ("合计", "Total"),
    "error": ("未能完成", "Could not do that"),
    "stale_form": (
        "工单在此页面打开后已有变化，操作未执行；以下为最新内容",
        "the case changed after this page was loaded, so nothing was done; here it is now",
    ),
    "back": ("返回", "Back"),
    "language": ("English", "中文"),
    "paused": ("暂停", "Paused"),
    "none": ("无", "none"),
    "signed_in_as": ("当前身份", "Signed in as"),
    "chart": ("红黄灯分布", "Lights by unit"),
}
"""Each label as (Chinese, English)."""

NAMES: Mapping[str, tuple[str, str]] = {
    "reported": ("已上报", "reported"),
    "classified": ("已分类", "classified"),
    "assigned": ("已派单", "assigned"),
    "returned": ("已退单", "returned"),
    "arbitration": ("仲裁中", "in arbitration"),
    "in_progress": ("办理中", "in progress"),
    "handled": ("已办结", "handled"),
    "awaiting_confirmation": ("待回访确认", "awaiting confirmation"),
    "closed": ("已关闭", "closed"),
    "rejected": ("不予受理", "rejected"),
    "merged": ("已合并", "merged"),
    "cancelled": ("已撤销", "cancelled"),
    "classify": ("分类", "classify"),
    "dispatch": ("派单", "dispatch"),
    "accept": ("签收", "accept"),
    "return": ("退单", "return"),
    "submit_result": ("提交办理结果", "submit result"),
    "feedback": ("反馈", "feed back"),
    "confirm": ("确认", "confirm"),
    "reject": ("不予受理", "reject"),
    "merge": ("合并", "merge"),
    "answer": ("直接答复", "answer"),
}
"""The standard workflow's states and triggers, as (Chinese, English)."""


def translator(language: str) -> Callable[[str], str]:
    """The label of a key (or a state or trigger name) in ``language``."""
    index = LANGUAGES.index(language) if language in LANGUAGES else 0

    def label(key: str) -> str:
        found = CATALOGUE.get(key) or NAMES.get(key)
        return found[index] if found else key

    return label
