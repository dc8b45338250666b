"""The rule values and the reason codes: one hashable rule set, every code documented in its order."""

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS
from freshrec.quality_rules import BATCH_REJECTED, REASONS, STRICT_GATE_FAILED, QualityRules

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_rules_are_an_immutable_cache_key():
    # The GX contexts are cached per rule set: equal settings must give equal, hashable, unchangeable rules.
    a = QualityRules(event_types=("click", "skip"), max_dwell_ms=60_000, bot_events_per_minute=30)
    b = QualityRules(event_types=("click", "skip"), max_dwell_ms=60_000, bot_events_per_minute=30)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != a.model_copy(update={"batch_reject_share": 0.4})
    with pytest.raises(ValidationError):  # frozen
        a.max_dwell_ms = 1


@pytest.mark.unit
def test_default_limits_match_the_pull():
    rules = QualityRules(event_types=("click",), max_dwell_ms=60_000, bot_events_per_minute=30)
    # The pull cuts text to max_field_chars + 1 characters: the default rule sees a cut value as too long.
    assert rules.max_field_chars == DEFAULT_MAX_FIELD_CHARS
    assert rules.min_occurred_at == datetime(1990, 1, 1, tzinfo=timezone.utc)


@pytest.mark.unit
def test_reason_codes_are_unique_batch_verdicts_last_and_documented_in_order():
    assert len(set(REASONS)) == len(REASONS)
    assert REASONS[-2:] == [STRICT_GATE_FAILED, BATCH_REJECTED]
    doc = (ROOT / "docs" / "data-quality.md").read_text(encoding="utf-8")
    section = re.search(r"^## Reason codes\n(.*?)A row can carry several", doc, flags=re.M | re.S).group(1)
    assert re.findall(r"`([a-z_]+)`", section) == REASONS
