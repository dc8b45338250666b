"""The README is the front page: its commands are what CI runs, its settings table is complete, its links work."""

import re
from pathlib import Path

from freshrec.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest'
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/freshrec demo"


def section(title: str) -> str:
    """The text of the README's '## title' section, up to the next '## ' heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def shell_lines(text: str) -> list[str]:
    """The lines of the ```bash blocks in text, without comments and blank lines."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    return [ln.strip() for block in blocks for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_two_commands_are_the_readmes_and_the_test_command_is_what_ci_runs():
    assert shell_lines(section("Two commands")) == [DEMO_COMMAND, TEST_COMMAND]
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert ci[-1] == TEST_COMMAND, "the last command of .ci/run must be the README's test command"


def test_settings_table_lists_every_setting_and_only_real_ones():
    table = [ln for ln in section("Settings").splitlines() if ln.startswith("| `")]
    listed = {name for row in table for name in re.findall(r"`(FRESHREC_[A-Z0-9_]+)`", row.split(" | ")[0])}
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert fields - listed == set(), "settings missing from the README's settings table"
    # A variable that is not a Settings field must still be read somewhere (e.g. FRESHREC_VERBOSE by the CLI).
    sources = "\n".join(p.read_text() for package in ("freshrec", "freshrec_cli", "tasks", "flows")
                        for p in (ROOT / package).rglob("*.py"))
    stale = {name for name in listed - fields if f'"{name}"' not in sources}
    assert stale == set(), "the README's settings table lists variables nothing reads"


def test_every_local_link_in_the_readme_points_to_a_file():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = {t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")}
    assert {t for t in local if t.startswith("docs/")}, "the README links no page under docs/"
    missing = sorted(t for t in local if not (ROOT / t).is_file())
    assert missing == [], f"README links to missing files: {missing}"


def test_settings_table_defaults_are_the_code_defaults():
    """Rows whose default cell is a plain value (one per variable) must show Settings' default."""
    import json

    checked = 0
    for row in (ln for ln in section("Settings").splitlines() if ln.startswith("| `")):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        names = re.findall(r"`(FRESHREC_[A-Z0-9_]+)`", cells[0])
        values = [v.strip().strip("`") for v in re.split(r",\s+(?![^\[]*\])", cells[1])]
        if len(values) != len(names):
            continue  # a description, not one value per variable
        for name, shown in zip(names, values):
            field = Settings.model_fields.get(name[len(ENV_PREFIX):].lower())
            if field is None or field.default is None or "dict" in str(field.annotation):
                continue  # unset by default, or described in words (the publish thresholds)
            default = field.default
            if isinstance(default, bool):
                assert shown == str(default).lower(), name
            elif isinstance(default, (int, float)):
                assert float(shown) == float(default), name
            elif isinstance(default, (list, tuple)):
                assert json.loads(shown) == list(default), name
            elif not isinstance(default, dict):
                assert shown == str(default), name
            checked += 1
    assert checked >= 30  # most rows are plain values: the parsing above still reads them
