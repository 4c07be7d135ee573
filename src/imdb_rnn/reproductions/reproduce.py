"""Run a classic preset the classic way, over a few seeds, beside its published number
(the command ``imdb-reproduce``: its usage is arguments.DESCRIPTION)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from imdb_rnn.config import Params, load_params
from imdb_rnn.data import (VOCAB_FILE, Sequences, build_embeddings, embedding_matrix,
                           load_sequences, load_vocabulary, sha256_of)
from imdb_rnn.errors import PipelineError
from imdb_rnn.evaluation import classification_metrics
from imdb_rnn.io import read_json, write_json, write_text
from imdb_rnn.modeling import Arrays, InputShape, Recipe, fit, predict_probabilities
from imdb_rnn.reproductions import arguments
from imdb_rnn.reproductions.presets import PRESETS, Preset, Variant, get_preset
from imdb_rnn.tracking import runs as tracking

EXPERIMENT = "imdb-reproductions"
XOR_INPUTS = np.array([[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]], dtype=np.float32)  # (4, 1, 2)
XOR_TARGETS = np.array([0, 1, 1, 0], dtype=np.float32)
WORD2VEC_ORIGIN = ("word2vec trained here on the training and unlabeled reviews, not the "
                   "published GoogleNews vectors")
CHECK_EVERY = 25  # XOR epochs between checks of whether all four outputs are right


def input_shape(preset: Preset) -> InputShape:
    """The classic input: cut and padded at the front to ``maxlen``, as ``pad_sequences`` does;
    ids outside the ``num_words`` most frequent words become the out-of-vocabulary id."""
    return InputShape(preset.maxlen, padding="pre", truncating="pre", fixed_length=True,
                      num_words=preset.num_words)


def recipe(preset: Preset, variant: Variant, *, embedding_trainable: bool = True) -> Recipe:
    """The preset's recipe for one variant: the classic feed (one padded array, ``model.fit``
    with its defaults), the preset's optimizer, batch size, epochs and loss."""
    return Recipe(family=variant.family,
                  architecture={**variant.hyperparameters,
                                "embedding_trainable": embedding_trainable},
                  shape=input_shape(preset), optimizer=preset.optimizer,
                  learning_rate=preset.learning_rate, batch_size=preset.batch_size,
                  epochs=preset.epochs, loss=preset.loss, feed="classic")


def split_reviews(train: Sequences, val: Sequences, test: Sequences, preset: Preset,
                  seed: int) -> dict[str, Sequences]:
    """The preset's training/validation/test reviews from the pipeline's splits.

    The classic recipes start from the 25,000 official training reviews (the pipeline's train
    and val together), shuffled once with ``seed`` (the data-split seed), and hold out the last
    ``val_fraction`` as Keras' validation_split does. ``subset`` keeps the first N training and
    N test reviews of that shuffled order.
    """
    everything = Sequences(np.concatenate([train.ids, val.ids]),
                           np.concatenate([train.offsets, val.offsets[1:] + train.offsets[-1]]),
                           np.concatenate([train.labels, val.labels]),
                           np.concatenate([train.reviews, val.reviews]))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(everything))
    test_order = rng.permutation(len(test))
    if preset.subset is not None:
        order, test_order = order[:preset.subset], test_order[:preset.subset]
    n_val = int(round(len(order) * preset.val_fraction))
    return {"train": everything.subset(order[:len(order) - n_val]),
            "val": everything.subset(order[len(order) - n_val:]),
            "test": test.subset(test_order)}


def classic_fit(recipe: Recipe, splits: dict[str, Sequences], *, vocab_size: int, seed: int,
                embedding: np.ndarray | None = None, verbose: int = 2) -> dict:
    """Fit as the classic examples do (through the one fit path), then score the test reviews
    (through the one prediction path); per-epoch history, accuracies, seconds."""
    result = fit(recipe, splits["train"], splits["val"], vocab_size=vocab_size, seed=seed,
                 embedding=embedding, verbose=verbose)
    test = splits["test"]
    probabilities = predict_probabilities(result.model, test, recipe.shape, 512)
    history = result.history
    return {"seed": seed, "epochs": len(history),
            "val_accuracy": history[-1]["val_accuracy"],
            "best_val_accuracy": max(h["val_accuracy"] for h in history),
            "test_accuracy": classification_metrics(test.labels, probabilities)["accuracy"],
            "train_seconds": round(result.seconds, 1),
            "train_samples_per_second": round(result.samples_per_second, 1),
            "history": history}


def summarize(runs: list[dict], metric: str, published: float | None) -> dict:
    """Mean and spread of ``metric`` over seeds, and whether the published number lies within
    two standard deviations of our mean (None when there is no number or only one seed)."""
    values = [r[metric] for r in runs]
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else None
    within = (None if published is None or sd is None
              else abs(mean - published) <= 2 * sd)
    return {"metric": metric, "n": len(values), "mean": mean, "sd": sd, "min": min(values),
            "max": max(values), "published": published,
            "difference": None if published is None else mean - published, "within": within}


def run_variant(preset: Preset, variant: Variant, splits: dict[str, Sequences], vocab_size: int,
                seeds: list[int], *, experiment: tracking.Experiment,
                vectors: tuple[np.ndarray, bool] | None, params_logged: dict) -> list[dict]:
    """Train one variant once per seed, each as an MLflow run; ``vectors`` (matrix, trainable)
    initialise its embedding."""
    matrix, trainable = vectors if vectors is not None else (None, True)
    variant_recipe = recipe(preset, variant, embedding_trainable=trainable)
    runs = []
    for seed in seeds:
        tags = {"preset": preset.name, "variant": variant.name, "stage": "reproduce",
                "git_commit": tracking.git_commit()}
        with experiment.run(f"{preset.name}/{variant.name}/seed{seed}", tags=tags) as run:
            run.log_params({**params_logged, "variant": variant.name, "seed": seed})
            result = classic_fit(variant_recipe, splits, vocab_size=vocab_size, seed=seed,
                                 embedding=matrix)
            run.log_history(result["history"])
            run.log_metrics({k: result[k] for k in ("val_accuracy", "best_val_accuracy",
                                                    "test_accuracy", "train_seconds")})
        print(f"{preset.name}/{variant.name} seed {seed}: {preset.metric} "
              f"{result[preset.metric]:.4f}, test {result['test_accuracy']:.4f}, "
              f"{result['train_seconds']:.0f} s", flush=True)
        runs.append(result)
    return runs


def result_key(preset: str, vectors_file: Path | None, trainable: bool) -> str:
    """The name a preset's results are saved under: the preset, plus the vectors file when one
    was given, so runs with learned and with pretrained embeddings stay side by side."""
    if vectors_file is None:
        return preset
    return f"{preset}+{vectors_file.stem}{'-trainable' if trainable else ''}"


def reproduce(preset: Preset, data_dir: Path, seeds: list[int], *, split_seed: int,
              experiment: tracking.Experiment, vectors_file: Path | None = None,
              vectors_trainable: bool = False, vectors_origin: str = "") -> dict:
    """Every variant of ``preset`` over ``seeds``: per-run results and the summary per variant."""
    start = time.perf_counter()
    vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
    splits = split_reviews(*(load_sequences(data_dir / f"{s}.npz") for s in ("train", "val", "test")),
                           preset, split_seed)
    vocab_size = min(preset.num_words or len(vocabulary), len(vocabulary))
    vectors, embedding_note = None, ""
    if preset.embedding_dim is not None:
        if vectors_file is not None:
            matrix, coverage = embedding_matrix(vectors_file, vocabulary, preset.embedding_dim,
                                                split_seed)
            vectors = (matrix, vectors_trainable)
            embedding_note = (f"{'trainable' if vectors_trainable else 'frozen'} vectors from "
                              f"{vectors_file.name} ({coverage:.0%} of the vocabulary)"
                              + (f", {vectors_origin}" if vectors_origin else ""))
        else:
            embedding_note = (f"no vectors file given: a learned {preset.embedding_dim}-d "
                              "embedding instead of the published word2vec vectors")
    params_logged = {"preset": preset.name, "maxlen": preset.maxlen,
                     "num_words": vocab_size, "epochs": preset.epochs,
                     "batch_size": preset.batch_size, "optimizer": preset.optimizer,
                     "learning_rate": preset.learning_rate, "train_reviews": len(splits["train"]),
                     "val_reviews": len(splits["val"]), "test_reviews": len(splits["test"]),
                     "embedding": embedding_note or "learned"}
    variants = {}
    for variant in preset.variants:
        runs = run_variant(preset, variant, splits, vocab_size, seeds,
                           experiment=experiment, vectors=vectors,
                           params_logged=params_logged)
        variants[variant.name] = {"note": variant.note, "runs": runs,
                                  "summary": summarize(runs, preset.metric, variant.published),
                                  "test": summarize(runs, "test_accuracy", None)}
    return {"preset": preset.name,
            "key": result_key(preset.name, vectors_file, vectors_trainable),
            "source": preset.source, "metric": preset.metric, "seeds": seeds,
            "embedding": embedding_note, "setup": params_logged,
            "wall_seconds": round(time.perf_counter() - start, 1), "variants": variants}


def reproduce_xor(seeds: list[int], *, epochs: int = 2000, learning_rate: float = 1.0) -> dict:
    """Elman's XOR: SimpleRNN(2) + Dense(1, tanh), Adadelta, MSE, full batch; accuracy per seed
    and the first epoch at which all four outputs round to their target (training stops
    there; a seed that never gets there trains all ``epochs``).

    ``learning_rate`` 1.0 is Adadelta's default in the Keras of the time (Keras 3 defaults to
    0.001, with which a thousand epochs barely move the weights).
    """
    start = time.perf_counter()
    # Full batch (all four cases), one step an epoch, Adadelta and MSE: the classic feed of the
    # one fit path, with arrays instead of reviews.
    xor = Recipe(family="elman_xor", architecture={"embedding_trainable": True},
                 shape=InputShape(1), optimizer="adadelta", learning_rate=learning_rate,
                 batch_size=len(XOR_INPUTS), epochs=epochs, loss="mean_squared_error",
                 feed="classic")
    runs = []
    for seed in seeds:
        solved = _FirstSolved()
        result = fit(xor, Arrays(XOR_INPUTS, XOR_TARGETS), None, vocab_size=0, seed=seed,
                     callbacks=[solved], verbose=0)
        outputs = result.model.predict(XOR_INPUTS, verbose=0).reshape(-1)
        acc = float(np.mean((outputs > 0.5) == (XOR_TARGETS > 0.5)))
        runs.append({"seed": seed, "accuracy": acc, "solved_at_epoch": solved.epoch,
                     "epochs": len(result.history)})
    summary = summarize(runs, "accuracy", 1.0)
    return {"preset": "elman_xor", "source": "Elman (1990) XOR as a sequence",
            "metric": "accuracy", "seeds": seeds, "embedding": "",
            "wall_seconds": round(time.perf_counter() - start, 1),
            "variants": {"simple_rnn_2": {"note": f"Adadelta(learning_rate={learning_rate}), "
                                          f"at most {epochs} epochs; all four right from epoch "
                                          + ", ".join(str(r["solved_at_epoch"] or "never")
                                                      for r in runs),
                                          "runs": runs, "summary": summary}}}


class _FirstSolved(keras.callbacks.Callback):
    """Records the first epoch after which every XOR output rounds to its target, and ends
    training there (later epochs cannot change when it was solved)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.epoch is None and (epoch + 1) % CHECK_EVERY == 0:
            outputs = keras.ops.convert_to_numpy(self.model(XOR_INPUTS)).reshape(-1)
            if np.all((outputs > 0.5) == (XOR_TARGETS > 0.5)):
                self.epoch = epoch + 1
                self.model.stop_training = True


def word2vec_for(preset: Preset, params: Params, data_dir: Path, raw_archive: Path,
                 table: Path) -> Path:
    """word2vec vectors of the preset's size, trained as the ``embed`` stage trains its own
    (``embed`` params, training split + unlabeled reviews, never the test split), for presets
    whose published recipe starts from word2vec. Saved as ``word2vec{dim}.txt`` beside the
    stage's vectors, with a JSON of what they came from; reused while that still matches."""
    if preset.embedding_dim is None:
        raise PipelineError(f"--word2vec: preset {preset.name} learns its own embedding; the "
                            "presets that start from word vectors are "
                            + ", ".join(n for n, p in PRESETS.items() if p.embedding_dim))
    embed = params.embed.model_copy(update={"dim": preset.embedding_dim})
    vocab = data_dir / VOCAB_FILE
    for path in (vocab, table, raw_archive):
        if not path.is_file():
            raise PipelineError(f"--word2vec: {path} not found (dvc repro vectorize makes it)")
    out = data_dir.parent / "embeddings" / f"word2vec{embed.dim}.txt"
    origin = {"embed": embed.model_dump(), "vocabulary_sha256": sha256_of(vocab),
              "table_sha256": sha256_of(table)}
    meta = out.with_suffix(".json")
    if out.is_file() and meta.is_file() and read_json(meta, "vectors summary")["origin"] == origin:
        print(f"word2vec: reusing {out} ({embed.dim}-d)", flush=True)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"word2vec: training {embed.dim}-d vectors into {out}", flush=True)
    summary = build_embeddings(raw_archive, table, vocab, params.preprocess, embed, out)
    write_json(meta, {"origin": origin, **summary})
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def table_markdown(results: Sequence[dict]) -> str:
    """The reproductions table: published number, ours (mean ± sd over seeds), verdict, time."""
    lines = ["# Reproductions of classic IMDB results", "",
             "Each preset is a published recipe run as published (`imdb-reproduce NAME`): ours is "
             "the mean ± standard deviation over the seeds; *within* means the published number "
             "lies within two standard deviations of our mean. *Best val* is the best epoch's "
             "validation accuracy (mean over seeds): the recipes train a fixed number of epochs "
             "with no early stopping, so a run past its peak scores below it.", "",
             "| preset | variant | metric | published | ours (mean ± sd, n) | min - max | "
             "difference | within spread | best val | test accuracy | wall time (preset) | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for name, variant in result["variants"].items():
            s = variant["summary"]
            sd = "" if s["sd"] is None else f" ± {s['sd']:.2%}"
            diff = "-" if s["difference"] is None else f"{s['difference'] * 100:+.1f} pts"
            within = {None: "-", True: "yes", False: "**no**"}[s["within"]]
            test = variant.get("test")
            test_text = "-" if test is None else f"{test['mean']:.2%}"
            best = [r["best_val_accuracy"] for r in variant["runs"] if "best_val_accuracy" in r]
            best_text = f"{statistics.fmean(best):.2%}" if best else "-"
            note = "; ".join(x for x in (variant["note"], result.get("embedding", "")) if x)
            lines.append(f"| {result['preset']} | {name} | {s['metric']} | {_pct(s['published'])}"
                         f" | {s['mean']:.2%}{sd} ({s['n']}) | {_pct(s['min'])} - "
                         f"{_pct(s['max'])} | {diff} | {within} | {best_text} | {test_text} | "
                         f"{result['wall_seconds']:.0f} s | {note} |")
    missing = sorted((set(PRESETS) | {"elman_xor"}) - {r["preset"] for r in results})
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)} (`imdb-reproduce NAME`)."]
    return "\n".join(lines) + "\n"


def write_reports(result: dict, out_dir: Path, table: Path) -> None:
    """Save one preset's results and rebuild the table from every preset's file."""
    write_json(out_dir / f"{result.get('key', result['preset'])}.json", result)
    results = [read_json(p, "reproduction results")
               for p in sorted(out_dir.glob("*.json"), key=lambda p: p.stem)]
    write_text(table, table_markdown(results))


def check_not_smaller(out_dir: Path, key: str, seeds: Sequence[int], replace: bool) -> None:
    """Refuse, before any training, a run of fewer seeds than the saved row of ``key`` has (a
    committed 5-seed row is not replaced by a 3-seed one unless ``replace``)."""
    saved = out_dir / f"{key}.json"
    if replace or not saved.is_file():
        return
    before = read_json(saved, "reproduction results").get("seeds") or []
    if len(before) > len(seeds):
        raise PipelineError(
            f"{saved} holds {len(before)} seeds ({' '.join(map(str, before))}) and this run "
            f"has {len(seeds)}: not replaced; give --seeds {' '.join(map(str, before))} (or "
            f"more), or --replace")


def main(argv: Sequence[str] | None = None) -> None:
    args = arguments.parser().parse_args(argv)
    if args.preset == arguments.XOR:
        key = arguments.XOR
    else:
        vectors = (Path(f"word2vec{get_preset(args.preset).embedding_dim}.txt") if args.word2vec
                   else args.vectors)
        key = result_key(args.preset, vectors, args.trainable)
    check_not_smaller(args.out, key, args.seeds, args.replace)
    if args.preset == arguments.XOR:
        if args.vectors or args.word2vec:
            raise PipelineError("elman_xor has no embedding: --vectors and --word2vec do not apply")
        result = reproduce_xor(args.seeds)
    else:
        preset = get_preset(args.preset)
        params = load_params(args.params)
        if args.word2vec and args.vectors is not None:
            raise PipelineError("--word2vec and --vectors: give one source of word vectors")
        experiment = tracking.connect(params.mlflow, EXPERIMENT)  # fail before training
        if args.word2vec:
            args.vectors = word2vec_for(preset, params, args.data, args.archive, args.reviews)
        result = reproduce(preset, args.data, args.seeds,
                           split_seed=params.preprocess.split_seed, experiment=experiment,
                           vectors_file=args.vectors, vectors_trainable=args.trainable,
                           vectors_origin=WORD2VEC_ORIGIN if args.word2vec else "")
    write_reports(result, args.out, args.table)
    print(f"{args.preset}: {result['wall_seconds']:.0f} s; table: {args.table}")
