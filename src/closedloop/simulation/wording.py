"""What the people of the simulation write: report details, reasons, results.

Short bilingual phrases, so the audit trail of a simulated case reads like a real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DETAILS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "01": (
            "盖板破损 cover cracked",
            "井盖缺失 cover missing",
            "堵塞积水 blocked, water standing",
            "松动有响声 loose and rattling",
        ),
        "02": (
            "垃圾袋堆在公交站旁 bags piled by the bus stop",
            "施工渣土倒在路边 spoil dumped on the verge",
            "路面泥泞 mud across the road",
            "垃圾满溢 bins overflowing",
        ),
        "03": (
            "路灯不亮 lamp out",
            "路灯闪烁 lamps flickering",
            "人行道砖松动 paving slabs loose",
            "路面坑洼 potholes on the pavement",
        ),
        "04": (
            "枯枝悬挂 dead branch hanging over the path",
            "树木倾斜 tree leaning after the storm",
            "绿地杂草丛生 weeds and litter on the lawn",
        ),
        "05": (
            "流动摊贩占道 street stall on the pavement",
            "店外摆卖 goods displayed on the footway",
            "小广告张贴 flyers pasted on lamp posts",
            "墙面喷涂电话号码 phone numbers sprayed on walls",
        ),
    }
)
"""Details of a report by top-level category code."""

QUESTIONS = (
    "垃圾分类投放时间是几点？ When may sorted rubbish be put out?",
    "占道施工许可在哪里办？ Where is a road-works permit issued?",
    "停水通知在哪里看？ Where are water cuts announced?",
)
OUT_OF_SCOPE = (
    "邻里纠纷 a private quarrel between neighbours",
    "商品质量投诉 a complaint about a product bought online",
)
EVIDENCE = {
    "wrong_function": "不属于本单位职能 not one of our functions; see our remit",
    "wrong_area": "位置不在本单位辖区 the spot is outside the area we serve",
    "ownership_unclear": "设施权属不明 no register shows who owns this facility",
    "other": "需其他单位处置 another unit holds the equipment for this",
}
RESULTS = (
    "已处置完毕，附现场照片 done, photos attached",
    "已更换并复查 replaced and checked",
    "已清理 cleared",
    "已整改到位 put right",
)


def description(category_name: str, detail: str, grid_name: str) -> str:
    """The text a reporter gives: what, where."""
    return f"{category_name}: {detail} ({grid_name})"


def detail_choices(category: str) -> tuple[str, ...]:
    """The details that fit ``category`` (its top-level code decides)."""
    return DETAILS.get(category.split(".")[0], ("需要处理 needs attention",))
