"""Running presets the classic way: front padding, the split, the table, MLflow runs, Elman's XOR."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imdb_rnn.config.params import MlflowParams, load_params
from imdb_rnn.data.vectorize import Sequences, vectorize_table
from imdb_rnn.errors import PipelineError
from imdb_rnn.modeling.fit import fit
from imdb_rnn.reproductions.presets import Preset, Variant
from imdb_rnn.reproductions.reproduce import (classic_fit, input_shape, main, recipe, reproduce,
                                              reproduce_xor, split_reviews, summarize,
                                              table_markdown, word2vec_for, write_reports)
from imdb_rnn.tracking import runs as tracking


def seqs(rows: list[list[int]]) -> Sequences:
    lengths = [len(r) for r in rows]
    return Sequences(np.array([t for r in rows for t in r], np.int32),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     np.array([i % 2 for i in range(len(rows))], np.int8),
                     np.array([f"r{i}" for i in range(len(rows))]))


# A small NLPIA network (SimpleRNN, Flatten) over a 4-d embedding.
NLPIA_SMALL = {"units": 2, "embedding_dim": 4, "bidirectional": False}


def tiny_preset(**changes) -> Preset:
    preset = Preset("tiny", "a test", "test_accuracy", num_words=50, maxlen=100, epochs=2,
                    batch_size=8, optimizer="adam", learning_rate=0.01,
                    variants=(Variant("feedforward", "small_feedforward", 0.5),))
    return replace(preset, **changes)


def test_the_classic_input_cuts_and_pads_at_the_front_and_caps_the_vocabulary():
    x = input_shape(tiny_preset(maxlen=3, num_words=7)).array(seqs([[5, 6, 7, 8], [9], []]))
    assert x.tolist() == [[6, 1, 1], [0, 0, 1], [0, 0, 0]]  # 7, 8, 9 are out of vocabulary
    shape = input_shape(tiny_preset(maxlen=3, num_words=None))
    assert shape.array(seqs([[5, 6, 7, 8]])).tolist() == [[6, 7, 8]]
    assert shape.length == 3  # the classic models take one fixed input length


def test_a_variant_recipe_is_the_presets_classic_recipe():
    preset = tiny_preset(variants=(Variant("cnn", "small_cnn", 0.5,
                                           hyperparameters={"sigmoid": True}),))
    r = recipe(preset, preset.variants[0], embedding_trainable=False)
    assert (r.family, r.feed, r.shape) == ("small_cnn", "classic", input_shape(preset))
    assert dict(r.architecture) == {"sigmoid": True, "embedding_trainable": False}
    assert (r.optimizer, r.learning_rate, r.batch_size, r.epochs, r.loss) == (
        "adam", 0.01, 8, 2, "binary_crossentropy")


def test_the_split_holds_out_the_last_fifth_of_the_shuffled_training_reviews():
    train, val = seqs([[i] for i in range(80)]), seqs([[100 + i] for i in range(20)])
    test = seqs([[200 + i] for i in range(30)])
    parts = split_reviews(train, val, test, tiny_preset(), seed=3)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (80, 20, 30)
    seen = np.concatenate([parts["train"].ids, parts["val"].ids])
    assert sorted(seen.tolist()) == list(range(80)) + list(range(100, 120))  # no overlap
    again = split_reviews(train, val, test, tiny_preset(), seed=3)
    assert np.array_equal(again["val"].ids, parts["val"].ids)  # the split seed fixes it
    subset = split_reviews(train, val, test, tiny_preset(subset=10), seed=3)
    assert (len(subset["train"]), len(subset["val"]), len(subset["test"])) == (8, 2, 10)


def test_summary_says_whether_the_published_number_is_within_two_sd():
    runs = [{"acc": 0.80}, {"acc": 0.82}, {"acc": 0.84}]  # mean 0.82, sd 0.02
    assert summarize(runs, "acc", 0.85)["within"] is True
    assert summarize(runs, "acc", 0.87)["within"] is False
    assert summarize(runs[:1], "acc", 0.82)["within"] is None  # one seed: no spread
    assert summarize(runs, "acc", None)["difference"] is None


def test_elman_xor_learns_all_four_cases():
    result = reproduce_xor([1], epochs=1000)
    run = result["variants"]["simple_rnn_2"]["runs"][0]
    assert run["accuracy"] == 1.0 and run["solved_at_epoch"] <= 1000
    assert run["epochs"] == run["solved_at_epoch"]  # it stops once solved


@pytest.fixture
def vectorized(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["great", "fine", "loved"], ["awful", "dull", "hated"]
    rows = []
    for split, n in (("train", 48), ("val", 12), ("test", 20)):
        for i in range(n):
            label = i % 2
            words = rng.choice(good if label else bad, 6).tolist() + ["film"] * 3
            rows.append({"split": split, "label": label, "review": f"{split}/{i}.txt",
                         "text": " ".join(words)})
    out = tmp_path / "vectorized"
    out.mkdir()
    vectorize_table(pd.DataFrame(rows), 50, out)
    return out


def test_a_preset_runs_per_seed_logs_runs_and_writes_the_table(vectorized, tmp_path,
                                                               monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="x")
    experiment = tracking.connect(store, "imdb-reproductions")
    result = reproduce(tiny_preset(), vectorized, [1, 2], split_seed=5, experiment=experiment)
    variant = result["variants"]["feedforward"]
    assert [r["seed"] for r in variant["runs"]] == [1, 2]
    assert all(len(r["history"]) == 2 and 0 <= r["test_accuracy"] <= 1 for r in variant["runs"])
    assert variant["summary"]["n"] == 2 and variant["summary"]["published"] == 0.5
    runs = experiment.client.search_runs([experiment.id])
    assert sorted(r.info.run_name for r in runs) == ["tiny/feedforward/seed1",
                                                     "tiny/feedforward/seed2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert runs[0].data.params["maxlen"] == "100" and "test_accuracy" in runs[0].data.metrics
    write_reports(result, tmp_path / "reproductions", tmp_path / "reproductions.md")
    saved = json.loads((tmp_path / "reproductions" / "tiny.json").read_text())
    assert saved["variants"]["feedforward"]["summary"] == json.loads(json.dumps(variant["summary"]))
    table = (tmp_path / "reproductions.md").read_text()
    assert "| tiny | feedforward | test_accuracy | 50.00% |" in table
    best = sum(r["best_val_accuracy"] for r in variant["runs"]) / 2
    row = next(line for line in table.splitlines() if line.startswith("| tiny |"))
    assert row.split(" | ")[8] == f"{best:.2%}"  # the best epoch's validation accuracy
    assert "Not run yet:" in table and "elman_xor" in table
    ran = table_markdown([{**saved, "preset": "lstm_5k"}]).split("Not run yet:")[1]
    assert "lstm_5k" not in ran and "small_vocab_four" in ran


def test_frozen_word_vectors_do_not_move_in_training():
    matrix = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    preset = tiny_preset(maxlen=10, num_words=None, embedding_dim=4, variants=(Variant(
        "rnn", "nlpia_rnn", None, hyperparameters=NLPIA_SMALL),))
    rng = np.random.default_rng(1)
    data = seqs([rng.integers(2, 20, rng.integers(3, 12)).tolist() for _ in range(32)])
    splits = {"train": data, "val": data, "test": data}
    for trainable in (False, True):
        r = recipe(preset, preset.variants[0], embedding_trainable=trainable)
        result = fit(r, splits["train"], splits["val"], vocab_size=20, seed=1, verbose=0,
                     embedding=matrix)
        weights = result.model.get_layer("embedding").get_weights()[0]
        assert np.array_equal(weights, matrix) != trainable
    scored = classic_fit(recipe(preset, preset.variants[0], embedding_trainable=False), splits,
                         vocab_size=20, seed=1, embedding=matrix, verbose=0)
    assert scored["seed"] == 1 and scored["epochs"] == len(scored["history"]) == 2
    assert 0 <= scored["test_accuracy"] <= 1
    assert scored["best_val_accuracy"] == max(h["val_accuracy"] for h in scored["history"])


def test_word_vectors_come_from_a_file_or_the_table_says_so(vectorized, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("3 4\ngreat 1 0 0 0\nawful 0 1 0 0\nfilm 0 0 1 0\n")
    preset = tiny_preset(embedding_dim=4, variants=(Variant(
        "rnn", "nlpia_rnn", None, hyperparameters=NLPIA_SMALL),))
    store = MlflowParams(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="x")
    result = reproduce(preset, vectorized, [1], split_seed=5,
                       experiment=tracking.connect(store, "r"), vectors_file=vectors)
    assert result["embedding"].startswith("frozen vectors from vectors.txt")
    without = reproduce(preset, vectorized, [1], split_seed=5,
                        experiment=tracking.connect(store, "r"))
    assert "no vectors file given: a learned 4-d embedding" in without["embedding"]
    assert "no vectors file given" in table_markdown([without])
    out, table = tmp_path / "reproductions", tmp_path / "reproductions.md"
    write_reports(without, out, table)
    write_reports(result, out, table)  # the run with vectors is kept beside, not over, the other
    assert sorted(p.name for p in out.iterdir()) == ["tiny+vectors.json", "tiny.json"]
    rows = [line for line in table.read_text().splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2 and "no vectors file given" in rows[0] and "vectors.txt" in rows[1]


def test_word2vec_vectors_of_the_presets_size_are_trained_once_then_reused(vectorized, tmp_path,
                                                                           tiny_archive, capsys):
    params = load_params(Path(__file__).parents[1] / "params.yaml")
    params = params.model_copy(update={"embed": params.embed.model_copy(
        update={"use_unlabeled": False, "min_count": 1, "epochs": 1})})
    texts = ["great film loved it", "awful dull film hated it"] * 10
    table = tmp_path / "reviews.parquet"
    pd.DataFrame({"split": ["train"] * 20, "text": texts}).to_parquet(table)
    preset = tiny_preset(embedding_dim=7)
    path = word2vec_for(preset, params, vectorized, tiny_archive, table)
    assert path == tmp_path / "embeddings" / "word2vec7.txt"
    header, *rows = path.read_text().splitlines()
    assert header.split()[1] == "7" and {r.split()[0] for r in rows} >= {"great", "awful", "film"}
    assert all(len(r.split()) == 8 for r in rows)
    made = path.stat().st_mtime_ns
    assert word2vec_for(preset, params, vectorized, tiny_archive, table) == path
    assert path.stat().st_mtime_ns == made and "reusing" in capsys.readouterr().out
    other = params.model_copy(update={"embed": params.embed.model_copy(update={"seed": 9})})
    word2vec_for(preset, other, vectorized, tiny_archive, table)  # other params: trained again
    assert path.stat().st_mtime_ns != made
    with pytest.raises(PipelineError, match="preset tiny learns its own embedding"):
        word2vec_for(tiny_preset(), params, vectorized, tiny_archive, table)
    with pytest.raises(PipelineError, match="missing.parquet not found"):
        word2vec_for(preset, params, vectorized, tiny_archive, tmp_path / "missing.parquet")


@pytest.mark.parametrize("argv, message", [
    (["elman_xor", "--word2vec"], "elman_xor has no embedding"),
    (["nlpia_simplernn", "--word2vec", "--vectors", "v.txt"], "give one source of word vectors"),
])
def test_contradictory_vector_options_are_refused_before_anything_runs(argv, message, tmp_path):
    with pytest.raises(PipelineError, match=message):
        main([*argv, "--out", str(tmp_path / "out"), "--table", str(tmp_path / "t.md"),
              "--params", str(Path(__file__).parents[1] / "params.yaml")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "t.md").exists()


@pytest.mark.parametrize("argv, saved", [
    (["elman_xor", "--seeds", "1", "2"], "elman_xor.json"),
    (["nlpia_simplernn", "--word2vec", "--seeds", "1"], "nlpia_simplernn+word2vec300.json"),
])
def test_a_run_of_fewer_seeds_never_replaces_a_saved_row(argv, saved, tmp_path):
    """A committed 5-seed row stays: the smaller run is refused before it trains, in one line
    naming the file and the seeds to give; --replace replaces it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / saved).write_text(json.dumps({"preset": "x", "seeds": [1, 2, 3, 4, 5]}))
    before = (out / saved).read_text()
    with pytest.raises(PipelineError, match=r"holds 5 seeds \(1 2 3 4 5\) and this run has "
                                            r"\d: not replaced; give --seeds 1 2 3 4 5"):
        main([*argv, "--out", str(out), "--table", str(tmp_path / "t.md"),
              "--params", str(Path(__file__).parents[1] / "params.yaml")])
    assert (out / saved).read_text() == before and not (tmp_path / "t.md").exists()


def test_replace_lets_a_smaller_xor_run_replace_the_row(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "elman_xor.json").write_text(json.dumps({"preset": "elman_xor", "seeds": [1, 2, 3]}))
    from imdb_rnn.reproductions.reproduce import check_not_smaller

    check_not_smaller(out, "elman_xor", [1], replace=True)  # no error
    check_not_smaller(out, "elman_xor", [1, 2, 3], replace=False)  # as many: fine
