"""Vocabulary fitted on training text only, and token-id sequences stored unpadded (ragged).

Sequences keep their full length on disk, so ``maxlen``, ``padding`` and ``truncating`` can
change at training time (tuning searches maxlen) without re-running this stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import require_file

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = "[PAD]"
OOV_TOKEN = "[UNK]"
SPLITS = ("train", "val", "test")
VOCAB_FILE = "vocab.txt"


def build_vocabulary(texts: Iterable[str], max_features: int) -> list[str]:
    """Most frequent tokens first (ties alphabetical), after the padding and OOV entries.

    The list index is the token id; the list has at most ``max_features`` entries.
    """
    counts = Counter(token for text in texts for token in text.split())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [PAD_TOKEN, OOV_TOKEN] + [token for token, _ in ranked[: max_features - 2]]


def encode(texts: Iterable[str], vocabulary: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode standardised texts as ragged token ids: (flat ids, offsets of length n + 1)."""
    index = {token: i for i, token in enumerate(vocabulary)}
    index.pop(PAD_TOKEN, None)  # the padding marker never occurs as a real token
    lookup = index.get
    ids: list[int] = []
    offsets = [0]
    for text in texts:
        ids.extend(lookup(token, OOV_ID) for token in text.split())
        offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)


@dataclass(frozen=True)
class Sequences:
    """One split's ragged token ids with labels and review keys."""

    ids: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (n + 1,) int64: review i is ids[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # (n,) int8
    reviews: np.ndarray  # (n,) str: path of the review inside aclImdb/

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]: self.offsets[i + 1]]

    def subset(self, index: np.ndarray) -> Sequences:
        """The reviews at ``index`` (in that order)."""
        rows = [self.row(i) for i in index]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        return Sequences(ids.astype(np.int32), offsets, self.labels[index], self.reviews[index])


def log_count_ratio(positive: np.ndarray, negative: np.ndarray, alpha: float) -> np.ndarray:
    """Naive-Bayes log-count ratio of each feature (Wang & Manning 2012):
    ``log((p / |p|1) / (q / |q|1))``, p and q the feature's counts in positive and negative
    reviews plus ``alpha``. NBSVM's feature scale, and that of the nb_ngrams network."""
    p, q = positive + alpha, negative + alpha
    return np.log((p / p.sum()) / (q / q.sum()))


def subsample(sequences: Sequences, size: int | None, seed: int) -> Sequences:
    """A stratified subsample of ``size`` reviews (all of them if size is None or too big)."""
    from sklearn.model_selection import train_test_split

    if size is None or size >= len(sequences):
        return sequences
    index, _ = train_test_split(np.arange(len(sequences)), train_size=size,
                                stratify=sequences.labels, random_state=seed)
    return sequences.subset(np.sort(index))


def save_sequences(path: Path, sequences: Sequences) -> None:
    np.savez(path, ids=sequences.ids, offsets=sequences.offsets, labels=sequences.labels,
             reviews=sequences.reviews)


def load_sequences(path: str | Path) -> Sequences:
    """Load one split written by :func:`vectorize_table`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return Sequences(data["ids"], data["offsets"], data["labels"], data["reviews"])
    except FileNotFoundError:
        raise PipelineError(f"{path}: vectorized split not found (run the vectorize stage)") from None


def load_vocabulary(path: str | Path) -> list[str]:
    """One token per line; the line number is the token id."""
    return require_file(path, "vocabulary").read_text(encoding="utf-8").split("\n")[:-1]


def vectorize_table(table: pd.DataFrame, max_features: int, out_dir: Path) -> dict:
    """Fit the vocabulary on the train split, write it and every split's sequences to ``out_dir``.

    Returns a small summary (vocabulary size, out-of-vocabulary rate per split).
    """
    missing = [s for s in SPLITS if not (table["split"] == s).any()]
    if missing:
        raise PipelineError(f"reviews table has no {', '.join(missing)} rows")
    vocabulary = build_vocabulary(table.loc[table["split"] == "train", "text"], max_features)
    (out_dir / VOCAB_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    summary: dict = {"vocab_size": len(vocabulary), "oov_rate": {}}
    for split in SPLITS:
        part = table[table["split"] == split]
        ids, offsets = encode(part["text"], vocabulary)
        sequences = Sequences(ids, offsets, part["label"].to_numpy(np.int8),
                              part["review"].to_numpy(dtype=str))
        save_sequences(out_dir / f"{split}.npz", sequences)
        summary["oov_rate"][split] = round(float((ids == OOV_ID).mean()), 4)
    return summary
