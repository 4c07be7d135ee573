"""The reports/ layout module and dvc.yaml name the same files."""

from __future__ import annotations

from pathlib import Path

import yaml

from imdb_rnn.layout import Reports, seed_model_dir, tuned_name

ROOT = Path(__file__).resolve().parents[1]


def declared(stage: str, key: str) -> set[str]:
    """Every path a stage of dvc.yaml writes or names on its command line, for item ``key``."""
    body = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    body = body.get("do", body)
    paths = set(body["cmd"].replace("${key}", key).split())
    for section in ("outs", "metrics", "plots"):
        for entry in body.get(section, []):
            paths |= {str(p).replace("${key}", key)
                      for p in (entry if isinstance(entry, dict) else {entry: None})}
    return paths


def test_the_layout_is_what_dvc_yaml_declares():
    layout = Reports()
    train, evaluate = declared("train", "lstm"), declared("evaluate", "lstm")
    assert {str(layout.train_summary("lstm")), str(layout.history("lstm"))} <= train
    assert {str(layout.test_metrics("lstm")), str(layout.roc("lstm")),
            str(layout.predictions("lstm"))} <= evaluate
    assert {str(layout.seeds("lstm")), str(seed_model_dir(Path("models"), "lstm"))} <= declared(
        "seeds", "lstm")
    assert {str(layout.seeds(tuned_name("lstm"))),
            str(seed_model_dir(Path("models"), tuned_name("lstm")))} <= declared(
        "seeds_tuned", "lstm")
    tune, model = declared("tune", "lstm"), tuned_name("lstm")
    assert {str(layout.study_best("lstm")), str(layout.study_trials("lstm")),
            str(layout.train_summary(model)), str(layout.history(model)),
            str(layout.test_metrics(model)), str(layout.roc(model)),
            str(layout.predictions(model))} <= tune
    assert str(layout.search_comparison) in declared("tune_report", "")
    assert str(layout.samplers_comparison) in declared("samplers", "")
    assert str(layout.data_report) in declared("preprocess", "")


def test_evaluated_models_are_found_by_their_metrics(tmp_path):
    layout = Reports(tmp_path / "reports", tmp_path / "evaluation")
    for name in ("lstm", "cnn"):
        layout.test_metrics(name).parent.mkdir(parents=True)
        layout.test_metrics(name).write_text("{}")
    layout.roc("gru").parent.mkdir(parents=True)  # no metrics: not evaluated
    assert layout.evaluated_models() == ["cnn", "lstm"]
