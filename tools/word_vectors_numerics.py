"""Which CPU numerics change the word2vec vectors: their md5 under several environments.

Trains the embed stage's word2vec (``imdb_rnn.data.embed.train_word2vec``, the ``embed`` params
of ``params.yaml`` with fewer epochs) on the first ``--reviews`` training-split reviews of the
offline archive, once per setting, each in a fresh process whose environment carries the
setting (OpenBLAS reads ``OPENBLAS_CORETYPE`` only when the library loads, NumPy reads
``NPY_DISABLE_CPU_FEATURES`` at import, glibc reads ``GLIBC_TUNABLES`` at start-up), and prints a
Markdown table: the md5 of the vectors, the OpenBLAS kernels that scipy (gensim's BLAS) and NumPy
actually loaded, and the seconds word2vec took. ``--probe`` adds, per setting, the md5 of
gensim's two BLAS calls (``sdot`` and ``saxpy`` of scipy's OpenBLAS) on fixed random vectors of
the vectors' length, which says which operation differs.

    python tools/word_vectors_numerics.py --reviews 3000 --epochs 2 --probe \\
        --setting default --setting OPENBLAS_CORETYPE=Haswell \\
        --setting 'OPENBLAS_CORETYPE=Nehalem NPY_DISABLE_CPU_FEATURES=AVX512F'

A setting is ``default`` (the environment as it is, without OPENBLAS_CORETYPE) or space-separated
``NAME=VALUE`` pairs. Not a test and not a stage: the measurement behind
``reports/sweeps/word_vectors_numerics.md``. Never writes to this workspace (only ``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def parse_setting(text: str) -> dict[str, str]:
    """``default`` -> {}; ``A=1 B=2`` -> {"A": "1", "B": "2"}."""
    if text == "default":
        return {}
    pairs: dict[str, str] = {}
    for pair in text.split():
        name, sep, value = pair.partition("=")
        if not sep or not name or not set(name) <= NAME_CHARS:
            raise SystemExit(f"error: --setting {text!r}: {pair!r} is not NAME=VALUE")
        pairs[name] = value
    if not pairs:
        raise SystemExit(f"error: --setting {text!r}: expected 'default' or NAME=VALUE pairs")
    return pairs


def sections(params_file: Path) -> tuple[dict, dict]:
    """The ``preprocess`` and ``embed`` sections of the params file (its profile applied).

    Only these two are read (and ``embed`` validated), so the measurement runs while other
    sections are being changed."""
    import yaml

    from imdb_rnn.config import apply_profile

    data = apply_profile(yaml.safe_load(params_file.read_text(encoding="utf-8")),
                         str(params_file))
    return data["preprocess"], data["embed"]


def training_texts(archive: Path, reviews: int, params_file: Path) -> list[str]:
    """The first ``reviews`` training-split reviews (by path), standardised as the pipeline does."""
    from imdb_rnn.data.preprocess import read_archive
    from imdb_rnn.data.text import standardize

    preprocess, _ = sections(params_file)
    table = read_archive(archive)
    train = table[table["split"] == "train"].sort_values("review").head(reviews)
    return [standardize(text, lowercase=preprocess["lowercase"],
                        punctuation=preprocess["punctuation"]) for text in train["text"]]


def blas_kernels() -> dict[str, str]:
    """The OpenBLAS kernel each loaded OpenBLAS chose: {'scipy': 'SkylakeX', 'numpy': ...}."""
    import threadpoolctl

    kernels = {}
    for library in threadpoolctl.threadpool_info():
        if library.get("internal_api") == "openblas":
            owner = "numpy" if "numpy.libs" in library["filepath"] else "scipy"
            kernels[owner] = str(library.get("architecture"))
    return kernels


def probe(dim: int) -> dict[str, str]:
    """md5 prefixes of scipy's OpenBLAS sdot and saxpy on fixed vectors of length ``dim``."""
    import numpy as np
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 1000, dim), dtype=np.float32)
    dots = np.array([blas.sdot(a, b) for a, b in zip(x, y)], dtype=np.float32)
    axpys = np.stack([blas.saxpy(a, b.copy(), a=np.float32(0.3)) for a, b in zip(x, y)])
    return {"sdot": hashlib.md5(dots.tobytes()).hexdigest()[:8],
            "saxpy": hashlib.md5(axpys.tobytes()).hexdigest()[:8]}


def train_once(texts_file: Path, epochs: int, params_file: Path, with_probe: bool) -> dict:
    """One setting's run (in the child process): md5 of the vectors, kernels, seconds."""
    from imdb_rnn.config import EmbedParams
    from imdb_rnn.data.embed import train_word2vec

    texts = texts_file.read_text(encoding="utf-8").split("\n")
    params = EmbedParams.model_validate(sections(params_file)[1] | {"epochs": epochs})
    vocabulary = ["[PAD]", "[UNK]", *sorted({w for t in texts for w in t.split()})]
    start = time.perf_counter()
    vectors, _ = train_word2vec(texts, params, vocabulary)
    seconds = time.perf_counter() - start
    result = {"md5": hashlib.md5(vectors.tobytes()).hexdigest(), "seconds": round(seconds, 2),
              "kernels": blas_kernels()}
    if with_probe:
        result |= probe(params.dim)
    return result


def run_setting(setting: str, texts_file: Path, epochs: int, params_file: Path,
                with_probe: bool) -> dict:
    """Run ``train_once`` in a fresh process with the setting in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env |= parse_setting(setting)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      os.environ.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--child", str(texts_file), "--epochs", str(epochs),
               "--params", str(params_file)] + (["--probe"] if with_probe else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: setting {setting!r}: the run failed: {tail}")
    return {"setting": setting, **json.loads(done.stdout.strip().splitlines()[-1])}


def table(rows: list[dict]) -> str:
    """The Markdown table of the runs, one row per setting and repeat."""
    probe_cols = "sdot" in rows[0]
    head = "| setting | scipy kernel | numpy kernel | vectors md5 | seconds |"
    rule = "|---|---|---|---|---:|"
    if probe_cols:
        head, rule = head + " sdot md5 | saxpy md5 |", rule + "---|---|"
    lines = [head, rule]
    for row in rows:
        cells = [f"`{row['setting']}`", row["kernels"].get("scipy", "-"),
                 row["kernels"].get("numpy", "-"), f"`{row['md5'][:8]}`", f"{row['seconds']:.2f}"]
        if probe_cols:
            cells += [f"`{row['sdot']}`", f"`{row['saxpy']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared" / "data"
                        / "aclImdb_labeled.tar.gz")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--reviews", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting (timing)")
    parser.add_argument("--setting", action="append", metavar="'NAME=VALUE ...'|default",
                        help="an environment to train under; repeatable")
    parser.add_argument("--probe", action="store_true", help="also hash sdot and saxpy")
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(train_once(args.child, args.epochs, args.params, args.probe)))
        return 0
    if args.reviews < 1 or args.epochs < 1 or args.repeats < 1:
        parser.error("--reviews, --epochs and --repeats must be at least 1")
    if not args.archive.is_file():
        parser.error(f"--archive {args.archive}: not found")
    settings = args.setting or ["default"]
    for setting in settings:
        parse_setting(setting)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        texts_file = Path(scratch) / "texts.txt"
        texts_file.write_text("\n".join(training_texts(args.archive, args.reviews, args.params)),
                              encoding="utf-8")
        for _ in range(args.repeats):
            for setting in settings:
                rows.append(run_setting(setting, texts_file, args.epochs, args.params,
                                        args.probe))
                print(json.dumps(rows[-1]), file=sys.stderr)
    if args.out is not None:
        args.out.write_text(json.dumps({"reviews": args.reviews, "epochs": args.epochs,
                                        "runs": rows}, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
