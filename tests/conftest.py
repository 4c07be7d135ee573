"""Shared fixtures: tiny hand-made aclImdb archives and a small stratified slice of the real one."""

from __future__ import annotations

import io
import secrets
import tarfile
from pathlib import Path

import pytest

from imdb_rnn.data.preprocess import review_key

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"


def make_archive(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    """Write a .tar.gz with ``files`` (name -> bytes) and empty ``dirs`` under ``aclImdb/``."""
    with tarfile.open(path, "w:gz") as archive:
        for name in dirs:
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tiny_reviews(per_label: int = 6) -> dict[str, bytes]:
    """A few reviews per split and label, with distinct texts and valid ratings."""
    words = {"pos": "great wonderful loved it", "neg": "awful boring hated it"}
    files = {}
    for split in ("train", "test"):
        for label, rating in (("pos", 8), ("neg", 2)):
            for i in range(per_label):
                text = f"{split} review {i}: {words[label]}!<br /><br />Number {i}."
                files[f"{split}/{label}/{i}_{rating}.txt"] = text.encode()
    return files


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "tiny.tar.gz", tiny_reviews())


def slice_archive(source: Path, out: Path, per_dir: int) -> Path:
    """Copy the first ``per_dir`` reviews of each split/label folder of ``source`` to ``out``."""
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(source, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            key = review_key(member.name)
            if key is None or taken.get(key[:2], 0) >= per_dir:
                continue
            taken[key[:2]] = taken.get(key[:2], 0) + 1
            dst.addfile(member, src.extractfile(member))
            if len(taken) == 4 and all(n >= per_dir for n in taken.values()):
                break
    return out


@pytest.fixture(scope="session")
def imdb_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stratified slice of the real IMDB archive: 150 reviews per split and label."""
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"offline IMDB copy not found at {SHARED_ARCHIVE}")
    out = tmp_path_factory.mktemp("imdb") / "aclImdb_slice.tar.gz"
    return slice_archive(SHARED_ARCHIVE, out, per_dir=150)


# --- real servers on localhost (tests/test_servers.py; tools/servers.py) -------------------

# The tracking server's admin password, which the pipeline's stages authenticate with: a sentinel
# (test_servers.py searches everything the DAG wrote for it), unique to this session, with
# characters that URL-encoding changes. In memory only, as tools/servers.py keeps it.
TRACKING_PASSWORD = "sntl" + secrets.token_hex(12) + "/p@ss:w%rd+ &?#="


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's postgresql; .ci/run installs it), skipped without."""
    from servers import Postgres, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    server = Postgres.scratch()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    """``mlflow server`` as the README runs it: MLflow's basic-auth app, on 127.0.0.1 only,
    ``--allowed-hosts`` its own address, an admin password generated for the session (the
    sentinel TRACKING_PASSWORD, never written anywhere). Its users get the credentials through
    the environment (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, read by MLflow's
    client here and inherited by every subprocess a test starts), for as long as the server
    runs."""
    from servers import TrackingServer

    root = tmp_path_factory.mktemp("tracking-server")
    server = TrackingServer(postgres.url("mlflow"), root / "artifacts", root / "server.log",
                            password=TRACKING_PASSWORD)
    server.start()
    try:
        with server.authenticated():
            yield server
    finally:
        server.stop()
