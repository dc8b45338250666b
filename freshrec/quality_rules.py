"""The data-quality rules: the values a pulled batch is checked against, and the reason codes it can earn.

steps.quality_rules builds QualityRules from the settings; the suite (freshrec.expectations) states each row
rule once with its reason code; freshrec.quality applies the suite to a batch. See docs/data-quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS

BATCH_REJECTED = "batch_rejected"
STRICT_GATE_FAILED = "strict_gate_failed"


@dataclass(frozen=True)
class QualityRules:
    event_types: tuple[str, ...]
    max_dwell_ms: int
    clock_skew_s: float
    duplicate_window_s: float
    bot_events_per_minute: int
    batch_reject_share: float
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    # Earliest plausible occurred_at: catches the zero-epoch (1970) and 1900 bugs and '-infinity'.
    min_occurred_at: datetime = datetime(1990, 1, 1, tzinfo=timezone.utc)


# Reason codes, in the order they are reported. Each row code is stated by one expectation of the suite
# (expectations.build_suite); the last two are batch verdicts that freshrec.quality adds to every row.
REASONS = ["null_user_id", "null_item_id", "null_event_type", "null_label", "null_occurred_at", "bad_user_id",
           "unknown_event_type", "bad_label", "dwell_out_of_range", "future_timestamp", "implausible_timestamp",
           "oversized_field", "unknown_item", "duplicate", "near_duplicate", "bot_user", STRICT_GATE_FAILED,
           BATCH_REJECTED]
