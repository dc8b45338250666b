"""Settings are checked when loaded: a mistake is one line and exit code 2 from every command, before any work.
The groups are frozen: the quality rules are a cache key."""

import os
from datetime import datetime, timezone
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from freshrec.errors import ConfigError
from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS
from freshrec.settings import QualityRules, load_settings
from freshrec.settings_checks import evidently_stattests

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"  # never reached: the settings fail first


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
    return subprocess.run([sys.executable, "-m", "freshrec_cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    return f


# (case, environment, fragments the one line must contain)
BAD_SETTINGS = [
    ("thresholds not JSON", {"FRESHREC_PUBLISH_THRESHOLDS": "[{metric: auc"},
     ["FRESHREC_PUBLISH_THRESHOLDS", "not valid JSON"]),
    ("thresholds an object", {"FRESHREC_PUBLISH_THRESHOLDS": '{"metric": "auc"}'},
     ["FRESHREC_PUBLISH_THRESHOLDS", "valid list"]),
    ("threshold value 'high'", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": "high"}]'},
     ["FRESHREC_PUBLISH_THRESHOLDS", "entry 0, value", "valid number"]),
    ("unknown metric", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "f1", "value": 0.5}]'},
     ["entry 0, metric", "ndcg_at_10"]),
    ("misspelt key", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "valeu": 0.5}]'},
     ["entry 0, valeu", "not permitted"]),
    ("direction a string", {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "higher_is_better": "yes"}]'},
     ["higher_is_better", "valid boolean"]),
    ("event types not JSON", {"FRESHREC_EVENT_TYPES": "click,skip"},
     ["FRESHREC_EVENT_TYPES", "not valid JSON", '["click"']),
    ("event types empty", {"FRESHREC_EVENT_TYPES": "[]"}, ["FRESHREC_EVENT_TYPES", "at least 1"]),
    ("blank event type", {"FRESHREC_EVENT_TYPES": '["click", " "]'}, ["FRESHREC_EVENT_TYPES", "blank"]),
    ("numeric drift method for categories", {"FRESHREC_DRIFT_CAT_METHOD": "ks"},
     ["FRESHREC_DRIFT_CAT_METHOD", "no categorical drift method 'ks'", "chisquare"]),
    ("unknown drift method", {"FRESHREC_DRIFT_NUM_METHOD": "kolmogorov"},
     ["FRESHREC_DRIFT_NUM_METHOD", "'kolmogorov'", "wasserstein"]),
]


@pytest.mark.unit
@pytest.mark.parametrize("case, env, fragments", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_bad_setting_is_one_sentence_naming_the_variable(monkeypatch, case, env, fragments):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (case, message)


@pytest.mark.unit
def test_good_settings_still_load(monkeypatch):
    monkeypatch.setenv("FRESHREC_PUBLISH_THRESHOLDS", '[{"metric": "ndcg_at_10", "value": 0.1, "change": -0.02}, '
                       '{"metric": "logloss", "higher_is_better": false, "change": 0}]')
    monkeypatch.setenv("FRESHREC_DRIFT_NUM_METHOD", "psi")
    monkeypatch.setenv("FRESHREC_DRIFT_CAT_METHOD", "jensenshannon")
    s = load_settings()
    assert s.publish_thresholds[0]["metric"] == "ndcg_at_10" and s.drift_num_method == "psi"


@pytest.mark.unit
def test_drift_methods_are_the_installed_evidentlys():
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    numerical, categorical = evidently_stattests("numerical"), evidently_stattests("categorical")
    assert {"ks", "wasserstein", "psi"} <= set(numerical) and {"chisquare", "jensenshannon"} <= set(categorical)
    for name in numerical:  # Evidently itself accepts every name we accept
        get_stattest(None, None, ColumnType.Numerical, name)
    assert "chisquare" not in numerical


@pytest.mark.unit
def test_model_folder_needs_config_and_tokenizer(monkeypatch, tmp_path):
    from freshrec.model import minilm_path

    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setenv("FRESHREC_MODEL", str(folder))
    with pytest.raises(ConfigError, match="has no config.json"):
        load_settings()
    (folder / "config.json").write_text((minilm_path() / "config.json").read_text())
    with pytest.raises(ConfigError, match="has no tokenizer"):
        load_settings()
    monkeypatch.setenv("FRESHREC_MODEL", str(minilm_path()))  # a complete folder loads, tokenizer included
    assert load_settings().model == str(minilm_path())
    from freshrec.model import load_tokenizer

    assert load_tokenizer(str(minilm_path()))("hello").input_ids


@pytest.mark.unit
def test_folders_must_be_writable(monkeypatch, tmp_path):
    monkeypatch.setenv("FRESHREC_REPORTS_DIR", str(a_file(tmp_path) / "reports"))
    with pytest.raises(ConfigError, match="FRESHREC_REPORTS_DIR.*is a file, not a folder|is a file, not a folder"
                                          ".*FRESHREC_REPORTS_DIR"):
        load_settings()
    monkeypatch.delenv("FRESHREC_REPORTS_DIR")
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(a_file(tmp_path) / "data"))
    with pytest.raises(ConfigError, match="data_dir"):  # the embedded database would live there
        load_settings()
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(tmp_path / "not" / "yet" / "made"))
    assert load_settings()  # a folder freshrec can create is fine, and nothing is created by loading
    assert not (tmp_path / "not").exists()


# Every command loads the settings first: one line, exit code 2, no traceback, nothing else happens.
COMMANDS = [["db", "status"], ["status"], ["run-once"], ["serve"], ["demo"], ["models", "list"], ["watch"],
            ["quarantine", "list"], ["reports", "export", "1", "x.html"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_stops_on_a_bad_setting_in_one_line(command, tmp_path):
    env = {"FRESHREC_DATABASE_URL": UNREACHABLE, "FRESHREC_DATA_DIR": str(tmp_path),
           "FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": "high"}]'}
    line = one_line_error(cli(*command, env=env))
    assert "FRESHREC_PUBLISH_THRESHOLDS" in line and "valid number" in line


@pytest.mark.parametrize("env", [
    {"FRESHREC_EVENT_TYPES": "click,skip"},
    {"FRESHREC_DRIFT_NUM_METHOD": "chisquare"},
    {"FRESHREC_MODEL": "/nonexistent/model"},
    {"FRESHREC_REPORTS_DIR": "/etc/hostname/reports"},
], ids=["event types", "drift method", "model folder", "reports folder"])
def test_run_once_stops_before_any_work(env, tmp_path):
    line = one_line_error(cli("run-once", env={"FRESHREC_DATABASE_URL": UNREACHABLE,
                                               "FRESHREC_DATA_DIR": str(tmp_path / "data"), **env}))
    assert next(iter(env)) in line
    assert not (tmp_path / "data").exists()


def test_cli_mistakes_with_ids_and_paths_are_one_sentence(database_url, engine, tmp_path):
    env = {"FRESHREC_DATABASE_URL": database_url, "FRESHREC_DATA_DIR": str(tmp_path / "data")}
    line = one_line_error(cli("quarantine", "list", "--batch", "99999999999999999999", env=env))
    assert "--batch 99999999999999999999" in line
    line = one_line_error(cli("reports", "export", "1", str(a_file(tmp_path) / "r.html"), env=env))
    assert "Cannot write the report" in line and "is a file, not a folder" in line
    line = one_line_error(cli("models", "show", "99999999999999999999", env=env))
    assert "version 99999999999999999999" in line


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
