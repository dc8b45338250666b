"""The reason codes a quarantined row can carry, in the order they are reported.

The rule values are the settings' quality group (settings.QualityRules); the suite (freshrec.expectations) states
each row rule once with its reason code; freshrec.quality applies the suite to a batch. See docs/data-quality.md.
"""

from __future__ import annotations

BATCH_REJECTED = "batch_rejected"
STRICT_GATE_FAILED = "strict_gate_failed"


# Reason codes, in the order they are reported. Each row code is stated by one expectation of the suite
# (expectations.build_suite); the last two are batch verdicts that freshrec.quality adds to every row.
REASONS = ["null_user_id", "null_item_id", "null_event_type", "null_label", "null_occurred_at", "bad_user_id",
           "unknown_event_type", "bad_label", "dwell_out_of_range", "future_timestamp", "implausible_timestamp",
           "oversized_field", "unknown_item", "duplicate", "near_duplicate", "bot_user", STRICT_GATE_FAILED,
           BATCH_REJECTED]
