"""The speed benchmark's pieces on tiny data: the classic input, both training paths, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

from benchmark import compare_family, markdown, median_repeat
from imdb_rnn.config.params import load_params
from imdb_rnn.data.vectorize import Sequences, vectorize_table
from imdb_rnn.modeling.fit import recipe_for


def test_the_classic_input_is_cut_and_padded_as_the_section_says():
    section = load_params(ROOT / "params.yaml").train.models["lstm"].model_copy(
        update={"maxlen": 3})  # padding post, truncating pre
    s = Sequences(np.array([5, 6, 7, 8, 9], np.int32), np.array([0, 4, 5]),
                  np.array([0, 1], np.int8), np.array(["a", "b"]))
    recipe = recipe_for(section, feed="classic")
    assert recipe.feed == "classic"
    assert recipe.shape.array(s).tolist() == [[6, 7, 8], [9, 0, 0]]


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", 40), ("val", 16), ("test", 8)):
        for i in range(n):
            words = rng.choice(["great", "loved"] if i % 2 else ["awful", "dull"], 5)
            rows.append({"split": split, "label": i % 2, "review": f"{split}/{i}",
                         "text": " ".join(words)})
    vectorize_table(pd.DataFrame(rows), 30, tmp_path)
    params = load_params(ROOT / "params.yaml")
    small = {"units": 4, "maxlen": 12, "embedding_dim": 4, "embedding_file": None,
             "batch_size": 8}
    models = {name: params.train.models[name].model_copy(update=small)
              for name in ("feedforward", "lstm")}
    train = params.train.model_copy(update={"models": models})
    return params.model_copy(update={"train": train}), tmp_path


@pytest.mark.parametrize("name", ["feedforward", "lstm"])
def test_both_paths_train_the_same_model_for_the_same_epochs(tiny, name):
    params, data = tiny
    result = compare_family(params, name, data, epochs=2)
    assert result["epochs"] == 2 and result["train_reviews"] == 40
    for path in ("classic", "pipeline"):
        assert result[path]["samples_per_second"] > 0
        assert 0.0 <= result[path]["val_accuracy"] <= result[path]["best_val_accuracy"] <= 1.0
    assert result["speedup"] == pytest.approx(result["pipeline"]["samples_per_second"]
                                              / result["classic"]["samples_per_second"])
    text = markdown({"command": "x", "machine": {"cores": 2, "cpu": "c", "python": "3.11",
                                                 "tensorflow": "t", "keras": "k", "gpus": []},
                     "families": [result], "data_stages": {"fetch": 1.0, "preprocess": 2.0},
                     "noop_repro_seconds": [1.4, 1.5, 2.0],
                     "pruning_study": "s", "pruning": {
                         "median": {"trials": 4, "pruned": 2, "epochs_run": 9,
                                    "epochs_budget": 12, "seconds": 10, "best_val_accuracy": 0.8},
                         "none": {"trials": 4, "pruned": 0, "epochs_run": 12,
                                  "epochs_budget": 12, "seconds": 14,
                                  "best_val_accuracy": 0.81}}})
    assert f"| {name} | 2 | 12 |" in text and "GPU: none" in text
    assert "| **together** | **3.0** |" in text and "median 1.5 s of 3 runs" in text
    assert "| median | 4 | 2 | 9 / 12 | 25% | 10 | 80.00% |" in text


def test_repeats_report_the_median_speedup_and_every_value():
    runs = [{"model": "m", "speedup": s} for s in (2.1, 1.0, 1.6)]
    median = median_repeat(runs)
    assert median["speedup"] == 1.6 and median["speedups"] == [2.1, 1.0, 1.6]
    assert median_repeat(runs[:2])["speedup"] == 1.0  # even count: the lower middle


def test_the_previous_path_against_the_new_one_in_worker_processes(tiny):
    from benchmark import compare_paths

    params, data = tiny
    params = params.model_copy(update={"compute": params.compute.model_copy(
        update={"workers": 2, "threads": 1})})
    previous = params.train.models["feedforward"].model_dump() | {"batch_size": 4}
    result = compare_paths(params, "feedforward", data, 2, previous)
    old, new = result["previous"], result["new"]
    assert (old["batch_size"], new["batch_size"]) == (4, 8)
    assert (new["workers"], new["threads"]) == (2, 1) and len(new["val_accuracies"]) == 2
    # Together: every review both processes trained on, over their common wall window.
    assert new["samples_per_second"] == pytest.approx(2 * 40 * 2 / new["seconds"])
    assert result["speedup"] == pytest.approx(new["samples_per_second"]
                                              / old["samples_per_second"])
    text = markdown({"command": "x", "machine": {"cores": 2, "cpu": "c", "python": "3.11",
                                                 "tensorflow": "t", "keras": "k", "gpus": []},
                     "families": [], "paths": [result], "paths_command": "y",
                     "previous": "abc1234"})
    assert "| feedforward | 2 | 4, 0.002 |" in text and "| 8, 0.002 | 2 x 1 |" in text


def test_a_rerun_keeps_the_hand_written_levers_section(tmp_path):
    from benchmark import HAND_WRITTEN, with_hand_written

    report = tmp_path / "benchmarks.md"
    assert with_hand_written("# Benchmarks\n", report) == "# Benchmarks\n"  # no file yet
    report.write_text(f"# Benchmarks\n\nold table\n\n{HAND_WRITTEN} (not kept)\n\nBlockLSTM\n")
    new = with_hand_written("# Benchmarks\n\nnew table\n", report)
    assert "old table" not in new and "new table" in new
    assert new.endswith(f"{HAND_WRITTEN} (not kept)\n\nBlockLSTM\n")
    report.write_text("# Benchmarks\n\nno hand-written section\n")
    assert with_hand_written("# Benchmarks\n", report) == "# Benchmarks\n"
