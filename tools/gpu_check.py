"""Does this machine's TensorFlow train the pipeline's LSTM and GRU with the cuDNN kernel?

Run it after the GPU install (README, "On a GPU"):

    python tools/gpu_check.py                  # train.models of params.yaml, synthetic reviews
    python tools/gpu_check.py --out reports/gpu_check.json

For each recurrent family of ``train.models`` it builds the model through the one training path
(registry, recipe, bucketed right-padded batches), traces one training step and lists the
recurrent ops of its graph: ``CudnnRNNV3`` is the cuDNN kernel, a ``While`` loop over the cell
the generic one. It then times samples/s of a few epochs on synthetic reviews in float32 and
under the ``mixed_float16`` policy. On a machine without a GPU it says so and reports the
generic kernel (what a CPU always runs). Exit code 1 when a GPU is present and an LSTM or GRU
does not take the cuDNN kernel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import load_params
from imdb_rnn.data.vectorize import Sequences
from imdb_rnn.modeling import fit, recipe_for
from imdb_rnn.modeling.fit import compile_model, build
from imdb_rnn.modeling.inputs import make_dataset

CUDNN_OPS = {"CudnnRNN", "CudnnRNNV2", "CudnnRNNV3"}
RECURRENT_FAMILIES = {"lstm", "gru", "bidirectional", "simple_rnn"}


def synthetic_reviews(n: int, vocab_size: int, maxlen: int, seed: int = 0) -> Sequences:
    """``n`` reviews of random ids with IMDB-like lengths (log-normal around 230 tokens)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(5.4, 0.7, n).astype(np.int64), 10, maxlen)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(2, vocab_size, offsets[-1]).astype(np.int32)
    return Sequences(ids, offsets, rng.integers(0, 2, n).astype(np.int8), None)


def _op_types(graph: tf.Graph) -> set[str]:
    """Op types of a graph and of every function it calls (the RNN loop is a nested function)."""
    types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # noqa: SLF001  nested FuncGraphs
        types |= {node.op for node in function.cached_definition.node_def}
    return types


def kernel_of(recipe, data: Sequences, vocab_size: int) -> dict:
    """The recurrent ops in one traced training step of ``recipe``."""
    keras.backend.clear_session()
    model = build(recipe, vocab_size)
    dataset, _ = make_dataset(data, recipe.shape, recipe.batch_size, seed=0)
    compile_model(model, recipe, steps_per_epoch=int(dataset.cardinality()))
    x, y = next(iter(dataset))
    model.train_on_batch(x, y)  # builds the optimizer's variables
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    types = _op_types(graph)
    cudnn = sorted(types & CUDNN_OPS)
    return {"cudnn_ops": cudnn, "generic_loop": "While" in types or "StatelessWhile" in types}


def samples_per_second(recipe, data: Sequences, vocab_size: int, epochs: int) -> float:
    result = fit(recipe.with_(epochs=epochs), data, None, vocab_size=vocab_size, seed=1, verbose=0)
    seconds = sum(row["seconds"] for row in result.history[1:]) or result.history[0]["seconds"]
    counted = max(len(result.history) - 1, 1)
    return len(data) * counted / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reviews", type=int, default=4000, help="synthetic training reviews")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (the first warms up)")
    parser.add_argument("--out", type=Path, help="write the findings here (JSON)")
    args = parser.parse_args()
    params = load_params(args.params)
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    vocab_size = params.vectorize.max_features
    findings = {"tensorflow": tf.__version__, "keras": keras.__version__, "gpus": gpus,
                "built_with_cuda": tf.test.is_built_with_cuda(), "models": {}}
    print(f"TensorFlow {tf.__version__}, GPUs: {', '.join(gpus) or 'none'}")
    bad = []
    for name, section in params.train.models.items():
        if section.family not in RECURRENT_FAMILIES:
            continue
        recipe = recipe_for(section)
        data = synthetic_reviews(args.reviews, vocab_size, section.maxlen)
        row = {"family": section.family, **kernel_of(recipe, data, vocab_size)}
        for policy in ("float32", "mixed_float16"):
            keras.mixed_precision.set_global_policy(policy)
            row[f"samples_per_s_{policy}"] = round(samples_per_second(recipe, data, vocab_size,
                                                                      args.epochs), 1)
        keras.mixed_precision.set_global_policy("float32")
        findings["models"][name] = row
        kernel = ", ".join(row["cudnn_ops"]) or "generic (While loop)"
        print(f"{name}: kernel {kernel}; samples/s float32 {row['samples_per_s_float32']}, "
              f"mixed_float16 {row['samples_per_s_mixed_float16']}", flush=True)
        wants_cudnn = section.family in {"lstm", "gru"} or getattr(section, "cell", "") in {
            "lstm", "gru"}
        if gpus and wants_cudnn and not row["cudnn_ops"]:
            bad.append(name)
    if not gpus:
        print("no GPU: every recurrent layer runs the generic kernel (expected on a CPU)")
    if args.out:
        args.out.write_text(json.dumps(findings, indent=2) + "\n")
    if bad:
        print(f"error: on a GPU, {', '.join(bad)} did not take the cuDNN kernel", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
