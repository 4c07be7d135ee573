"""The `seeds_tuned` stage: a study's best configuration retrained with the seeds of
``report.seeds``, as :mod:`imdb_rnn.pipeline.seeds` retrains a baseline, so that "Did tuning
pay?" compares two configurations over the same seeds rather than two sets of weights.

A study whose best configuration is the baseline's own (trial 0 won: ``best_is_baseline`` in
its best.json) reuses the baseline's seed runs: the same section and seeds give the same runs,
and the default run's wall time has no room for training them twice.
"""

from __future__ import annotations

from pathlib import Path

from imdb_rnn.config import Params, model_section
from imdb_rnn.io import atomic_path, read_json, write_json
from imdb_rnn.layout import SEED_FILE, tuned_name
from imdb_rnn.pipeline.seeds import replicate
from imdb_rnn.search import study as tuning


def replicate_tuned(params: Params, study: str, data_dir: Path, best_json: Path,
                    tuned_train_json: Path, tuned_test_json: Path, baseline_seeds_json: Path,
                    out_json: Path, model_out: Path) -> dict:
    """Study ``study``'s best configuration (``best_json``) trained with the seeds of
    ``report.seeds``, as :func:`replicate`; its ``train.seed`` run is model ``tuned_STUDY``
    (``tuned_*_json``). When the best configuration is the baseline's own, the baseline's seed
    runs (``baseline_seeds_json``) are reused: nothing is trained."""
    name = tuned_name(study)
    best = read_json(best_json, f"study {study} summary")
    spec = params.tune.studies[study]
    if best.get("best_is_baseline"):
        summary = read_json(baseline_seeds_json, f"{spec.model} seed summary")
        summary |= {"model": name, "reused_from": f"seeds@{spec.model}"}
        with atomic_path(model_out, directory=True) as model_tmp, \
                atomic_path(out_json) as json_tmp:
            write_json(model_tmp / SEED_FILE, {
                "model": name, "best_val_seed": summary["best_val_seed"],
                "weights": summary["best_val_weights"], "weights_of": summary["weights_of"],
                "reused_from": summary["reused_from"], "model_folder_here": False})
            write_json(json_tmp, summary)
        return summary
    section = tuning.with_values(model_section(params, spec.model), best["best_params"])
    return replicate(params, name, data_dir, tuned_train_json, tuned_test_json, out_json,
                     model_out, section=section, stage=f"seeds_tuned@{study}")
