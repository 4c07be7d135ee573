"""Word vectors: unlabeled reviews, word2vec training, text-format vectors files, Embedding init."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_archive, tiny_reviews

from imdb_rnn.data.embed import (DEFAULT_BLAS_CORETYPE, TARGET_STD, blas_coretype,
                                 embedding_matrix, pin_blas_kernel, read_unlabeled, read_vectors,
                                 train_word2vec, unlabeled_texts, write_vectors)
from imdb_rnn.errors import PipelineError
from imdb_rnn.data.fetch import sha256_of
from imdb_rnn.config.params import EmbedParams

VOCAB = ["[PAD]", "[UNK]", "good", "bad", "film"]


def embed_params(**overrides) -> EmbedParams:
    values = {"dim": 3, "algorithm": "cbow", "window": 2, "min_count": 1, "epochs": 2, "seed": 1,
              "workers": 1, "use_unlabeled": True, "unlabeled_archive": None,
              "unlabeled_sha256": None} | overrides
    return EmbedParams.model_validate(values)


def unsup_archive(path: Path, n: int = 3) -> Path:
    files = {f"train/unsup/{i}_0.txt": f"unlabeled review {i}".encode() for i in (10, 2, 7)[:n]}
    return make_archive(path, files)


def test_unlabeled_reviews_are_read_in_id_order_and_labeled_ones_skipped(tmp_path):
    files = tiny_reviews(2) | {"train/unsup/10_0.txt": b"ten", "train/unsup/9_0.txt": b"nine"}
    assert read_unlabeled(make_archive(tmp_path / "a.tar.gz", files)) == ["nine", "ten"]


def test_unlabeled_come_from_the_archive_then_the_local_copy_then_nowhere(tmp_path):
    official = make_archive(tmp_path / "official.tar.gz",
                            tiny_reviews(1) | {"train/unsup/1_0.txt": b"inside"})
    labeled_only = make_archive(tmp_path / "labeled.tar.gz", tiny_reviews(1))
    local = unsup_archive(tmp_path / "unsup.tar.gz")
    with_local = embed_params(unlabeled_archive=str(local), unlabeled_sha256=sha256_of(local))

    assert unlabeled_texts(official, with_local) == (["inside"], str(official))
    texts, source = unlabeled_texts(labeled_only, with_local)
    assert texts == ["unlabeled review 2", "unlabeled review 7", "unlabeled review 10"]
    assert source == str(local)
    missing = embed_params(unlabeled_archive=str(tmp_path / "nope.tar.gz"),
                           unlabeled_sha256="0" * 64)
    texts, source = unlabeled_texts(labeled_only, missing)
    assert texts == [] and source.startswith("none")
    assert unlabeled_texts(official, embed_params(use_unlabeled=False))[0] == []


def test_a_local_unlabeled_copy_with_the_wrong_checksum_is_refused(tmp_path):
    labeled_only = make_archive(tmp_path / "labeled.tar.gz", tiny_reviews(1))
    local = unsup_archive(tmp_path / "unsup.tar.gz")
    with pytest.raises(PipelineError, match=r"unsup\.tar\.gz: SHA-256 is [0-9a-f]{64}, expected 0+"):
        unlabeled_texts(labeled_only, embed_params(unlabeled_archive=str(local),
                                                   unlabeled_sha256="0" * 64))


def test_word2vec_is_repeatable_and_covers_the_words_it_saw():
    texts = ["good film good", "bad film bad", "good good film"] * 20
    params = embed_params()
    first, found = train_word2vec(texts, params, VOCAB)
    again, _ = train_word2vec(texts, params, VOCAB)
    np.testing.assert_array_equal(first, again)  # one worker, stable hash: same vectors
    assert found.tolist() == [False, False, True, True, True]
    assert first.shape == (5, 3) and not first[:2].any()


def test_vectors_round_trip_through_the_word2vec_text_format(tmp_path):
    vectors = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
    found = np.array([False, False, True, False, True])
    write_vectors(tmp_path / "v.txt", VOCAB, vectors, found)
    assert (tmp_path / "v.txt").read_text().split("\n")[0] == "2 3"
    read = read_vectors(tmp_path / "v.txt")
    assert list(read) == ["good", "film"]
    np.testing.assert_allclose(read["film"], [1.2, 1.3, 1.4])


def test_glove_files_without_a_header_are_read(tmp_path):
    (tmp_path / "glove.txt").write_text("good 1 0\nbad -1 0\n")
    assert set(read_vectors(tmp_path / "glove.txt")) == {"good", "bad"}


@pytest.mark.parametrize("text, message", [
    ("good 1 2\nbad 1\n", "line 2: 1 numbers, expected 2 like the first vector"),
    ("good 1 x\n", "line 1: not 'word' followed by numbers"),
    ("", "no word vectors in it"),
])
def test_a_malformed_vectors_file_is_one_line_naming_the_line(tmp_path, text, message):
    (tmp_path / "v.txt").write_text(text)
    with pytest.raises(PipelineError, match=message):
        read_vectors(tmp_path / "v.txt")


def test_embedding_matrix_rescales_known_words_and_fills_the_rest(tmp_path):
    (tmp_path / "v.txt").write_text("2 2\ngood 3 -3\nbad -3 3\n")
    matrix, coverage = embedding_matrix(tmp_path / "v.txt", VOCAB, 2, seed=0)
    assert coverage == pytest.approx(2 / 3)  # good, bad of good, bad, film
    assert not matrix[0].any()  # padding row is zero
    known = matrix[[2, 3]]
    assert known.std() == pytest.approx(TARGET_STD, rel=1e-5)
    np.testing.assert_allclose(known[0], -known[1])  # directions kept
    with pytest.raises(PipelineError, match="vectors have 2 dimensions but embedding_dim is 8; "
                                            "set embedding_dim: 2"):
        embedding_matrix(tmp_path / "v.txt", VOCAB, 8, seed=0)
    with pytest.raises(PipelineError, match="nope.txt: word vectors file not found"):
        embedding_matrix(tmp_path / "nope.txt", VOCAB, 2, seed=0)


# word2vec in a fresh process: argv[1] is the kernel to pin ('none': no pin); prints the md5 of
# the vectors. SciPy (gensim's OpenBLAS) is loaded before the pin, so only a pin that restarts
# the process can take effect.
W2V_CHILD = """
import hashlib, random, sys
import scipy.linalg
from imdb_rnn.config import EmbedParams
from imdb_rnn.data.embed import pin_blas_kernel, train_word2vec
if sys.argv[1] != "none":
    pin_blas_kernel(sys.argv[1])
rng = random.Random(0)
words = [f"w{i}" for i in range(40)]
texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)]
params = EmbedParams.model_validate({"dim": 64, "algorithm": "cbow", "window": 3, "min_count": 1,
    "epochs": 2, "seed": 1, "workers": 1, "use_unlabeled": False})
vectors, _ = train_word2vec(texts, params, ["[PAD]", "[UNK]", *words])
print(hashlib.md5(vectors.tobytes()).hexdigest())
"""


def w2v_md5(pin: str, environment_coretype: str | None) -> str:
    """md5 of the vectors of W2V_CHILD, run with OPENBLAS_CORETYPE as given (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if environment_coretype is not None:
        env["OPENBLAS_CORETYPE"] = environment_coretype
    done = subprocess.run([sys.executable, "-c", W2V_CHILD, pin], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), empty elsewhere."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in cpuinfo.splitlines()
                 if line.startswith("flags")), set())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or
                    not {"avx2", "fma"} <= cpu_flags(),
                    reason="needs an x86-64 CPU that runs OpenBLAS' Haswell kernel (AVX2, FMA)")
def test_the_pinned_blas_kernel_decides_the_vectors_whatever_the_environment_names():
    # Unpinned, Haswell's kernel (saxpy with FMA) gives other vectors than Prescott's (SSE3)...
    prescott = w2v_md5("none", "Prescott")
    assert w2v_md5("none", "Haswell") != prescott
    # ...pinned, the environment's kernel (another, or the CPU's own) no longer counts.
    assert w2v_md5("Prescott", "Haswell") == prescott
    assert w2v_md5("Prescott", None) == prescott


def test_an_unknown_blas_kernel_is_named_and_null_pins_nothing(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    with pytest.raises(PipelineError, match="embed.blas_coretype: 'Preskott' is not an OpenBLAS "
                                            "x86-64 kernel"):
        pin_blas_kernel("Preskott")
    assert pin_blas_kernel(None) is None and os.environ["OPENBLAS_CORETYPE"] == "Haswell"
    assert blas_coretype(embed_params()) == DEFAULT_BLAS_CORETYPE  # the field's default


def test_gensims_false_dot_product_errors_are_dropped_and_every_other_line_kept(capsys):
    """gensim 4.4 (Cython 3) reports a dot product of exactly -1.0 as an error it does not
    raise: CPython's default hook prints one "Exception ignored in" line per occurrence. The
    same call, made here through the C API, is dropped while word2vec trains; other lines pass."""
    import ctypes

    from imdb_rnn.data import embed

    with embed.quiet_gensim_dot() as quiet:
        ctypes.pythonapi.PyErr_WriteUnraisable(
            ctypes.py_object("gensim.models.word2vec_inner.our_dot_float"))
        ctypes.pythonapi.PyErr_WriteUnraisable(ctypes.py_object("something.else"))
        print("a line of its own", file=sys.stderr)
    err = capsys.readouterr().err
    assert quiet.dropped == 1
    assert "our_dot_float" not in err
    assert "Exception ignored in: 'something.else'" in err and "a line of its own\n" in err
