"""The district example runs as a user would run it, and routes every report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "district" / "route_reports.py"


def test_route_reports_prints_a_unit_and_a_reason_for_every_report() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("    -> ") == 21
    assert "-> YS-WATER 云杉水务有限公司 Yunshan Water Co., Ltd. (by E-0101)" in out
    assert "-> MJ-STREET 明镜街道办事处 Mingjing Street Office (by E-02-S1)" in out
    assert "-> YS-ROADS" in out
    assert "-> YS-LIGHT" in out
    assert "(by FB-S2)  [GAP]" in out
    assert "Entry E-0101 decides: lead unit YS-WATER" in out
    assert "01.04 消防栓 in D1.S2.C4.G07" in out
