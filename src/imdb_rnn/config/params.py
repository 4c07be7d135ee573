"""The one typed model of ``params.yaml``: frozen sections, unknown keys and wrong types rejected.

Every stage loads the whole file through :func:`load_params` (so a typo anywhere is caught by the
first stage that runs) and reads its own section. Errors name the key, e.g.
``params.yaml: vectorize.max_features: Input should be a valid integer (got '20000')``.

Every size has an upper bound and every float must be finite, so that no value reaches a
training that a 24 GB machine cannot hold (``maxlen: 100000`` drove one LSTM trainer to
12.5 GB): the bounds below, and the estimate of one training step's memory
(:meth:`ModelSection.step_memory`), which refuses a model section or a search space before
anything runs.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      field_validator, model_validator)

from imdb_rnn.errors import PipelineError


class _Section(BaseModel):
    # strict: "10" is not an int; an int is still accepted where a float belongs.
    # allow_inf_nan: .inf and .nan are no float of any section (learning_rate: .inf passed).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# Upper bounds of the sizes: generous for IMDB, and within what a 24 GB machine holds.
# The longest review of the full data has 2,739 tokens (training split, default tokenisation);
# a longer maxlen only pads. maxlen 3,000 with the LSTM's own settings: reports in README.
MAX_MAXLEN = 3_000
MAX_VOCABULARY = 500_000  # vectorize.max_features: the embedding matrix, times Adam's 4 copies
MAX_NGRAM = 4  # feedforward ngram_max: each n adds about a review's length of ids
MAX_NGRAM_BUCKETS = 4_194_304  # feedforward ngram_buckets: an embedding like the vocabulary's
MAX_WIDTH = 2_048  # embedding_dim, units, filters, embed.dim
MAX_LAYERS = 16
MAX_KERNEL_WIDTHS = 8  # cnn kernel_widths
MAX_BATCH = 4_096
MAX_EPOCHS = 1_000
MAX_TRIALS = 10_000
MAX_PROCESSES = 256  # compute.workers and threads, embed.workers
# The most one training process may need for one step (activations kept for the backward pass,
# and the embedding with its gradient and Adam's moments), as ModelSection.step_memory
# estimates it: two such processes side by side (compute.workers) fit a 24 GB machine.
MEMORY_LIMIT = 8 * 2**30


class FetchParams(_Section):
    """Where the aclImdb archive comes from and the checksum it must have."""

    url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # A machine without internet uses a local copy of the archive: when this file exists it is
    # used instead of ``url`` and must match ``local_sha256``. Missing file: download from url.
    local_archive: str | None = None
    local_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _local_needs_checksum(self) -> FetchParams:
        if self.local_archive is not None and self.local_sha256 is None:
            raise ValueError("local_archive is set, so local_sha256 must be set too")
        return self


class PreprocessParams(_Section):
    """Text standardisation, the validation split and the duplicate policy."""

    lowercase: bool
    # keep: leave punctuation in words; strip: delete it; split: make each mark its own token.
    punctuation: Literal["keep", "strip", "split"]
    # How validation reviews are carved out of the training reviews. movie: whole movies, so no
    # movie has reviews on both sides (as the official train and test splits); random: reviews
    # drawn one by one, stratified by label (a validation review then has same-movie siblings
    # in training).
    validation: Literal["movie", "random"]
    # random, and movie from the archive's train/urls_*.txt: the share of training reviews.
    val_fraction: float = Field(gt=0.0, lt=1.0)
    split_seed: int
    # movie, where the archive has no train/urls_*.txt (the offline copy): the validation
    # reviews as a list of paths under aclImdb/train/ (pos/ID_RATING.txt, one a line) and its
    # SHA-256.
    movie_split_file: str | None = None
    movie_split_sha256: str | None = None
    # Test reviews whose exact text also occurs in train: True drops them from test (cleaner
    # estimate), False keeps the official 25,000 (comparable with published numbers).
    drop_test_duplicates: bool
    report_maxlens: list[Annotated[int, Field(gt=0, le=100_000)]]
    # A stratified slice: at most this many reviews per official split and label (null = all
    # 50,000). The smoke profile uses it to run the whole DAG in minutes.
    per_label: int | None = Field(default=None, gt=1)

    @model_validator(mode="after")
    def _movie_list_needs_checksum(self) -> PreprocessParams:
        if self.movie_split_file is not None and self.movie_split_sha256 is None:
            raise ValueError("movie_split_file is set, so movie_split_sha256 must be set too")
        return self


class VectorizeParams(_Section):
    """Vocabulary size; ids 0 and 1 are reserved for padding and out-of-vocabulary tokens."""

    max_features: int = Field(ge=3, le=MAX_VOCABULARY)


class EmbedParams(_Section):
    """word2vec vectors trained on non-test text (training split + unlabeled reviews)."""

    dim: int = Field(gt=0, le=MAX_WIDTH)
    algorithm: Literal["cbow", "skipgram"]
    window: int = Field(gt=0, le=100)
    min_count: int = Field(ge=1)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    seed: int
    # gensim threads: 1 gives the same vectors on every run; more is faster but not repeatable.
    workers: int = Field(ge=1, le=MAX_PROCESSES)
    use_unlabeled: bool  # also train on the 50,000 unlabeled train/unsup reviews
    # OpenBLAS kernel word2vec runs on (the embed stage sets OPENBLAS_CORETYPE before OpenBLAS
    # loads). Each CPU's own kernel rounds gensim's sdot/saxpy differently, so the vectors changed
    # between machines; Prescott's SSE3 kernel runs on every x86-64 CPU and gives the same vectors
    # on all of them, ~20% slower (reports/sweeps/word_vectors_numerics.md). None: the CPU's own.
    blas_coretype: str | None = Field(default="Prescott", pattern=r"^[A-Za-z0-9_]+$")
    # Where the unlabeled reviews are when the fetched archive lacks them (the offline copy
    # keeps them apart); used only if the file exists, and must match the checksum.
    unlabeled_archive: str | None = None
    unlabeled_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _archive_needs_checksum(self) -> EmbedParams:
        if self.unlabeled_archive is not None and self.unlabeled_sha256 is None:
            raise ValueError("unlabeled_archive is set, so unlabeled_sha256 must be set too")
        return self


class ModelSection(_Section):
    """A ``train.models`` section. Every key has exactly one role, and the roles are the contract:

    - ``family``: which builder of the registry (``imdb_rnn.modeling.registry``) builds it;
    - ``INPUT_KEYS`` shape the data feed (cut to ``maxlen``, padding side, truncation side);
    - ``OPTIMIZER_KEYS`` configure the optimizer at compile time;
    - ``FIT_KEYS`` configure ``model.fit`` (batch size, the most epochs);
    - ``INIT_KEYS`` give the initial embedding weights (a word-vectors file);
    - every other key is an *architecture* keyword of the family's builder, by the same name
      (and an Optuna trial parameter name), so best trial values rebuild the model directly.

    ``maxlen`` acts only on the feed: a builder never sees it, except as the fixed input length
    of a family that needs one (``fixed_length``). No field has a default: every value that shapes
    a model is written in params.yaml, where DVC sees it change.
    """

    INPUT_KEYS: ClassVar[tuple[str, ...]] = ("maxlen", "padding", "truncating")
    OPTIMIZER_KEYS: ClassVar[tuple[str, ...]] = ("optimizer", "learning_rate", "clipnorm")
    FIT_KEYS: ClassVar[tuple[str, ...]] = ("batch_size", "epochs")
    INIT_KEYS: ClassVar[tuple[str, ...]] = ("embedding_file",)

    # input
    maxlen: int = Field(gt=0, le=MAX_MAXLEN)
    # post padding keeps LSTM/GRU eligible for the cuDNN kernel when masking is on.
    padding: Literal["pre", "post"]
    # pre truncation keeps the end of a long review, where the verdict usually is.
    truncating: Literal["pre", "post"]
    # optimizer
    optimizer: Literal["adam", "rmsprop", "adadelta", "sgd"]
    learning_rate: float = Field(gt=0.0)
    # Gradient clipping: each gradient tensor is rescaled to at most this L2 norm; null = off.
    clipnorm: float | None = Field(gt=0.0)
    # fit
    batch_size: int = Field(gt=0, le=MAX_BATCH)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    # init: null = learned from scratch; else a text-format vectors file (word2vec or GloVe),
    # e.g. data/embeddings/word2vec.txt from the embed stage.
    embedding_file: str | None
    # architecture (shared by every family; the subclasses add their own)
    embedding_dim: int = Field(gt=0, le=MAX_WIDTH)
    dropout: float = Field(ge=0.0, lt=1.0)
    embedding_trainable: bool  # false freezes the embedding (pretrained vectors kept as is)

    def step_floats(self) -> float:
        """Floats per review and time step kept by one training step (activations)."""
        return self.embedding_dim

    def step_memory(self, max_features: int = MAX_VOCABULARY) -> int:
        """Bytes one training step needs, about: float32 activations of a full batch of
        ``maxlen`` steps, and the embedding matrix of ``max_features`` rows four times (weights,
        gradient, Adam's two moments)."""
        activations = 4 * self.batch_size * self.maxlen * self.step_floats()
        return int(activations + 16 * max_features * self.embedding_dim)

    @model_validator(mode="after")
    def _fits_in_memory(self) -> ModelSection:
        need = self.step_memory()
        if need > MEMORY_LIMIT:
            raise ValueError(
                f"needs about {need / 2**30:.1f} GB a training step (batch_size "
                f"{self.batch_size} x maxlen {self.maxlen} x {self.step_floats():,.0f} floats; "
                f"limit {MEMORY_LIMIT / 2**30:.0f} GB): lower batch_size, maxlen or widths")
        return self

    @classmethod
    def architecture_keys(cls) -> tuple[str, ...]:
        """The keys that go to the builder: every field without another role."""
        other = {"family", *cls.INPUT_KEYS, *cls.OPTIMIZER_KEYS, *cls.FIT_KEYS, *cls.INIT_KEYS}
        return tuple(k for k in cls.model_fields if k not in other)

    def architecture(self) -> dict[str, Any]:
        """The builder's keyword arguments of this section."""
        return {k: getattr(self, k) for k in self.architecture_keys()}

    @property
    def fixed_length(self) -> bool:
        """Whether the model needs every input padded to ``maxlen`` (else: per batch)."""
        return False


class FeedforwardParams(ModelSection):
    family: Literal["feedforward"]
    # flatten: the classic Embedding-Flatten-Dense; average/max/sum: pool over time first.
    pooling: Literal["flatten", "average", "max", "sum"]
    units: int = Field(ge=0, le=MAX_WIDTH)  # hidden Dense layer; 0 = none
    # word n-grams of 2 to ngram_max words beside the words (fastText); 1 = words only
    ngram_max: int = Field(ge=1, le=MAX_NGRAM)
    # the n-grams' hash buckets (0 with ngram_max 1)
    ngram_buckets: int = Field(ge=0, le=MAX_NGRAM_BUCKETS)
    # > 0: each word and n-gram once per review, its vector scaled by nb_scale times its
    # naive-Bayes log-count ratio on the training split (NBSVM's features); 0 = off
    nb_scale: float = Field(ge=0.0)

    @property
    def fixed_length(self) -> bool:
        # Flatten needs one input length: the one place that rule is written.
        return self.pooling == "flatten"

    def step_memory(self, max_features: int = MAX_VOCABULARY) -> int:
        # the n-gram embedding: weights, gradient and Adam's two moments; each n adds a
        # review's length of steps
        return (super().step_memory(max_features) + 16 * self.ngram_buckets * self.embedding_dim
                + 4 * self.batch_size * self.maxlen * self.embedding_dim * (self.ngram_max - 1))

    @model_validator(mode="after")
    def _ngrams_need_pooling(self) -> FeedforwardParams:
        if (self.ngram_buckets or self.nb_scale) and self.pooling == "flatten":
            raise ValueError("ngram_buckets and nb_scale need pooling average, max or sum, "
                             "not flatten")
        if (self.ngram_max > 1) != (self.ngram_buckets > 0):
            raise ValueError(f"ngram_max {self.ngram_max} with ngram_buckets "
                             f"{self.ngram_buckets}: n-grams (ngram_max 2 or more) need "
                             "buckets, and buckets need ngram_max 2 or more")
        return self


class CnnParams(ModelSection):
    family: Literal["cnn"]
    filters: int = Field(gt=0, le=MAX_WIDTH)
    kernel_size: int = Field(gt=0, le=MAX_MAXLEN)
    # widths the first convolution runs side by side: kernel_size, kernel_size - 1, ...
    kernel_widths: int = Field(ge=1, le=MAX_KERNEL_WIDTHS)
    num_layers: int = Field(ge=1, le=MAX_LAYERS)
    units: int = Field(ge=0, le=MAX_WIDTH)

    def step_floats(self) -> float:
        # each convolution's output and its activation's, per filter (the first layer's widths
        # each have their own)
        return self.embedding_dim + 2 * (self.num_layers - 1 + self.kernel_widths) * self.filters

    @model_validator(mode="after")
    def _widths_fit_the_kernel(self) -> CnnParams:
        if self.kernel_widths > self.kernel_size:
            raise ValueError(f"kernel_widths {self.kernel_widths} is more than kernel_size "
                             f"{self.kernel_size}: the widths are kernel_size, kernel_size - 1, ...")
        return self


class RecurrentParams(ModelSection):
    family: Literal["simple_rnn", "lstm", "gru"]
    units: int = Field(gt=0, le=MAX_WIDTH)
    num_layers: int = Field(ge=1, le=MAX_LAYERS)
    # Non-zero recurrent_dropout switches LSTM/GRU off the cuDNN kernel on a GPU.
    recurrent_dropout: float = Field(ge=0.0, lt=1.0)
    # last: the final hidden state; max/mean: pool every step's state (return_sequences on top).
    # concat: the last state, max and mean over steps side by side (Howard & Ruder 2018)
    pooling: Literal["last", "max", "mean", "concat"]

    # Floats per unit of each layer, review and time step that a training step keeps for the
    # backward pass (gates, states, their activations). The LSTM's is measured: maxlen 100,000
    # with one 36,364-token review, batch 64, 2 x 64 units, embedding_dim 64 held 12.5 GB
    # (issue 33), about 1,230 floats per review and step = 64 + 2 x 64 x 9.1. The GRU has 3
    # gates for the LSTM's 4, the simple cell one state.
    CELL_FLOATS: ClassVar[dict[str, float]] = {"lstm": 9.1, "gru": 7.0, "simple_rnn": 3.0}

    def step_floats(self) -> float:
        return self.embedding_dim + self.num_layers * self.units * self.CELL_FLOATS[self.family]


class BidirectionalParams(RecurrentParams):
    family: Literal["bidirectional"]  # type: ignore[assignment]
    cell: Literal["simple_rnn", "lstm", "gru"]

    def step_floats(self) -> float:  # both directions
        return self.embedding_dim + 2 * self.num_layers * self.units * self.CELL_FLOATS[self.cell]


_MODEL_CLASSES = (FeedforwardParams, CnnParams, RecurrentParams, BidirectionalParams)
ModelParams = Annotated[
    FeedforwardParams | CnnParams | RecurrentParams | BidirectionalParams,
    Field(discriminator="family"),
]
# The family names, as the discriminator tags of the union above.
_FAMILY_TAGS = frozenset(tag for cls in _MODEL_CLASSES
                         for tag in get_args(cls.model_fields["family"].annotation))
class TrainParams(_Section):
    """Shared training settings and one section per trained model (one DVC stage each)."""

    # Training seed (weights, shuffling); kept apart from preprocess.split_seed so the split
    # stays fixed while training seeds vary.
    seed: int
    # The weights of the best epoch by monitor are kept.
    monitor: Literal["val_loss", "val_accuracy"]
    # Epochs without improvement of monitor before stopping; None: train every epoch of the
    # section's budget.
    patience: int | None = Field(ge=0)
    # The learning rate over a training: constant, or cosine (decays from the section's
    # learning_rate to 0 over its epochs).
    schedule: Literal["constant", "cosine"]
    models: dict[str, ModelParams]

    @model_validator(mode="after")
    def _names_are_paths(self) -> TrainParams:
        for name in self.models:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"model name {name!r} must be letters, digits and underscores")
        return self


class EvaluateParams(_Section):
    """Evaluation settings."""

    batch_size: int = Field(gt=0, le=MAX_BATCH)
    # Classification threshold on the positive-class probability.
    threshold: float = Field(gt=0.0, lt=1.0)


class NbsvmParams(_Section):
    """NBSVM (Wang & Manning 2012) as NB-weighted logistic regression: binary word n-grams of
    1 to ``ngram_max`` tokens, each scaled by its naive-Bayes log-count ratio (smoothing
    ``alpha``), then an L2 logistic regression of inverse regularisation ``C``."""

    ngram_max: int = Field(ge=1, le=5)
    alpha: float = Field(gt=0.0)
    C: float = Field(gt=0.0)


class ReferenceParams(_Section):
    """The linear references, fitted on the training split only: TF-IDF + logistic regression
    (``ngram_max`` ... ``C``) and NBSVM (``nbsvm``)."""

    ngram_max: int = Field(ge=1, le=5)
    min_df: int = Field(ge=1)
    max_features: int | None = Field(default=None, gt=0, le=10_000_000)
    C: float = Field(gt=0.0)
    seed: int
    nbsvm: NbsvmParams


class MlflowParams(_Section):
    """Tracking defaults; MLFLOW_TRACKING_URI in the environment overrides ``tracking_uri``."""

    tracking_uri: str
    experiment: str
    # The register stage: the best network by validation accuracy becomes a version of this
    # registered model, and the alias moves to it.
    registered_model: str = "imdb-sentiment"
    champion_alias: str = "champion"


class RangeDimension(_Section):
    """A numeric range of one search dimension; integer or float as the model field is.

    ``step`` quantises the range (``low + k * step``); ``log`` samples on a log scale (no step).
    """

    low: float
    high: float
    step: float | None = Field(default=None, gt=0.0)
    log: bool = False

    def holds(self, value: Any) -> bool:
        """Whether a trial can take ``value`` (within the range, on the step's grid)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-9

    @model_validator(mode="after")
    def _valid_range(self) -> RangeDimension:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("log scale needs low > 0 and no step")
        return self


class ChoiceDimension(_Section):
    """A categorical search dimension."""

    # null is a value too: e.g. embedding_file {choices: [data/embeddings/word2vec.txt, null]}
    # (pretrained vectors or learned from scratch), clipnorm {choices: [null, 1.0]}.
    choices: list[bool | int | float | str | None] = Field(min_length=1)

    def holds(self, value: Any) -> bool:
        """Whether a trial can take ``value`` (True is not 1 here, nor None 0)."""
        return any((value is None) == (c is None) and isinstance(value, bool) == isinstance(c, bool)
                   and value == c for c in self.choices)


def _dimension_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "choices" if "choices" in value else "range"
    return "choices" if isinstance(value, ChoiceDimension) else "range"


# {low, high, step?, log?} or {choices: [...]}; errors name the key of the form used.
Dimension = Annotated[
    Annotated[RangeDimension, Tag("range")] | Annotated[ChoiceDimension, Tag("choices")],
    Discriminator(_dimension_kind),
]


class StudyParams(_Section):
    """One Optuna study: which model section it tunes and with which sampler."""

    model: str  # a key of train.models: the base section whose fields the trials override
    sampler: Literal["random", "tpe", "gp"]


class TuneParams(_Section):
    """Optuna search: budgets, sampler/pruner settings, the search space, the studies."""

    # Where studies live: journal:PATH (a local journal file; shared file systems too),
    # sqlite:///PATH or an RDB URL such as postgresql://user@host/db (several machines).
    # IMDB_TUNE_STORAGE in the environment overrides it.
    storage: str
    seed: int
    n_trials: int = Field(gt=0, le=MAX_TRIALS)  # finished trials (complete + pruned) per study
    timeout: float | None = Field(default=None, gt=0.0)  # seconds per invocation; None = no limit
    # The most epochs a trial trains; None = the base section's epochs (the baseline's fidelity).
    epochs: int | None = Field(default=None, gt=0, le=MAX_EPOCHS)
    patience: int | None = Field(ge=0)  # early stopping inside a trial (None: none)
    # Stratified training reviews per trial (None: the whole train split); validation is whole.
    subsample: int | None = Field(default=None, gt=1)
    pruner: Literal["median", "hyperband", "none"]
    n_startup_trials: int = Field(ge=0)  # trials before TPE/GP model and median pruning start
    pruner_warmup_epochs: int = Field(ge=0)  # epochs of every trial never pruned (median)
    experiment: str  # MLflow experiment of the studies (parent and child runs)
    # Search space per train.models key: field name -> range or choices. The base section's own
    # values must lie in it: the baseline is every study's first trial.
    space: dict[str, dict[str, Dimension]]
    studies: dict[str, StudyParams]

    def trial_epochs(self, base: ModelSection) -> int:
        """The most epochs a trial of a study on ``base`` trains."""
        return self.epochs if self.epochs is not None else base.epochs


class SamplersParams(_Section):
    """The sampler comparison (stage ``samplers``): each sampler runs ``repeats`` independent
    studies of ``n_trials`` trials on one model, at a cheap fidelity, with its own sampler
    seeds; expected best validation accuracy against trials, with its spread."""

    # A key of train.models and of tune.space. Set it in the file, not in a profile: dvc.yaml
    # tracks train.models.${samplers.model} as the file (not a profile) names it.
    model: str
    samplers: list[Literal["random", "tpe", "gp"]] = Field(min_length=2)

    @field_validator("samplers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"each sampler once (got {value})")
        return value

    repeats: int = Field(ge=2, le=100)  # independent studies per sampler (seeds seed, seed+1, ...)
    n_trials: int = Field(ge=2, le=MAX_TRIALS)
    seed: int
    subsample: int | None = Field(default=None, gt=1)  # training reviews per trial (stratified)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)  # epochs per trial (no pruning: comparable trials)
    experiment: str  # MLflow experiment: one run per repetition


class ReportParams(_Section):
    """The leaderboard's statistics."""

    bootstrap_resamples: int = Field(ge=100, le=1_000_000)  # resamples of the test reviews for the 95% CI
    seed: int
    top: int = Field(ge=2)  # McNemar results spelled out in words for the top models
    # Seed variance: every baseline and tuned configuration is trained again with each of
    # these training seeds (train.seed is the run of the train or tune stage); the leaderboard,
    # the champion and "Did tuning pay?" decide on the means over those runs.
    seeds: list[int]
    seed_experiment: str  # MLflow experiment of those replicate runs


class CiParams(_Section):
    """The scheduled rerun's regression gate."""

    # fail when a single run drops more than this (a seed mean: more than max(this, 2 x SE))
    max_accuracy_drop: float = Field(ge=0.0, lt=1.0)


class ComputeParams(_Section):
    """How training uses this machine's cores (not a dependency of any stage: results do not
    depend on it, except the order in which parallel trials of a study finish)."""

    # Training processes side by side where the work is independent (seed replicates, trials
    # of a study); "auto" = one per core.
    workers: int | Literal["auto"] = Field(default="auto")
    # TensorFlow intra- and inter-op threads of each such process; "auto" = its share of the
    # cores (cores // workers, at least 1).
    threads: int | Literal["auto"] = Field(default="auto")

    @field_validator("workers", "threads", mode="before")
    @classmethod
    def _positive(cls, value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"must be a whole number of at least 1, or auto (got {value!r})")
        if value > MAX_PROCESSES:
            raise ValueError(f"must be at most {MAX_PROCESSES}, or auto (got {value!r})")
        return value


class Params(_Section):
    fetch: FetchParams
    preprocess: PreprocessParams
    vectorize: VectorizeParams
    embed: EmbedParams
    train: TrainParams
    evaluate: EvaluateParams
    reference: ReferenceParams
    mlflow: MlflowParams
    tune: TuneParams
    samplers: SamplersParams
    report: ReportParams
    ci: CiParams
    compute: ComputeParams = Field(default_factory=ComputeParams)
    # The profile these params were loaded under (params.yaml's `profile`, or the one asked
    # for): full, or a key of `profiles` whose overrides are merged in (recorded on every run).
    profile: str = "full"

    @model_validator(mode="after")
    def _tune_refers_to_models(self) -> Params:
        models = self.train.models
        for name, study in self.tune.studies.items():
            if not name.replace("_", "").isalnum():
                raise ValueError(f"tune.studies: name {name!r} must be letters, digits and "
                                 "underscores")
            if study.model not in models:
                raise ValueError(f"tune.studies.{name}.model: {study.model!r} is not a key of "
                                 f"train.models ({', '.join(models)})")
            if study.model not in self.tune.space:
                raise ValueError(f"tune.studies.{name}: tune.space has no entry for model "
                                 f"{study.model!r}")
        for model, dims in self.tune.space.items():
            if model not in models:
                raise ValueError(f"tune.space.{model}: not a key of train.models "
                                 f"({', '.join(models)})")
            _check_space(model, models[model], dims)
            files = dims.get("embedding_file")
            base = models[model]
            if (files is not None and base.embedding_file is None
                    and any(f is not None for f in files.choices)
                    and base.embedding_dim != self.embed.dim):
                raise ValueError(
                    f"tune.space.{model}.embedding_file: a trial that takes word vectors keeps "
                    f"the baseline's embedding_dim ({base.embedding_dim}), which must then be the "
                    f"vectors' embed.dim ({self.embed.dim})")
        if self.samplers.model not in self.tune.space:
            raise ValueError(f"samplers.model: {self.samplers.model!r} has no search space "
                             f"(tune.space: {', '.join(self.tune.space) or 'none'})")
        return self


def _check_space(model: str, base: ModelSection, dims: dict[str, Any]) -> None:
    """Every key of a search space is a field of its model; the baseline's values lie in it."""
    fields = set(type(base).model_fields) - {"family", "epochs"}
    for key, dim in dims.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"tune.space.{model}.{key}: not a parameter of "
                             f"{base.family} models{hint}")
        if key == "embedding_file" and not isinstance(dim, ChoiceDimension):
            raise ValueError(f"tune.space.{model}.embedding_file: must be {{choices: [...]}}")
    if "embedding_dim" in dims and not _may_learn_embedding(base, dims):
        raise ValueError(f"tune.space.{model}.embedding_dim: train.models.{model} uses "
                         "pretrained vectors, whose dimension is fixed (add embedding_file "
                         "{choices: [..., null]} to search it for learned embeddings)")
    for key, dim in dims.items():
        if key == "embedding_dim" and base.embedding_file is not None:
            continue  # not searched for the baseline's pretrained vectors
        value = getattr(base, key)
        if not dim.holds(value):
            raise ValueError(f"tune.space.{model}.{key}: the baseline's value {value!r} "
                             f"(train.models.{model}.{key}) is not in the space; the baseline "
                             "is every study's first trial")
    _check_space_bounds(model, base, dims)


def _extremes(dim: RangeDimension | ChoiceDimension, integer: bool) -> dict[str, Any]:
    """The values of a dimension that lie on its edges, by where they are written."""
    if isinstance(dim, ChoiceDimension):
        return {f"choices[{i}]": v for i, v in enumerate(dim.choices)}
    cast = (lambda v: int(v) if float(v).is_integer() else v) if integer else (lambda v: v)
    return {"low": cast(dim.low), "high": cast(dim.high)}


def _check_space_bounds(model: str, base: ModelSection, dims: dict[str, Any]) -> None:
    """Every edge of the space is a valid value of its field (within its bounds, finite), and
    the largest trial of the space fits in a training process (ModelSection.step_memory)."""
    fields = base.model_dump()
    largest = dict(fields)
    for key, dim in dims.items():
        integer = isinstance(fields[key], int) and not isinstance(fields[key], bool)
        for where, value in _extremes(dim, integer).items():
            try:
                type(base).model_validate(fields | {key: value})
            except ValidationError as error:
                problem = next((e for e in error.errors() if e["loc"] == (key,)), None)
                if problem is not None:
                    raise ValueError(f"tune.space.{model}.{key}.{where}: {problem['msg']} "
                                     f"(got {_shown(value)})") from None
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and isinstance(largest[key], int | float) and value > largest[key]:
                largest[key] = value
    need = type(base).model_construct(**largest).step_memory()
    if need > MEMORY_LIMIT:
        sizes = ", ".join(f"{k} {largest[k]}" for k in _SIZES if k in dims)
        raise ValueError(f"tune.space.{model}: its largest trial ({sizes}) needs about "
                         f"{need / 2**30:.1f} GB a training step (limit "
                         f"{MEMORY_LIMIT / 2**30:.0f} GB)")


# The keys that the memory of a training step grows with (ModelSection.step_memory).
_SIZES = ("batch_size", "maxlen", "embedding_dim", "num_layers", "units", "filters")


def _may_learn_embedding(base: ModelSection, dims: dict[str, Any]) -> bool:
    """Whether some trial learns its embedding from scratch (so its dimension is free)."""
    files = dims.get("embedding_file")
    if files is None:
        return base.embedding_file is None
    return None in files.choices


_UNION_MEMBERS = frozenset({"range", "choices"})  # the tags of a Dimension
# Longest params error: one terminal line.
MAX_MESSAGE = 200


def _format_location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # A discriminated union puts the family tag into the location: train.models.NAME.TAG.key.
    if parts[:2] == ["train", "models"] and len(parts) > 3 and parts[3] in _FAMILY_TAGS:
        del parts[3]
    # A search dimension puts its form's tag there: tune.space.MODEL.KEY.TAG.field.
    if parts[:2] == ["tune", "space"] and len(parts) > 4 and parts[4] in _UNION_MEMBERS:
        del parts[4]
    return ".".join(parts)


def _union_tags(member: Any) -> set[str]:
    """The tags a discriminated union's member answers to (its family literal, or its Tag)."""
    if get_origin(member) is Annotated:
        tags = {m.tag for m in get_args(member)[1:] if isinstance(m, Tag)}
        return tags or _union_tags(get_args(member)[0])
    if isinstance(member, type) and issubclass(member, BaseModel) and "family" in member.model_fields:
        return {str(a) for a in get_args(member.model_fields["family"].annotation)}
    return set()


def _keys_at(loc: tuple[Any, ...]) -> list[str] | None:
    """The valid keys of the mapping at pydantic location ``loc`` (None when it is no section)."""
    tp: Any = Params
    parts = list(loc)
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [m for m in get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
            elif parts:
                tagged = [m for m in members if str(parts[0]) in _union_tags(m)]
                if not tagged:
                    return None
                tp = tagged[0]
                parts.pop(0)
            else:
                return None
        elif origin is dict and parts:
            tp = get_args(tp)[1]
            parts.pop(0)
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            if not parts:
                return list(tp.model_fields)
            field = tp.model_fields.get(str(parts.pop(0)))
            if field is None:
                return None
            tp = field.annotation
        else:
            return None


def _written_where(where: str, overrides: Any, profile: str | None) -> str:
    """``where`` as the user wrote it: under ``profiles.PROFILE`` when the profile sets it."""
    if profile is None:
        return where
    node = overrides
    for part in where.split("."):
        if not isinstance(node, dict) or part not in node:
            return where
        node = node[part]
    return f"profiles.{profile}.{where}"


def _suggest(word: Any, candidates: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _one_line(error: ValidationError, source: str, overrides: Any = None,
              profile: str | None = None) -> str:
    """The first problem of ``error`` on one line of at most MAX_MESSAGE characters: the key as
    written (``profiles.smoke....`` when the profile sets it), what is wrong, the closest valid
    key or value."""
    errors = error.errors()
    # A misspelt key shows up as one unknown and one missing key: report the unknown one first.
    first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    more = len(errors) - 1
    where = _format_location(first["loc"])
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        valid = _keys_at(first["loc"][:-1]) or [
            str(e["loc"][-1]) for e in errors
            if e["type"] == "missing" and e["loc"][:-1] == first["loc"][:-1]]
        hint = _suggest(key, valid)
        message = f"unknown key{hint}"
        # The "missing" twin of the misspelt key is the same problem.
        more -= sum(1 for e in errors if e["type"] == "missing"
                    and e["loc"][:-1] == first["loc"][:-1] and hint)
    elif first["type"] == "missing":
        message = "missing key"
    elif first["type"] == "value_error":  # a validator's own message says what is wrong
        message = str(first["ctx"]["error"])
    elif first["type"] == "union_tag_invalid":  # an unknown family: name the value only
        tag = first["ctx"]["tag"]
        where = f"{where}.{first['ctx']['discriminator'].strip(chr(39))}"
        expected = re.findall(r"'([^']*)'", first["ctx"]["expected_tags"])
        message = f"unknown value {_shown(tag)}{_suggest(tag, expected) or ''}; valid: " \
                  f"{', '.join(expected)}"
    elif first["type"] == "literal_error":
        expected = re.findall(r"'([^']*)'", first["ctx"]["expected"])
        message = f"{first['msg']} (got {_shown(first['input'])})" \
                  f"{_suggest(first['input'], expected)}"
    else:
        message = f"{first['msg']} (got {_shown(first['input'])})"
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if where:  # a check across sections (empty location) names its keys itself
        message = f"{_written_where(where, overrides, profile)}: {message}"
    line = f"{source}: {message}{suffix}"
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 3] + "..."


def _merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    return override


def _profiles(data: dict, source: str) -> tuple[str, dict]:
    """The selected profile's name and every profile's overrides, checked as mappings."""
    profile = data.get("profile", "full")
    profiles = data.get("profiles", {}) or {}
    if not isinstance(profile, str):
        raise PipelineError(f"{source}: profile: expected a profile name (got {_shown(profile)})")
    if not isinstance(profiles, dict):
        raise PipelineError(f"{source}: profiles: expected a mapping of profile names")
    for name, overrides in profiles.items():
        if not isinstance(overrides, dict):
            raise PipelineError(f"{source}: profiles.{name}: expected a mapping of sections")
    if profile != "full" and profile not in profiles:
        raise PipelineError(f"{source}: profile: {_shown(profile)} is not 'full' or a key of "
                            f"profiles ({', '.join(map(str, profiles)) or 'none'})"
                            f"{_suggest(profile, ['full', *profiles])}")
    return profile, profiles


def apply_profile(data: dict, source: str = "params.yaml") -> dict:
    """The params with the overrides of the selected profile (``profile``) applied.

    ``profile: full`` (the default) is the file as written; any other name must be a key of
    ``profiles``, whose mapping is merged over the file (e.g. ``profiles.smoke``).
    """
    profile, profiles = _profiles(data, source)
    data = {k: v for k, v in data.items() if k not in ("profile", "profiles")}
    return data if profile == "full" else _merge(data, profiles[profile])


def parse_params(data: Any, source: str = "params.yaml", profile: str | None = None) -> Params:
    """Validate an already-loaded params mapping (after applying its profile).

    ``profile`` selects a profile other than the file's own ``profile`` key. Errors name the key
    as written: ``profiles.smoke.train.models.lstm.epochs`` when the profile sets it.
    """
    if not isinstance(data, dict):
        raise PipelineError(f"{source}: expected a mapping of sections at the top level")
    if profile is not None:
        data = {**data, "profile": profile}
    selected, profiles = _profiles(data, source)
    try:
        return Params.model_validate({**apply_profile(data, source), "profile": selected})
    except ValidationError as error:
        overrides, name = (None, None) if selected == "full" else (profiles[selected], selected)
        raise PipelineError(_one_line(error, source, overrides, name)) from None


def load_params(path: str | os.PathLike[str] = "params.yaml", profile: str | None = None
                ) -> Params:
    """Load and validate ``params.yaml``; any problem raises a one-line :class:`PipelineError`.

    ``profile`` overrides the file's ``profile`` key (e.g. the gate of a smoke run).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: params file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PipelineError(f"{path}:{where} is not valid YAML") from None
    return parse_params(data, str(path), profile)


def model_section(params: Params, name: str) -> ModelSection:
    """The ``train.models.NAME`` section; an unknown name lists the valid ones."""
    try:
        return params.train.models[name]
    except KeyError:
        raise PipelineError(f"params.yaml: train.models has no model {name!r}; valid: "
                            f"{', '.join(params.train.models)}") from None
