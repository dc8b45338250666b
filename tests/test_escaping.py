"""Values from the data reach Markdown artifacts as plain text: no HTML, no links, no new table rows."""

import pytest

from freshrec.cycles import CycleSummary
from freshrec.escaping import html_safe_category, markdown_text
from freshrec.summary import summary_markdown

HOSTILE = "</script><script>alert(1)</script> [click](javascript:alert(1)) | x |\n| injected | row |"


@pytest.mark.unit
def test_markdown_text_is_inert():
    text = markdown_text(HOSTILE)
    assert "<" not in text and ">" not in text and "\n" not in text
    assert "](" not in text and "[click]" not in text  # brackets escaped: no link
    assert "|" not in text.replace("\\|", "")          # every pipe escaped: no new cells


@pytest.mark.unit
def test_cycle_summary_markdown_escapes_data_values():
    s = CycleSummary(7, "completed", "c", "cycle 7: " + HOSTILE, quarantine_reasons={HOSTILE: 3},
                     decision={"published": False, "reasons": [HOSTILE]}, drift={"status": "measured", "note": HOSTILE})
    md = summary_markdown(s)
    assert "<script>" not in md and "](javascript" not in md
    assert "\n| injected | row |" not in md


@pytest.mark.unit
def test_html_safe_category_is_one_to_one():
    values = ["a&lt;b", "a<b", "a\nb", "a&#10;b", "plain", "", None, 3]
    escaped = [html_safe_category(v) for v in values]
    assert len(set(map(repr, escaped))) == len(values)
    assert escaped[4] == "plain" and escaped[6] is None and escaped[7] == 3
