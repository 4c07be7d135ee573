"""Word vectors: word2vec trained on the training split and the unlabeled reviews, and any vectors
file in text format (word2vec or GloVe) turned into an initial Embedding matrix.

Only text that is not the test split is used: the training split's reviews and the 50,000
unlabeled ``train/unsup`` reviews of the official release (Maas et al. 2011 used them the same way).
The official archive holds them; the offline copy keeps them in a second archive
(``embed.unlabeled_archive``). Without either, the vectors come from the training split alone,
and ``reports/embed.json`` says so.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tarfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from typing import Any
from pathlib import Path

import numpy as np

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import EmbedParams, ModelSection, PreprocessParams
from imdb_rnn.data.preprocess import check_member
from imdb_rnn.data.vectorize import OOV_ID, PAD_ID

_UNLABELED = re.compile(r"^(?:\./)?aclImdb/train/unsup/(\d+)_0\.txt$")
# Pretrained vectors are rescaled to this standard deviation: the spread of Keras' default
# Embedding initializer, so recurrent gates do not start saturated (raw word2vec vectors are
# about 25 times wider, and an LSTM started from them learns more slowly).
TARGET_STD = 0.05

# The OpenBLAS kernel word2vec runs on (embed.blas_coretype). gensim's inner loop calls scipy's
# OpenBLAS sdot and saxpy, whose kernels round differently per instruction set (SSE, AVX, AVX2 with
# FMA, AVX-512: lanes summed in another order, a*x+y fused or not), and gensim reads sdot's return
# register in a way that depends on the kernel, so each CPU's own choice gave other vectors.
# Prescott's SSE3 kernel runs on every x86-64 CPU (since 2005) and gave one md5 under every
# kernel, NumPy and libm setting tried, for about 20% more word2vec time
# (reports/sweeps/word_vectors_numerics.md).
DEFAULT_BLAS_CORETYPE = "Prescott"
# The names OpenBLAS' OPENBLAS_CORETYPE accepts on x86-64 (driver/others/dynamic.c); OpenBLAS
# ignores any other with a warning and picks the CPU's own kernel.
OPENBLAS_X86_64_CORETYPES = (
    "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn",
    "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano",
    "Sandybridge", "Bobcat", "Bulldozer", "Piledriver", "Haswell", "Steamroller", "Excavator",
    "Zen", "SkylakeX", "Cooperlake", "Sapphirerapids")


def read_unlabeled(path: str | Path) -> list[str]:
    """Raw texts of every ``aclImdb/train/unsup/*.txt`` review in an archive, in id order."""
    found: list[tuple[int, str]] = []
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                check_member(member, path)
                match = _UNLABELED.match(member.name)
                if match and member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    found.append((int(match.group(1)), handle.read().decode("utf-8", "replace")))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise PipelineError(f"{path}: corrupt or truncated archive ({error})") from None
    return [text for _, text in sorted(found)]


def unlabeled_texts(raw_archive: Path, params: EmbedParams) -> tuple[list[str], str]:
    """The unlabeled reviews and where they came from ('none' when there are none)."""
    if not params.use_unlabeled:
        return [], "none (embed.use_unlabeled is false)"
    texts = read_unlabeled(raw_archive)
    if texts:
        return texts, str(raw_archive)
    local = params.unlabeled_archive
    if local is not None and Path(local).is_file():
        from imdb_rnn.data.fetch import verify_sha256

        assert params.unlabeled_sha256 is not None  # guaranteed by EmbedParams
        verify_sha256(local, params.unlabeled_sha256)
        texts = read_unlabeled(local)
        if not texts:
            raise PipelineError(f"{local}: no aclImdb/train/unsup/*.txt reviews in it")
        return texts, local
    return [], "none (not in the archive, and no embed.unlabeled_archive found)"


def _stable_hash(text: str) -> int:
    # gensim seeds each word's initial vector with hash(); Python's hash() of a str changes
    # from process to process, so the vectors would too.
    return zlib.crc32(text.encode("utf-8"))


def blas_coretype(params: EmbedParams) -> str | None:
    """The OpenBLAS kernel the embed stage pins (None: the CPU's own)."""
    return params.blas_coretype


def loaded_blas_kernels() -> list[str]:
    """The kernels OpenBLAS reports for the copies loaded now, SciPy's (which gensim calls)
    included, as threadpoolctl reads them: what the run really used, for its summary. (The
    names are OpenBLAS' own: its Prescott kernel reports itself as "Katmai".)"""
    import scipy.linalg.blas  # noqa: F401  loads SciPy's OpenBLAS, gensim's BLAS
    from threadpoolctl import threadpool_info

    return sorted({str(lib.get("architecture")) for lib in threadpool_info()
                   if lib.get("internal_api") == "openblas"})


def pin_blas_kernel(coretype: str | None) -> str | None:
    """Make OpenBLAS run ``coretype``'s kernels in this process; returns the kernel pinned.

    OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when the library is loaded (NumPy and SciPy each
    load their own copy), so when the environment names another kernel and NumPy or SciPy is
    already imported, the process re-executes itself with the variable set: the caller must call
    this before any work it would not want done twice. None leaves the environment as it is.
    Off x86-64 the names mean nothing to OpenBLAS, so nothing is pinned there (None).
    """
    if coretype is None:
        return None
    known = {name.lower(): name for name in OPENBLAS_X86_64_CORETYPES}
    if coretype.lower() not in known:
        raise PipelineError(f"embed.blas_coretype: {coretype!r} is not an OpenBLAS x86-64 kernel "
                            f"(valid: {', '.join(OPENBLAS_X86_64_CORETYPES)}, or null)")
    coretype = known[coretype.lower()]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print(f"embed: embed.blas_coretype {coretype} is an x86-64 kernel; on "
              f"{platform.machine()} OpenBLAS picks its own, so these vectors may differ from "
              f"x86-64 ones", file=sys.stderr)
        return None
    if os.environ.get("OPENBLAS_CORETYPE") != coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
        if "numpy" in sys.modules or "scipy" in sys.modules:  # OpenBLAS loaded with another
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, sys.orig_argv)
    return coretype


# gensim 4.4's compiled inner loop declares its float dot product (through SciPy's BLAS) as
# ``except -1`` (Cython 3): a dot product of exactly -1.0 is taken for an error that is not
# there, and Python's default hook prints this line for each one, with nothing else.
GENSIM_DOT_NOISE = "Exception ignored in: 'gensim.models.word2vec_inner.our_dot_float'"


class _DroppedLines:
    """``sys.stderr`` while word2vec trains: lines equal to ``line`` are counted, not shown;
    everything else is written on, a whole line at a time."""

    def __init__(self, stream: Any, line: str) -> None:
        self.stream, self.line, self.dropped = stream, line, 0
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                if line == self.line:
                    self.dropped += 1
                else:
                    self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.stream.write(self._pending)
                self._pending = ""
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def quiet_gensim_dot() -> Iterator[_DroppedLines]:
    quiet = _DroppedLines(sys.stderr, GENSIM_DOT_NOISE)
    sys.stderr = quiet
    try:
        yield quiet
    finally:
        sys.stderr = quiet.stream
        quiet.flush()


def train_word2vec(texts: Sequence[str], params: EmbedParams, vocabulary: Sequence[str]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Train word2vec on standardised ``texts``; vectors of the vocabulary's words.

    Returns (vectors (len(vocabulary), dim) float32, found mask): rows of words word2vec never
    kept are zero and not found.
    """
    from gensim.models import Word2Vec

    sentences = [text.split() for text in texts]
    with quiet_gensim_dot():
        model = Word2Vec(sentences, vector_size=params.dim, window=params.window,
                         min_count=params.min_count, sg=int(params.algorithm == "skipgram"),
                         epochs=params.epochs, seed=params.seed, workers=params.workers,
                         hashfxn=_stable_hash)
    vectors = np.zeros((len(vocabulary), params.dim), dtype=np.float32)
    found = np.zeros(len(vocabulary), dtype=bool)
    for i, word in enumerate(vocabulary):
        if i not in (PAD_ID, OOV_ID) and word in model.wv:
            vectors[i] = model.wv[word]
            found[i] = True
    return vectors, found


def write_vectors(path: Path, vocabulary: Sequence[str], vectors: np.ndarray,
                  found: np.ndarray) -> None:
    """word2vec text format: a header 'count dim', then 'word v1 v2 ...' per found word."""
    rows = [f"{vocabulary[i]} " + " ".join(f"{v:.5f}" for v in vectors[i])
            for i in np.flatnonzero(found)]
    path.write_text(f"{len(rows)} {vectors.shape[1]}\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")


def read_vectors(path: str | Path) -> dict[str, np.ndarray]:
    """A text-format vectors file: word2vec (with a 'count dim' header) or GloVe (without)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: word vectors file not found")
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if not line.strip():
                continue
            try:
                values = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise PipelineError(f"{path}: line {number}: not 'word' followed by numbers"
                                    ) from None
            if dim is None:
                dim = len(values)
            if len(values) != dim or dim == 0:
                raise PipelineError(f"{path}: line {number}: {len(values)} numbers, expected "
                                    f"{dim} like the first vector")
            vectors.setdefault(parts[0], values)
    if not vectors:
        raise PipelineError(f"{path}: no word vectors in it")
    return vectors


def embedding_matrix(path: str | Path, vocabulary: Sequence[str], embedding_dim: int,
                     seed: int) -> tuple[np.ndarray, float]:
    """The initial Embedding weights for ``vocabulary`` from a vectors file, and its coverage.

    Vectors are rescaled together to standard deviation TARGET_STD; words without a vector get
    small random ones (seeded); the padding row is zero.
    """
    vectors = read_vectors(path)
    dim = len(next(iter(vectors.values())))
    if dim != embedding_dim:
        raise PipelineError(f"{path}: vectors have {dim} dimensions but embedding_dim is "
                            f"{embedding_dim}; set embedding_dim: {dim}")
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, TARGET_STD, (len(vocabulary), dim)).astype(np.float32)
    rows = [(i, vectors[w]) for i, w in enumerate(vocabulary) if w in vectors and i != PAD_ID]
    if rows:
        found = np.stack([v for _, v in rows])
        scale = TARGET_STD / max(float(found.std()), 1e-12)
        matrix[[i for i, _ in rows]] = found * scale
    matrix[PAD_ID] = 0.0
    return matrix, len(rows) / max(len(vocabulary) - 2, 1)


def initial_embedding(section: ModelSection, vocabulary: Sequence[str], seed: int
                      ) -> tuple[np.ndarray | None, float | None]:
    """A model section's initial Embedding weights and vocabulary coverage (None: learned)."""
    if section.embedding_file is None:
        return None, None
    return embedding_matrix(section.embedding_file, vocabulary, section.embedding_dim, seed)




def build_embeddings(raw_archive: Path, table_path: Path, vocab_path: Path,
                     preprocess: PreprocessParams, params: EmbedParams, out_path: Path) -> dict:
    """The stage's work: word2vec on training + unlabeled text, vectors of the vocabulary."""
    import time

    from imdb_rnn.data.preprocess import read_table
    from imdb_rnn.io import atomic_path
    from imdb_rnn.data.preprocess import standardize_texts
    from imdb_rnn.data.vectorize import load_vocabulary

    start = time.perf_counter()
    table = read_table(table_path, ["split", "text"])
    train_texts = list(table.loc[table["split"] == "train", "text"])
    vocabulary = load_vocabulary(vocab_path)
    raw_unlabeled, source = unlabeled_texts(raw_archive, params)
    texts = train_texts + standardize_texts(raw_unlabeled, preprocess)
    vectors, found = train_word2vec(texts, params, vocabulary)
    with atomic_path(out_path) as tmp:
        write_vectors(tmp, vocabulary, vectors, found)
    return {"training_reviews": len(train_texts), "unlabeled_reviews": len(raw_unlabeled),
            "unlabeled_source": source, "tokens": int(sum(len(t.split()) for t in texts)),
            "dim": params.dim, "vocabulary": len(vocabulary),
            "vocabulary_with_vector": int(found.sum()),
            "seconds": round(time.perf_counter() - start, 1)}
