"""The reason codes: unique, batch verdicts last, every code documented in its order."""

import re
from pathlib import Path

import pytest

from freshrec.reasons import BATCH_REJECTED, REASONS, STRICT_GATE_FAILED

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_reason_codes_are_unique_batch_verdicts_last_and_documented_in_order():
    assert len(set(REASONS)) == len(REASONS)
    assert REASONS[-2:] == [STRICT_GATE_FAILED, BATCH_REJECTED]
    doc = (ROOT / "docs" / "data-quality.md").read_text(encoding="utf-8")
    section = re.search(r"^## Reason codes\n(.*?)A row can carry several", doc, flags=re.M | re.S).group(1)
    assert re.findall(r"`([a-z_]+)`", section) == REASONS
