"""Read the aclImdb archive into one clean table, carve the validation split, describe the data."""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import PreprocessParams
from imdb_rnn.data.text import standardize

# Label order is fixed here, once, for every split: neg is 0, pos is 1.
LABELS = {"neg": 0, "pos": 1}
OFFICIAL_SPLITS = ("train", "test")
# pos reviews are rated 7-10 and neg reviews 1-4 in the official release.
RATINGS = {"neg": range(1, 5), "pos": range(7, 11)}
COLUMNS = ["review", "id", "split", "label", "rating", "text"]

_REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
# A review folder: train|test/pos|neg, and train/unsup; nothing but <id>_<rating>.txt inside.
_REVIEW_DIR = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg|unsup)/(.+)$")
_REVIEW_FILE = re.compile(r"^\d+_\d+\.txt$")
_LABEL_DIR = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/?$")
# The official archive's movie lists: line i of train/urls_pos.txt is the movie of pos/i_*.txt.
_URLS = re.compile(r"^(?:\./)?aclImdb/train/urls_(pos|neg)\.txt$")


def review_key(member_name: str) -> tuple[str, str, str, str] | None:
    """(split, label, id, rating) of a labeled review's path inside the archive, else None."""
    match = _REVIEW.match(member_name)
    return match.groups() if match else None  # type: ignore[return-value]


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why an archive member cannot belong to the aclImdb dataset, or None when it can.

    Refused: paths that leave the archive's folder (``..``, absolute), links and special files,
    and anything but ``<id>_<rating>.txt`` files inside a review folder. The official archive's
    other files (README, imdb.vocab, *.feat, urls_*.txt) are accepted. Members are only ever
    read in memory, never extracted.
    """
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "path with '..'"
    if member.issym() or member.islnk():
        return f"link to {member.linkname[:60]!r}"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or folder"
    folder = _REVIEW_DIR.match(name.rstrip("/"))
    if folder:
        split, label, rest = folder.groups()
        if label == "unsup" and split != "train":
            return "unexpected folder (unlabeled reviews are in train/unsup)"
        if member.isdir() or not _REVIEW_FILE.match(rest):
            return f"unexpected {'folder' if member.isdir() else 'file'} in a review folder " \
                   f"(expected <id>_<rating>.txt)"
    return None


def check_member(member: tarfile.TarInfo, archive: str | Path) -> None:
    """A one-line PipelineError naming the member when :func:`member_problem` finds one."""
    problem = member_problem(member)
    if problem is not None:
        shown = member.name if len(member.name) <= 80 else member.name[:77] + "..."
        raise PipelineError(f"{archive}: member {shown!r}: {problem}; not the aclImdb archive")


def read_archive(path: str | Path) -> pd.DataFrame:
    """Read every labeled review of an aclImdb ``.tar.gz`` into a table of raw texts.

    Columns: ``review`` (its path inside ``aclImdb/``, unique), ``id``, ``split`` (official:
    train or test), ``label`` (0 neg, 1 pos), ``rating`` and ``text`` (raw). Where the archive
    holds the official ``train/urls_pos.txt`` and ``urls_neg.txt``, column ``movie`` holds each
    training review's movie URL (else it is None). The unlabeled ``train/unsup`` reviews and
    every other file are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: archive not found (run the fetch stage)")
    rows: list[tuple[str, int, str, int, int, str]] = []
    seen_dirs: set[tuple[str, str]] = set()
    urls: dict[str, list[str]] = {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                check_member(member, path)
                if member.isdir():
                    dir_match = _LABEL_DIR.match(member.name)
                    if dir_match:
                        seen_dirs.add((dir_match.group(1), dir_match.group(2)))
                    continue
                key = review_key(member.name)
                url_list = _URLS.match(member.name)
                if url_list and member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    urls[url_list.group(1)] = _decode(handle.read(), path,
                                                      member.name).splitlines()
                if key is None or not member.isfile():
                    continue
                split, label_name, review_id, rating = key
                seen_dirs.add((split, label_name))
                name = f"{split}/{label_name}/{review_id}_{rating}.txt"
                if int(rating) not in RATINGS[label_name]:
                    raise PipelineError(f"{path}: {name}: rating {rating} is impossible for a "
                                        f"{label_name} review")
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                data = handle.read()
                rows.append((name, int(review_id), split, LABELS[label_name], int(rating),
                             _decode(data, path, name)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise PipelineError(f"{path}: corrupt or truncated archive ({error})") from None
    _check_layout(rows, seen_dirs, path)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["movie"] = table["review"].map(_movies(table, urls)) \
        if set(urls) == set(LABELS) else None
    return table


def _movies(table: pd.DataFrame, urls: dict[str, list[str]]) -> dict[str, str]:
    """Each training review's movie URL, from the lists: line i is the movie of ``LABEL/i_*``.
    Empty unless the lists cover every training review (then the movie split uses
    ``preprocess.movie_split_file`` instead)."""
    movies = {}
    for review, review_id, label in table.loc[table["split"] == "train",
                                              ["review", "id", "label"]].itertuples(index=False):
        lines = urls["pos" if label else "neg"]
        if review_id >= len(lines) or not lines[review_id].strip():
            return {}
        # The movie's page, whatever follows it (/usercomments, a query string).
        movies[review] = lines[review_id].strip().split("/usercomments")[0]
    return movies


def _decode(data: bytes, archive: Path, name: str) -> str:
    if not data.strip():
        raise PipelineError(f"{archive}: {name}: empty review file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PipelineError(f"{archive}: {name}: not valid UTF-8 (byte 0x{data[error.start]:02x} "
                            f"at offset {error.start})") from None


def _check_layout(rows: Sequence[tuple], seen_dirs: set[tuple[str, str]], path: Path) -> None:
    counts = {(split, label): 0 for split in OFFICIAL_SPLITS for label in LABELS}
    for _, _, split, label, _, _ in rows:
        counts[(split, "pos" if label else "neg")] += 1
    for (split, label), count in counts.items():
        if (split, label) not in seen_dirs:
            raise PipelineError(f"{path}: missing directory aclImdb/{split}/{label}/")
        if count == 0:
            raise PipelineError(f"{path}: directory aclImdb/{split}/{label}/ has no review files")


def standardize_texts(texts: Iterable[str], params: PreprocessParams) -> list[str]:
    """Standardise every text with the preprocess params."""
    return [standardize(t, lowercase=params.lowercase, punctuation=params.punctuation)
            for t in texts]


def split_validation(table: pd.DataFrame, *, val_fraction: float, seed: int) -> pd.Series:
    """Return the split column with part of ``train`` relabelled ``val``, stratified by label.

    Reviews with the same text are kept on one side, so a duplicate cannot leak from train into
    validation. The test split is never touched.
    """
    train = table[table["split"] == "train"]
    unique = train.drop_duplicates("text")[["text", "label"]]
    _, val_texts = train_test_split(unique["text"].to_numpy(), test_size=val_fraction,
                                    random_state=seed, stratify=unique["label"].to_numpy())
    is_val = table["text"].isin(set(val_texts)) & (table["split"] == "train")
    return table["split"].mask(is_val, "val")


def movie_validation(movies: dict[str, str], *, val_fraction: float, seed: int) -> set[str]:
    """Validation reviews by whole movies: movies in an order shuffled with ``seed`` go to
    validation until it holds ``val_fraction`` of the training reviews."""
    by_movie: dict[str, list[str]] = {}
    for review, movie in sorted(movies.items()):
        by_movie.setdefault(movie, []).append(review)
    order = sorted(by_movie)
    np.random.default_rng(seed).shuffle(order)
    chosen: set[str] = set()
    for movie in order:
        if len(chosen) >= val_fraction * len(movies):
            break
        chosen.update(by_movie[movie])
    return chosen


def read_movie_list(path: str | Path, sha256: str | None) -> set[str]:
    """The validation reviews of a movie-disjoint split list (``pos/ID_RATING.txt`` lines,
    under ``aclImdb/train/``), checksum verified; a one-line error names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: movie split list not found (preprocess.movie_split_file)")
    if sha256 is not None and (actual := hashlib.sha256(path.read_bytes()).hexdigest()) != sha256:
        raise PipelineError(f"{path}: SHA-256 {actual[:12]}... is not "
                            f"preprocess.movie_split_sha256 {sha256[:12]}...")
    names = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not re.fullmatch(r"(pos|neg)/\d+_\d+\.txt", line):
            raise PipelineError(f"{path}:{number}: {line[:60]!r} is not a review path "
                                "such as pos/123_9.txt")
        names.add(f"train/{line}")
    if not names:
        raise PipelineError(f"{path}: movie split list is empty")
    return names


def has_movies(raw: pd.DataFrame) -> bool:
    """Whether every training review of ``raw`` knows its movie (the official archive's URLs)."""
    return bool("movie" in raw and raw.loc[raw["split"] == "train", "movie"].notna().all())


def carve_validation(table: pd.DataFrame, params: PreprocessParams,
                     movie_list: set[str] | None) -> tuple[pd.Series, str]:
    """The split column with validation carved out of ``train`` as ``params.validation`` says,
    and where the split came from (for the data report).

    movie: from the archive's movie URLs when it has them (``table.attrs["movies"]``), else
    from ``movie_list``. Texts that occur in both parts afterwards go wholly to train, so a
    duplicate never leaks into validation.
    """
    if params.validation == "random":
        return (split_validation(table, val_fraction=params.val_fraction,
                                 seed=params.split_seed),
                f"{params.val_fraction:.0%} of train drawn at random (split seed "
                f"{params.split_seed}), stratified by label")
    train = table[table["split"] == "train"]
    if has_movies(table):
        movies = dict(zip(train["review"], train["movie"]))
        val = movie_validation(movies, val_fraction=params.val_fraction, seed=params.split_seed)
        source = (f"whole movies (train/urls_*.txt), {params.val_fraction:.0%} of train "
                  f"(split seed {params.split_seed})")
    elif movie_list is not None:
        val, source = movie_list, f"the movie-disjoint list {params.movie_split_file}"
    else:
        raise PipelineError("preprocess.validation is movie, but the archive has no "
                            "train/urls_*.txt and preprocess.movie_split_file is null")
    is_train = table["split"] == "train"
    is_val = is_train & table["review"].isin(val)
    shared = set(table.loc[is_val, "text"]) & set(table.loc[is_train & ~is_val, "text"])
    is_val &= ~table["text"].isin(shared)
    if not is_val.any():
        raise PipelineError(f"preprocess.validation: movie leaves validation empty ({source}; "
                            "a slice of few movies?): use preprocess.validation: random for it")
    return table["split"].mask(is_val, "val"), source + ", duplicates kept in train"


def take_slice(raw: pd.DataFrame, per_label: int | None, seed: int) -> pd.DataFrame:
    """At most ``per_label`` reviews of each official split and label, drawn with ``seed``."""
    if per_label is None:
        return raw
    shuffled = raw.sample(frac=1.0, random_state=seed)
    return (shuffled.groupby(["split", "label"], observed=True).head(per_label)
            .sort_values("review", kind="stable").reset_index(drop=True))


def build_table(raw: pd.DataFrame, params: PreprocessParams,
                movie_list: set[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Standardise, split and apply the duplicate policy; return the table and duplicate counts
    (``attrs["validation"]`` says how validation was carved)."""
    if movie_list is not None and params.validation == "movie" and not has_movies(raw):
        # A slice of the archive holds part of the list; none of it means another dataset.
        if not movie_list & set(raw.loc[raw["split"] == "train", "review"]):
            raise PipelineError(f"{params.movie_split_file}: none of its {len(movie_list):,} "
                                f"reviews is a training review of the archive, e.g. "
                                f"{min(movie_list)}")
    table = take_slice(raw, params.per_label, params.split_seed)
    raw = table
    table = table.copy()
    table["text"] = standardize_texts(table["text"], params)
    if (table["text"] == "").any():
        culprit = table.loc[table["text"] == "", "review"].iloc[0]
        raise PipelineError(f"{culprit}: review is empty after standardisation")
    # Raw counts match the dataset's documentation; standardised ones are what models see.
    duplicates = {"raw": count_duplicates(raw), "standardized": count_duplicates(table)}
    if params.drop_test_duplicates:
        train_texts = set(table.loc[table["split"] == "train", "text"])
        table = table[~((table["split"] == "test") & table["text"].isin(train_texts))]
    table["split"], validation = carve_validation(table, params, movie_list)
    duplicates["test_dropped"] = int(len(raw) - len(table))
    table = table.sort_values(["split", "review"], kind="stable").reset_index(drop=True)
    table["split"] = pd.Categorical(table["split"], categories=["train", "val", "test"])
    table = table.drop(columns="movie", errors="ignore")
    table.attrs = {"validation": validation}
    return table, duplicates


def count_duplicates(table: pd.DataFrame) -> dict[str, int]:
    """Count repeated texts inside each official split and texts shared by train and test."""
    train = table.loc[table["split"] == "train", "text"]
    test = table.loc[table["split"] == "test", "text"]
    shared = set(train) & set(test)
    return {
        "distinct_texts": int(table["text"].nunique()),
        "repeated_in_train": int(train.duplicated().sum()),
        "repeated_in_test": int(test.duplicated().sum()),
        "in_train_and_test": len(shared),
        "test_reviews_in_train": int(test.isin(shared).sum()),
        "texts_with_two_labels": int((table.groupby("text")["label"].nunique() > 1).sum()),
    }


def data_report(table: pd.DataFrame, duplicates: dict, maxlens: Sequence[int]) -> dict:
    """Counts per split and label, duplicates, and review length in tokens (with cut shares)."""
    lengths = table["text"].str.count(" ").to_numpy() + 1  # standardised text: one space a gap
    counts = {}
    for split in ["train", "val", "test"]:
        part = table["split"] == split
        counts[split] = {
            "reviews": int(part.sum()),
            "neg": int((part & (table["label"] == 0)).sum()),
            "pos": int((part & (table["label"] == 1)).sum()),
        }
    return {
        "counts": counts,
        "duplicates": duplicates,
        "length_tokens": {
            "mean": round(float(lengths.mean()), 1),
            "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)),
            "p99": float(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
            # Share of reviews longer than maxlen, i.e. cut when padded to that length.
            "share_cut_at": {str(m): round(float((lengths > m).mean()), 4) for m in maxlens},
        },
    }


def report_markdown(report: dict, params: PreprocessParams, source: str,
                    validation: str) -> str:
    """The data report as short Markdown for people; ``validation`` says how it was carved."""
    lines = ["# Data report", "",
             f"Source: `{source}`. Text: lowercase={params.lowercase}, "
             f"punctuation={params.punctuation}; validation = {validation}.",
             "", "| split | reviews | neg | pos |", "|---|---:|---:|---:|"]
    for split, c in report["counts"].items():
        lines.append(f"| {split} | {c['reviews']:,} | {c['neg']:,} | {c['pos']:,} |")
    d = report["duplicates"]["standardized"]
    raw = report["duplicates"]["raw"]
    policy = ("dropped from test" if params.drop_test_duplicates
              else "kept in test (official split)")
    lines += ["", "## Duplicates", "",
              f"- {d['distinct_texts']:,} distinct texts after standardisation "
              f"({raw['distinct_texts']:,} in the raw text).",
              f"- {d['repeated_in_train']} extra copies of a text inside train, "
              f"{d['repeated_in_test']} inside test ({raw['repeated_in_train']} and "
              f"{raw['repeated_in_test']} in the raw text).",
              f"- {d['in_train_and_test']} texts occur in both train and test "
              f"({d['test_reviews_in_train']} test reviews): {policy}; "
              f"{report['duplicates']['test_dropped']} dropped.",
              f"- {d['texts_with_two_labels']} texts carry two different labels.",
              "", "## Review length (tokens)", ""]
    L = report["length_tokens"]
    lines.append(f"Mean {L['mean']}, median {L['median']:.0f}, 90th percentile {L['p90']:.0f}, "
                 f"99th {L['p99']:.0f}, longest {L['max']:,}.")
    lines += ["", "| maxlen | reviews cut |", "|---:|---:|"]
    lines += [f"| {m} | {share:.1%} |" for m, share in L["share_cut_at"].items()]
    return "\n".join(lines) + "\n"


def read_table(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """Read columns of the reviews table; a missing or unreadable file is a one-line error."""
    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise PipelineError(f"{path}: reviews table not found (run the preprocess stage)") from None
    except Exception as error:  # pyarrow's errors for a corrupt file or missing columns
        raise PipelineError(f"{path}: cannot read the reviews table ({error})") from None
