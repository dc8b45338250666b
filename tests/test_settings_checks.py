"""freshrec.settings_checks: the drift methods are the installed Evidently's; thresholds, model folders and folders
are checked from what is there, creating nothing."""

import pytest

from freshrec.settings_checks import (check_names, check_thresholds, evidently_stattests, folder_problem,
                                      model_folder_problem)


@pytest.mark.unit
def test_drift_methods_are_the_installed_evidentlys():
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    numerical, categorical = evidently_stattests("numerical"), evidently_stattests("categorical")
    assert {"ks", "wasserstein", "psi"} <= set(numerical) and {"chisquare", "jensenshannon"} <= set(categorical)
    for name in numerical:  # Evidently itself accepts every name we accept
        get_stattest(None, None, ColumnType.Numerical, name)
    assert "chisquare" not in numerical


def test_thresholds_are_checked_entry_by_entry():
    good = [{"metric": "auc", "value": 0.55, "change": -0.01}, {"metric": "logloss", "higher_is_better": False}]
    assert check_thresholds(good) == good
    with pytest.raises(ValueError, match=r"^entry 1, metric: .*metrics: auc, logloss, ndcg_at_10"):
        check_thresholds([{"metric": "auc"}, {"metric": "precision"}])
    with pytest.raises(ValueError, match=r"^entry 0, value: "):  # strict: a number in a string is a mistake
        check_thresholds([{"metric": "auc", "value": "0.5"}])
    assert check_names(["click", "skip"]) == ["click", "skip"]
    with pytest.raises(ValueError, match="blank"):
        check_names(["click", "  "])


def test_folders_are_judged_from_what_is_there_and_nothing_is_created(tmp_path):
    assert model_folder_problem(tmp_path / "missing") == f"{str(tmp_path / 'missing')!r} is not a folder"
    folder = tmp_path / "model"
    folder.mkdir()
    assert model_folder_problem(folder) == f"{str(folder)!r} has no config.json"
    (folder / "config.json").write_text("{}")
    assert model_folder_problem(folder).startswith(f"{str(folder)!r} has no tokenizer (tokenizer.json / vocab.txt")
    (folder / "vocab.txt").write_text("[PAD]\n")
    assert model_folder_problem(folder) is None
    assert folder_problem(tmp_path / "not" / "yet") is None and not (tmp_path / "not").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert folder_problem(blocker / "reports") == f"{str(blocker)!r} is a file, not a folder"
