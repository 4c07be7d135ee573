"""preprocess: the archive reader, its one-line errors, the split and the duplicate policy."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_archive, tiny_reviews

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import PreprocessParams
from imdb_rnn.data.preprocess import (build_table, count_duplicates, data_report, read_archive,
                                      read_movie_list)


def pp(**overrides) -> PreprocessParams:
    base = dict(lowercase=True, punctuation="split", validation="random", val_fraction=0.5,
                split_seed=1,
                drop_test_duplicates=False, report_maxlens=[5, 10], per_label=None)
    return PreprocessParams(**{**base, **overrides})


def test_reads_every_labeled_review(tiny_archive):
    table = read_archive(tiny_archive)
    assert len(table) == 24
    assert table["review"].is_unique
    assert table.groupby(["split", "label"]).size().tolist() == [6, 6, 6, 6]
    row = table[table["review"] == "train/pos/3_8.txt"].iloc[0]
    assert (row["id"], row["label"], row["rating"]) == (3, 1, 8)
    assert row["text"].startswith("train review 3")


def test_unlabeled_and_other_files_are_skipped(tmp_path):
    files = tiny_reviews(2) | {"train/unsup/5_0.txt": b"no label", "README": b"readme"}
    table = read_archive(make_archive(tmp_path / "a.tar.gz", files))
    assert len(table) == 8


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: {k: v for k, v in f.items() if not k.startswith("test/neg/")},
         r"missing directory aclImdb/test/neg/"),
        (lambda f: f | {"train/pos/99_9.txt": b"  \n"}, r"train/pos/99_9.txt: empty review file"),
        (lambda f: f | {"test/neg/7_1.txt": b"bad \xff byte"},
         r"test/neg/7_1.txt: not valid UTF-8 \(byte 0xff at offset 4\)"),
        (lambda f: f | {"train/neg/8_9.txt": b"text"}, r"rating 9 is impossible for a neg review"),
    ],
)
def test_bad_archives_give_one_line_naming_the_culprit(tmp_path, mutate, message):
    archive = make_archive(tmp_path / "bad.tar.gz", mutate(tiny_reviews()))
    with pytest.raises(PipelineError, match=message) as info:
        read_archive(archive)
    assert "\n" not in str(info.value)


def test_label_directory_without_files(tmp_path):
    files = {k: v for k, v in tiny_reviews().items() if not k.startswith("train/pos/")}
    archive = make_archive(tmp_path / "a.tar.gz", files, dirs=("train/pos",))
    with pytest.raises(PipelineError, match=r"aclImdb/train/pos/ has no review files"):
        read_archive(archive)


def test_truncated_archive(tiny_archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tiny_archive.read_bytes()[:-60])
    with pytest.raises(PipelineError, match=r"cut.tar.gz: corrupt or truncated archive"):
        read_archive(cut)


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"not a tar file at all" * 30))
    with pytest.raises(PipelineError, match="corrupt or truncated"):
        read_archive(junk)


def test_split_is_stratified_and_test_untouched(tiny_archive):
    table, _ = build_table(read_archive(tiny_archive), pp())
    counts = table.groupby(["split", "label"], observed=True).size()
    assert counts.loc["val"].tolist() == [3, 3]
    assert counts.loc["train"].tolist() == [3, 3]
    assert counts.loc["test"].tolist() == [6, 6]
    assert table["text"].iloc[0] == table["text"].iloc[0].lower()


def test_split_seed_reproducible_and_effective(imdb_slice):
    raw = read_archive(imdb_slice)
    val = lambda seed: set(build_table(raw, pp(split_seed=seed))[0].query("split == 'val'")["review"])  # noqa: E731
    assert val(1) == val(1)
    assert val(1) != val(2)


def _with_duplicates() -> dict[str, bytes]:
    files = tiny_reviews()
    files["train/pos/50_9.txt"] = files["train/pos/0_8.txt"]  # repeat inside train
    files["test/pos/60_9.txt"] = files["train/pos/1_8.txt"]  # test text also in train
    return files


def test_duplicates_counted_and_kept_together(tmp_path):
    raw = read_archive(make_archive(tmp_path / "d.tar.gz", _with_duplicates()))
    counts = count_duplicates(raw)
    assert build_table(raw, pp())[1]["raw"] == counts
    assert counts["repeated_in_train"] == 1
    assert counts["in_train_and_test"] == 1
    assert counts["test_reviews_in_train"] == 1
    for seed in range(5):
        table, _ = build_table(raw, pp(split_seed=seed))
        pair = table[table["review"].isin(["train/pos/0_8.txt", "train/pos/50_9.txt"])]
        assert pair["split"].nunique() == 1


@pytest.mark.parametrize(("drop", "test_size"), [(False, 13), (True, 12)])
def test_test_duplicate_policy(tmp_path, drop, test_size):
    raw = read_archive(make_archive(tmp_path / "d.tar.gz", _with_duplicates()))
    table, duplicates = build_table(raw, pp(drop_test_duplicates=drop))
    assert (table["split"] == "test").sum() == test_size
    assert duplicates["test_dropped"] == 13 - test_size


def test_data_report(tiny_archive):
    table, duplicates = build_table(read_archive(tiny_archive), pp())
    report = data_report(table, duplicates, [5, 100])
    assert report["counts"]["test"] == {"reviews": 12, "neg": 6, "pos": 6}
    # "train review 0 : great wonderful loved it ! number 0 ." is 12 tokens
    assert report["length_tokens"]["max"] == 12
    assert report["length_tokens"]["share_cut_at"] == {"5": 1.0, "100": 0.0}


def test_a_slice_keeps_every_split_and_label_balanced(tiny_archive):
    raw = read_archive(tiny_archive)  # 6 reviews per split and label
    table, _ = build_table(raw, pp(per_label=4))
    official = table["split"].astype(str).replace("val", "train")
    assert official.value_counts().to_dict() == {"train": 8, "test": 8}
    assert table.groupby(official)["label"].sum().to_dict() == {"test": 4, "train": 4}
    again, _ = build_table(raw, pp(per_label=4))
    assert again["review"].tolist() == table["review"].tolist()  # seeded by split_seed


# --- hostile members: refused by name, never extracted ------------------------------------------

def _with_member(path, info: tarfile.TarInfo, data: bytes = b"") -> object:
    """The tiny archive plus one raw member (its name as given, not under aclImdb/)."""
    make_archive(path, tiny_reviews(2))
    with tarfile.open(path, "r:gz") as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src]
    with tarfile.open(path, "w:gz") as out:
        for member, content in members:
            out.addfile(member, io.BytesIO(content) if content is not None else None)
        info.size = len(data) if info.isfile() else 0
        out.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(("member", "problem"), [
    (_member("aclImdb/../../../x.txt"), "path with '..'"),
    (_member("aclImdb/train/pos/../../../../etc/x_1.txt"), "path with '..'"),
    (_member("/tmp/evil.txt"), "absolute path"),
    (_member("aclImdb/train/pos/50_9.txt", tarfile.SYMTYPE, "/etc/passwd"), "link to '/etc/passwd'"),
    (_member("aclImdb/train/neg/51_1.txt", tarfile.LNKTYPE, "aclImdb/README"), "link to"),
    (_member("aclImdb/test/pos/fifo", tarfile.FIFOTYPE), "not a regular file or folder"),
    (_member("aclImdb/train/pos/notes.txt"), "unexpected file in a review folder"),
    (_member("aclImdb/test/neg/12_3.TXT"), "unexpected file in a review folder"),
    (_member("aclImdb/train/neg/sub/1_1.txt"), "unexpected file in a review folder"),
    (_member("aclImdb/test/pos/extra", tarfile.DIRTYPE), "unexpected folder in a review folder"),
    (_member("aclImdb/test/unsup/1_0.txt"), "unexpected folder"),
])
def test_a_hostile_or_unexpected_member_stops_preprocess_naming_it(tmp_path, member, problem):
    archive = _with_member(tmp_path / "bad.tar.gz", member, b"great film")
    with pytest.raises(PipelineError) as info:
        read_archive(archive)
    message = str(info.value)
    assert f"member {member.name!r}: {problem}" in message, message
    assert "\n" not in message and len(message) < 300
    assert not (tmp_path / "x.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_what_the_official_archive_holds_besides_reviews_is_accepted(tmp_path):
    extras = {"README": b"r", "imdb.vocab": b"a\nb\n", "imdbEr.txt": b"0.1\n",
              "train/labeledBow.feat": b"0 1:1\n", "train/unsupBow.feat": b"0 1:1\n",
              "test/labeledBow.feat": b"0 1:1\n", "train/urls_pos.txt": b"http://x\n",
              "train/urls_neg.txt": b"http://x\n", "train/urls_unsup.txt": b"http://x\n",
              "test/urls_pos.txt": b"http://x\n", "test/urls_neg.txt": b"http://x\n",
              "train/unsup/0_0.txt": b"unlabeled review"}
    archive = make_archive(tmp_path / "official.tar.gz", tiny_reviews(2) | extras,
                           dirs=("train/", "test/", "train/pos/", "train/unsup/"))
    assert len(read_archive(archive)) == 8


def test_embed_refuses_the_same_members(tmp_path):
    from imdb_rnn.data.embed import read_unlabeled

    archive = _with_member(tmp_path / "bad.tar.gz",
                           _member("aclImdb/train/unsup/1_0.txt", tarfile.SYMTYPE, "../../x"))
    with pytest.raises(PipelineError, match="link to"):
        read_unlabeled(archive)


def _with_movies(tmp_path: Path, urls: bool = True) -> pd.DataFrame:
    """12 training reviews of 4 movies (3 each, consecutive ids as in aclImdb), with the
    official urls_*.txt lists when ``urls``."""
    files = tiny_reviews()
    if urls:
        for label in ("pos", "neg"):
            lines = [f"http://www.imdb.com/title/tt{label}{i // 3}/usercomments" for i in range(6)]
            files[f"train/urls_{label}.txt"] = "\n".join(lines).encode()
    return read_archive(make_archive(tmp_path / "m.tar.gz", files))


def test_movie_validation_from_the_archives_urls_keeps_movies_whole(tmp_path):
    raw = _with_movies(tmp_path)
    assert raw.loc[raw["split"] == "train", "movie"].nunique() == 4
    sides = set()
    for seed in range(6):
        table, _ = build_table(raw, pp(validation="movie", val_fraction=0.25, split_seed=seed))
        val = table.loc[table["split"] == "val", "review"]
        # whole movies: ids 0-2 and 3-5 of one label are one movie each
        movies = {(r.split("/")[1], int(r.split("/")[2].split("_")[0]) // 3) for r in val}
        assert len(val) == 3 * len(movies) == 3
        assert "movie" not in table  # the URLs do not reach the reviews table
        assert "whole movies" in table.attrs["validation"]
        sides.add(frozenset(val))
    assert len(sides) > 1  # the split seed chooses the movies


def test_movie_validation_from_a_list_where_the_archive_has_no_urls(tmp_path):
    raw = _with_movies(tmp_path, urls=False)
    assert raw["movie"].isna().all()
    listed = {"train/pos/0_8.txt", "train/neg/5_2.txt"}
    table, _ = build_table(raw, pp(validation="movie", movie_split_file="l.txt",
                                   movie_split_sha256="0" * 64), listed)
    assert set(table.loc[table["split"] == "val", "review"]) == listed
    with pytest.raises(PipelineError, match="movie_split_file is null"):
        build_table(raw, pp(validation="movie"))


def test_a_duplicate_text_never_straddles_a_movie_split(tmp_path):
    files = tiny_reviews()
    files["train/pos/4_9.txt"] = files["train/pos/0_8.txt"]
    raw = read_archive(make_archive(tmp_path / "d.tar.gz", files))
    table, _ = build_table(raw, pp(validation="movie", movie_split_file="l.txt",
                                   movie_split_sha256="0" * 64), {"train/pos/0_8.txt",
                                                                  "train/pos/1_8.txt"})
    assert set(table.loc[table["split"] == "val", "review"]) == {"train/pos/1_8.txt"}


def test_a_bad_movie_list_is_one_line_naming_it(tmp_path):
    good = tmp_path / "dev.txt"
    good.write_text("pos/0_8.txt\nneg/5_2.txt\n")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert read_movie_list(good, digest) == {"train/pos/0_8.txt", "train/neg/5_2.txt"}
    with pytest.raises(PipelineError, match=r"dev.txt: SHA-256 .* is not preprocess"):
        read_movie_list(good, "f" * 64)
    with pytest.raises(PipelineError, match=r"nope.txt: movie split list not found"):
        read_movie_list(tmp_path / "nope.txt", digest)
    bad = tmp_path / "bad.txt"
    bad.write_text("pos/0_8.txt\ntrain/pos/1_8.txt\n")
    with pytest.raises(PipelineError, match=r"bad.txt:2: 'train/pos/1_8.txt' is not a review"):
        read_movie_list(bad, None)
    raw = _with_movies(tmp_path, urls=False)
    with pytest.raises(PipelineError, match=r"l.txt: none of its 1 reviews is a training review "
                                            r"of the archive, e.g. train/pos/99_9.txt"):
        build_table(raw, pp(validation="movie", movie_split_file="l.txt",
                            movie_split_sha256="0" * 64), {"train/pos/99_9.txt"})


def test_the_committed_movie_list_is_the_one_params_name():
    from imdb_rnn.config.params import load_params

    params = load_params(Path(__file__).parents[1] / "params.yaml").preprocess
    listed = read_movie_list(Path(__file__).parents[1] / params.movie_split_file,
                             params.movie_split_sha256)
    assert len(listed) == 5000


def test_a_movie_split_that_leaves_validation_empty_is_refused(tmp_path):
    raw = _with_movies(tmp_path, urls=False)
    with pytest.raises(PipelineError, match=r"movie leaves validation empty \(the movie-disjoint "
                                            r"list l.txt; a slice of few movies\?\)"):
        build_table(raw, pp(validation="movie", movie_split_file="l.txt",
                            movie_split_sha256="0" * 64, per_label=2), {"train/pos/5_8.txt"})
