"""What every trial of a search trains on, loaded once per process: the (sub)sampled training
split, the whole validation split, the vocabulary, and the initial word vectors of each
``embedding_file`` a trial picks (each file read once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imdb_rnn.config import ModelSection
from imdb_rnn.data import (VOCAB_FILE, initial_embedding, load_sequences, load_vocabulary,
                           subsample)


class TrialData:
    def __init__(self, data_dir: Path, size: int | None, sample_seed: int,
                 embedding_seed: int) -> None:
        self.train = subsample(load_sequences(data_dir / "train.npz"), size, sample_seed)
        self.val = load_sequences(data_dir / "val.npz")
        self.vocabulary = load_vocabulary(data_dir / VOCAB_FILE)
        self._seed = embedding_seed
        self._embeddings: dict[str | None, tuple[np.ndarray | None, float | None]] = {}

    def embedding(self, section: ModelSection) -> np.ndarray | None:
        """The initial vectors of a trial's section (None: learned from scratch)."""
        return self._initial(section)[0]

    def coverage(self, section: ModelSection) -> float | None:
        """The share of the vocabulary the section's pretrained vectors cover (None: none)."""
        return self._initial(section)[1]

    def _initial(self, section: ModelSection) -> tuple[np.ndarray | None, float | None]:
        if section.embedding_file not in self._embeddings:
            self._embeddings[section.embedding_file] = initial_embedding(
                section, self.vocabulary, self._seed)
        return self._embeddings[section.embedding_file]
