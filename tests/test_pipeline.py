"""End to end: `dvc repro` of the whole DAG on a small stratified slice of the real IMDB archive."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ROOT, make_archive

from imdb_rnn.data.fetch import sha256_of

# The module fixture runs the whole DAG: beside other test files (pytest-xdist) on 2 cores it
# can take longer than the suite's 900 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

RNN = {"units": 4, "num_layers": 1, "recurrent_dropout": 0.0, "pooling": "last"}
# Four of the six families (every stage kind, a convolutional, two recurrent, word vectors):
# the smoke profile runs all six end to end (.ci/run: tools/smoke.py --servers), and every
# builder is tested in tests/test_models.py; each model here costs three stage processes.
TINY_MODELS = {
    "feedforward": {"family": "feedforward", "pooling": "average", "units": 4,
                    "ngram_max": 2, "ngram_buckets": 64, "nb_scale": 0.0},
    "cnn": {"family": "cnn", "filters": 8, "kernel_size": 3, "kernel_widths": 2, "num_layers": 1,
            "units": 0},
    "lstm": {"family": "lstm", **RNN, "pooling": "max"},
    "gru": {"family": "gru", **RNN},
}
COMMON = {"maxlen": 60, "padding": "post", "truncating": "pre", "embedding_dim": 8,
          "embedding_file": None, "embedding_trainable": True,
          "dropout": 0.1, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01,
          "clipnorm": None, "epochs": 2}


TINY_SPACE = {"maxlen": {"low": 20, "high": 60, "step": 20}, "units": {"low": 2, "high": 8, "log": True},
              "dropout": {"low": 0.0, "high": 0.5}, "embedding_dim": {"choices": [4, 8]}}
STUDIES = ("lstm_random", "lstm_tpe")


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project, configured for the slice and tiny models, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("stages", "src", "splits"):
        shutil.copytree(ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["fetch"].update(local_archive=str(imdb_slice), local_sha256=sha256_of(imdb_slice))
    params["vectorize"]["max_features"] = 2000
    params["train"]["models"] = {k: {**COMMON, **v} for k, v in TINY_MODELS.items()}
    # word2vec on the slice's training text and a few unlabeled reviews; the GRU starts from it.
    unsup = make_archive(root / "unsup.tar.gz", {
        f"train/unsup/{i}_0.txt": f"An unlabeled review number {i}, good or bad.".encode()
        for i in range(40)})
    params["embed"].update(dim=8, epochs=2, unlabeled_archive=str(unsup),
                           unlabeled_sha256=sha256_of(unsup))
    params["train"]["models"]["gru"]["embedding_file"] = "data/embeddings/word2vec.txt"
    params["report"].update(seeds=[5], bootstrap_resamples=200)
    # Two small studies (random and TPE) of the tiny LSTM; studies stored in the project.
    params["tune"].update(n_trials=3, epochs=2, subsample=None, n_startup_trials=1,
                          space={"lstm": TINY_SPACE},
                          studies={"lstm_random": {"model": "lstm", "sampler": "random"},
                                   "lstm_tpe": {"model": "lstm", "sampler": "tpe"}})
    # The sampler verdict on the tiny LSTM: two studies per sampler of two one-epoch trials.
    params["samplers"].update(model="lstm", repeats=2, n_trials=2, subsample=None, epochs=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    for name in (".dvcignore", ".gitignore"):  # after init, which writes its own .dvcignore
        shutil.copy(ROOT / name, root / name)
    # dvc.yaml's plot templates and the offline page `dvc plots show` fills (as in a clone)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
    run(["dvc", "config", "plots.html_template", "plots/offline.html"], root)
    first = run(["dvc", "repro"], root)
    (root.parent / "repro.log").write_text(first.stdout + first.stderr)  # read by test_console
    return root


# What a library prints and a person need not read: native TensorFlow log lines (E0000 oneDNN
# DT_BOOL ...), absl's notice, Python warnings, MLflow's model-logging notes and artifact
# progress bars, Optuna's INFO.
NOISE = re.compile(r"^[IWE]\d{4} |absl::InitializeLog|Warning:|warnings\.warn|Validating input "
                   r"example|CloudPickle|^\[I \d{4}-|Traceback|Downloading artifacts")


# Keras' per-epoch progress (verbose=2): "Epoch 1/2", "8/8 - 2s - ... val_loss: 0.78",
# "Restoring model weights from the end of the best epoch: 1." - progress, not sentences
PROGRESS = re.compile(r"^Epoch \d+/\d+$|^\d+/\d+ - \d+m?s - |^Restoring model weights|%\|")


def stage_lines(log: str) -> dict[str, list[str]]:
    """Each stage's own lines in a `dvc repro` log (DVC's lines, the command echo and Keras'
    epoch progress left out)."""
    lines: dict[str, list[str]] = {}
    stage = None
    for line in log.splitlines():
        if line.startswith("To track the changes with git"):  # DVC's closing advice
            break
        if line.startswith("Running stage '"):
            stage = line.split("'")[1]
            lines[stage] = []
        elif stage and line.strip() and not PROGRESS.search(line) and not line.startswith(
                ("> ", "Updating lock file", "Generating lock file", "Use `dvc")):
            lines[stage].append(line)
    return lines


def test_console_a_stage_says_a_few_short_lines_and_no_library_noise(project):
    log = (project.parent / "repro.log").read_text()
    noise = [line for line in log.splitlines() if NOISE.search(line)]
    assert not noise, noise
    lines = stage_lines(log)
    assert "train@lstm" in lines and "report" in lines
    # a stage: one sentence (a study: one line per trial, 3 here, and its summary)
    wordy = {stage: said for stage, said in lines.items() if len(said) > 6}
    assert not wordy, wordy
    # the samplers verdict is the longest sentence (about 330 characters on the slice)
    assert max(len(line) for said in lines.values() for line in said) <= 400


def test_data_stages_on_the_slice(project):
    report = json.loads((project / "reports/data.json").read_text())
    counts = report["counts"]
    assert counts["train"]["reviews"] + counts["val"]["reviews"] == 300
    assert counts["test"] == {"reviews": 300, "neg": 150, "pos": 150}
    # validation by movie: the slice's training reviews named by the movie-disjoint list
    table = pd.read_parquet(project / "data/prepared/reviews.parquet", columns=["review", "split"])
    listed = {f"train/{line}" for line in (ROOT / "splits/aclImdb_movie_dev.txt").read_text().split()}
    assert set(table.loc[table["split"] == "val", "review"]) <= listed
    assert not set(table.loc[table["split"] == "train", "review"]) & listed
    # the slice holds runs of consecutive ids, i.e. few whole movies: some of each label
    assert counts["val"]["neg"] > 0 and counts["val"]["pos"] > 0
    assert (project / "data/vectorized/vocab.txt").read_text().split("\n")[:2] == ["[PAD]",
                                                                                  "[UNK]"]


def test_word_vectors_come_from_training_and_unlabeled_text(project):
    summary = json.loads((project / "reports/embed.json").read_text())
    assert summary["unlabeled_reviews"] == 40 and summary["unlabeled_source"].endswith("unsup.tar.gz")
    counts = json.loads((project / "reports/data.json").read_text())["counts"]
    assert summary["training_reviews"] == counts["train"]["reviews"] and summary["dim"] == 8
    assert 0 < summary["vocabulary_with_vector"] <= summary["vocabulary"]
    gru = json.loads((project / "reports/train/gru/train.json").read_text())
    assert 0.5 < gru["pretrained_coverage"] <= 1.0


def test_every_model_is_evaluated_on_the_whole_test_slice(project):
    tuned = [f"tuned_{study}" for study in STUDIES]
    for name in [*TINY_MODELS, *tuned, "tfidf_logreg", "nbsvm", "majority"]:
        metrics = json.loads((project / f"reports/evaluate/{name}/metrics.json").read_text())
        assert metrics["reviews"] == 300
        assert 0.0 <= metrics["accuracy"] <= 1.0
        predictions = pd.read_csv(project / f"evaluation/{name}/predictions.csv")
        assert len(predictions) == 300 and predictions["review"].is_unique
        # labels follow the review's folder: neg is 0, pos is 1
        from_path = predictions["review"].str.contains("/pos/").astype(int)
        assert (predictions["label"] == from_path).all()
    majority = json.loads((project / "reports/evaluate/majority/metrics.json").read_text())
    assert majority["accuracy"] == 0.5 and majority["roc_auc"] == 0.5


def test_mlflow_has_one_finished_run_per_model(project):
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("imdb-baselines")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == sorted([*TINY_MODELS, "tfidf_logreg",
                                                                 "nbsvm", "majority"])
    assert {r.info.status for r in runs} == {"FINISHED"}
    by_model = {r.data.tags["model"]: r for r in runs}
    assert "test_accuracy" in by_model["tfidf_logreg"].data.metrics
    for name in TINY_MODELS:
        r = by_model[name]
        assert r.data.tags["family"] == TINY_MODELS[name]["family"]
        assert r.data.tags["data_md5"].endswith(".dir")
        assert {"units", "maxlen", "seed", "max_features"} <= set(r.data.params)
        assert {"val_accuracy", "test_accuracy", "test_roc_auc"} <= set(r.data.metrics)
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) >= 1
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"learning_curves.png", "confusion_matrix.png"} <= artifacts
        inputs = {i.dataset.name for i in r.inputs.dataset_inputs}
        assert inputs == {"imdb-train", "imdb-val", "imdb-test"}
    # every network, and the TF-IDF reference, is a logged model with its test accuracy
    logged = {m.tags["model"]: m for m in client.search_logged_models([experiment.experiment_id])}
    assert set(logged) == {*TINY_MODELS, "tfidf_logreg"}
    for name, model in logged.items():
        assert model.source_run_id == by_model[name].info.run_id
        test = {m.key: m for m in model.metrics}["test_accuracy"]
        assert test.value == by_model[name].data.metrics["test_accuracy"]
        assert test.dataset_name == ("imdb-reviews" if name == "tfidf_logreg" else "imdb-test")


def test_each_study_finished_its_trials_and_links_its_best(project):
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("imdb-tuning")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    for study in STUDIES:
        best = json.loads((project / f"reports/tune/{study}/best.json").read_text())
        assert best["trials_complete"] + best["trials_pruned"] == 3
        assert set(best["best_params"]) == set(TINY_SPACE)
        trials = pd.read_csv(project / f"reports/tune/{study}/trials.csv")
        assert trials["best_so_far"].dropna().is_monotonic_increasing
        (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "study"
                     and r.info.run_name == f"{study} (study)"]
        assert parent.info.status == "FINISHED"
        children = [r for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        trial_runs = [r for r in children if r.data.tags["run_kind"] == "trial"]
        assert len(trial_runs) == 3
        for r in trial_runs:  # a pruned trial is never a successful run
            assert r.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[
                r.data.tags["trial_state"]]
        (tuned,) = [r for r in children
                    if r.data.tags["run_kind"] in ("best_trial", "retrained_best")]
        assert tuned.data.metrics["test_accuracy"] == best["test_accuracy"]
        # Optuna's own plots of the search: in the report folder and on the study's run (3
        # trials: no importances below MIN_IMPORTANCE_TRIALS complete ones)
        drawn = {p.name for p in (project / f"reports/tune/{study}/figures").iterdir()}
        assert {"history.png", "slice.png"} <= drawn and "importances.png" not in drawn
        assert set(best["figures"]) == {name.removesuffix(".png") for name in drawn}
        logged = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
        assert logged == {f"optuna/{name}" for name in drawn}
        assert best["param_importances"] is None


def test_seed_replicates_and_the_leaderboard(project):
    for name in [*TINY_MODELS, *[f"tuned_{s}" for s in STUDIES]]:
        seeds = json.loads((project / f"reports/seeds/{name}.json").read_text())
        assert seeds["seeds"] == [42, 5] and seeds["test_accuracy_std"] is not None
        kept = json.loads((project / f"models/seeds/{name}/seed.json").read_text())
        assert kept["best_val_seed"] == seeds["best_val_seed"]
        # the replicate's weights are kept only when it beat train.seed's run on validation
        assert (project / f"models/seeds/{name}/model.keras").is_file() == (
            seeds["best_val_weights"] == "seeds" and "reused_from" not in seeds)
    for study in STUDIES:  # a study won by its baseline reuses the baseline's seed runs
        best = json.loads((project / f"reports/tune/{study}/best.json").read_text())
        seeds = json.loads((project / f"reports/seeds/tuned_{study}.json").read_text())
        assert (seeds.get("reused_from") == "seeds@lstm") == bool(best["best_is_baseline"])
    board = pd.read_csv(project / "reports/leaderboard.csv")
    assert sorted(board["model"]) == sorted([*TINY_MODELS, *[f"tuned_{s}" for s in STUDIES],
                                             "tfidf_logreg", "nbsvm", "majority"])
    assert (board["ci_low"] <= board["test_accuracy"]).all()
    assert (board["mean_ci_low"] <= board["mean_accuracy"]).all()
    assert board["mean_accuracy"].is_monotonic_decreasing  # ranked by the seed means
    assert board.loc[board["kind"].isin(["baseline", "tuned"]), "seeds"].eq(2).all()
    significance = pd.read_csv(project / "reports/significance.csv")
    assert len(significance) == len(board) * (len(board) - 1) // 2
    assert significance["welch_p"].notna().sum() == len(TINY_MODELS) * (len(TINY_MODELS) - 1) // 2
    tuning = pd.read_csv(project / "reports/tuning.csv")
    assert set(tuning.loc[~tuning["best_is_baseline"], "test"]) <= {"Welch over seeds"}
    text = (project / "reports/leaderboard.md").read_text()
    assert "## Which differences are real?" in text and "Welch's t-test" in text
    assert (project / "reports/index.html").stat().st_size > 50_000  # figures inlined
    assert {p.name for p in (project / "reports/figures").iterdir()} >= {
        "learning_curves.png", "roc.png", "confusion.png", "accuracy_vs_time.png",
        "expected_max.png"}
    assert "](tune/lstm_tpe/figures/history.png)" in text  # Optuna's plots, on the page too


def test_dvc_understands_metrics_and_plots(project):
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    assert metrics  # DVC parsed every metrics file
    # numbers only, one row per model: metrics/NAME.json
    files = metrics[""]["data"]
    assert sorted(files) == sorted(f"metrics/{p.name}" for p in (project / "metrics").iterdir())
    assert all(type(v) in (int, float) for f in files.values() for v in f["data"].values())
    table = run(["dvc", "metrics", "show"], project).stdout.splitlines()
    assert len(table) == len(files) + 1 and max(map(len, table)) <= 120, table
    run(["dvc", "plots", "show", "-o", "plots_html"], project)
    page = (project / "plots_html" / "index.html").read_text()
    # the three all-model charts on the offline page (tests/test_plots.py renders it)
    assert page.count("vegaEmbed(") >= 3 and "cdn.jsdelivr" not in page


def test_second_repro_does_nothing(project):
    out = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in out


def test_a_dvc_remote_carries_the_run_to_a_second_clone_with_nothing_left_to_do(project,
                                                                             tmp_path):
    """README, Scaling out: `dvc push` here, `git clone` + `dvc pull` there, and the clone is
    up to date (a local folder as the remote; S3, SSH, ... work the same through DVC's extras)."""
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "--force", "--default", "shared", str(remote)], project)
    pushed = run(["dvc", "push"], project)
    assert any(remote.rglob("*")), pushed.stdout
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "run"],
        project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "data").exists() and not (clone / "models").exists()
    run(["dvc", "pull"], clone)
    assert json.loads(run(["dvc", "status", "--json"], clone).stdout) == {}
    out = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in out and "up to date" in out, out
    assert (clone / "models/lstm/model.keras").is_file()


def test_vectorize_param_change_leaves_fetch_and_preprocess_alone(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["vectorize"]["max_features"] = 1500
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(run(["dvc", "status", "--json"], project).stdout)
        assert set(status) == {"vectorize"}
    finally:
        params["vectorize"]["max_features"] = 2000
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_predict_on_raw_text(project):
    out = run(["imdb-predict", "models/lstm", "A wonderful film.", "Awful, boring."],
              project).stdout.strip().splitlines()
    assert len(out) == 2
    assert all(0.0 <= float(line.split("\t")[0]) <= 1.0 for line in out)


def test_misspelt_param_stops_with_one_line(project, tmp_path):
    bad = tmp_path / "params.yaml"
    text = (project / "params.yaml").read_text().replace("lowercase:", "lowercse:")
    bad.write_text(text)
    result = run([sys.executable, "stages/preprocess.py", "--params", str(bad), "--archive", "x",
                  "--out", str(tmp_path / "t.parquet"), "--report-json", str(tmp_path / "r.json"),
                  "--report-md", str(tmp_path / "r.md")], project, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {bad}: preprocess.lowercse: unknown key "
                                     "(did you mean 'lowercase'?)")
    assert list(tmp_path.iterdir()) == [bad]


def test_mlflow_ui_shows_the_runs_and_lines_them_up_in_compare(project, tmp_path):
    from mlflow_ui import (browser, compare_url, experiment_url, newest_study_run,
                           registered_model_url, render, serve, study_run_url)

    if browser() is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium; .ci/run installs it)")
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("imdb-baselines")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    with serve(f"sqlite:///{project}/mlflow.db") as base:
        listing = render(experiment_url(base, experiment.experiment_id), size="2400,1200")
        champion_page = render(registered_model_url(base, "imdb-sentiment"))
        from imdb_rnn.config.params import MlflowParams
        from imdb_rnn.tracking.runs import connect

        study = newest_study_run(connect(MlflowParams(
            tracking_uri=f"sqlite:///{project}/mlflow.db", experiment="imdb-tuning")))
        assert study is not None
        study_page = render(study_run_url(base, study))
        assert "imdb-baselines" in listing
        assert all(name in listing for name in ("lstm", "cnn", "tfidf_logreg"))
        # the shared accuracy view: model-training side, columns shown, best test first
        assert "Model training" in listing and "Sort: test_accuracy" in listing
        header = listing[listing.index("Run Name"):listing.index("Hide run")]
        assert "test_accuracy" in header and "best_val_accuracy" in header
        by_test = sorted(runs, key=lambda n: -runs[n].data.metrics.get("test_accuracy", 0))
        first_two = [listing.index(f" {name} ") for name in by_test[:2]]
        assert first_two == sorted(first_two)
        shot = tmp_path / "compare.png"
        compare = render(compare_url(base, experiment.experiment_id,
                                     [runs["lstm"].info.run_id, runs["cnn"].info.run_id]),
                         screenshot=shot)
    assert "Comparing 2 Runs from 1 Experiment" in compare
    for param in ("maxlen", "embedding_dim", "learning_rate", "units"):
        assert param in compare
    for metric in ("test_accuracy", "val_accuracy", "test_roc_auc"):
        assert metric in compare
    accuracy = runs["lstm"].data.metrics["test_accuracy"]
    assert f"{accuracy:.3f}".rstrip("0") in compare  # the value itself is on the page
    assert shot.stat().st_size > 20_000
    registry = json.loads((project / "reports/registry.json").read_text())
    assert "imdb-sentiment" in champion_page and "champion" in champion_page
    assert f"Version {registry['version']}" in champion_page
    assert "chosen_by : best mean validation accuracy over training seeds" in champion_page
    # the study's run, its Optuna figures among its artifacts, on the model-training side
    assert "(study)" in study_page and "optuna/history.png" in study_page
    assert "slice.png" in study_page and "Evaluation runs" not in study_page


def test_the_champion_is_registered_by_mean_validation_accuracy_and_served(project):
    """register picks the best mean validation accuracy over seeds and serves its best seed's
    weights; `mlflow models serve` of the champion answers raw text with imdb-predict's
    probabilities."""
    import socket
    import time
    import urllib.request

    registry = json.loads((project / "reports/registry.json").read_text())
    means = {p.stem: json.loads(p.read_text()) for p in (project / "reports/seeds").glob("*.json")}
    assert registry["val_accuracy_mean"] == max(m["val_accuracy_mean"] for m in means.values())
    summary = means[registry["model"]]
    assert registry["served_seed"] == summary["best_val_seed"]
    assert registry["val_accuracy"] == max(r["val_accuracy"] for r in summary["runs"])
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    champion = client.get_model_version_by_alias("imdb-sentiment", "champion")
    assert str(champion.version) == registry["version"]
    assert champion.source == f"models:/{registry['model_id']}"
    assert json.loads((project / registry["model_dir"] / "run.json").read_text())[
        "model_id"] == registry["model_id"]
    assert champion.tags["chosen_by"] == "best mean validation accuracy over training seeds"
    assert float(champion.tags["test_accuracy"]) == pytest.approx(registry["test_accuracy"],
                                                                   abs=1e-5)  # tag: 5 decimals
    assert "(champion)" in (project / "reports/registry.md").read_text()
    texts = ["A wonderful, moving film.", "Awful, boring, two hours I will never get back.",
             "The plot was thin but the acting carried it."]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlflow.db",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               "models:/imdb-sentiment@champion", "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port), "-w", "1"], cwd=project,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the model server did not start in 180 s"
                time.sleep(1)
        body = json.dumps({"dataframe_split": {"columns": ["review"],
                                               "data": [[t] for t in texts]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    served = [row["positive_probability"] for row in answer["predictions"]]
    for source in (registry["model_dir"], "models:/imdb-sentiment@champion"):
        lines = run(["imdb-predict", source, *texts], project).stdout.strip().splitlines()
        assert [float(line.split("\t")[0]) for line in lines] == pytest.approx(served, abs=5e-5)
