"""Data: the archive (fetch), the reviews table (preprocess), token ids (vectorize), word vectors."""

from imdb_rnn.data.embed import build_embeddings, embedding_matrix, initial_embedding
from imdb_rnn.data.fetch import fetch_archive, sha256_of
from imdb_rnn.data.preprocess import read_table
from imdb_rnn.data.text import standardize
from imdb_rnn.data.vectorize import (OOV_ID, PAD_ID, VOCAB_FILE, Sequences, load_sequences,
                                     load_vocabulary, subsample)

__all__ = ["OOV_ID", "PAD_ID", "VOCAB_FILE", "Sequences", "build_embeddings", "embedding_matrix",
           "fetch_archive", "initial_embedding", "load_sequences", "load_vocabulary",
           "read_table", "sha256_of", "standardize", "subsample"]
