"""fetch: local copies and real downloads (from a server on localhost) are verified, never partial."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from imdb_rnn.errors import PipelineError
from imdb_rnn.data.fetch import fetch_archive, sha256_of
from imdb_rnn.config.params import FetchParams

WRONG = "0" * 64


def assert_nothing_left(out: Path) -> None:
    """Neither the output nor a temporary beside it survives a failure."""
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def params(**overrides) -> FetchParams:
    base = {"url": "http://127.0.0.1:9/none.tar.gz", "sha256": WRONG}
    return FetchParams(**{**base, **overrides})


@pytest.fixture
def served(tiny_archive: Path):
    """Serve the tiny archive's folder over HTTP on localhost; yield its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tiny_archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/{tiny_archive.name}"
    server.shutdown()
    server.server_close()


def test_local_copy_is_verified_and_copied(tiny_archive, tmp_path):
    out = tmp_path / "out" / "archive.tar.gz"
    source = fetch_archive(params(local_archive=str(tiny_archive),
                                  local_sha256=sha256_of(tiny_archive)), out)
    assert source == str(tiny_archive)
    assert out.read_bytes() == tiny_archive.read_bytes()


def test_local_copy_with_wrong_checksum_leaves_nothing(tiny_archive, tmp_path):
    out = tmp_path / "out" / "archive.tar.gz"
    with pytest.raises(PipelineError, match=rf"{tiny_archive.name}: SHA-256 is .* expected 0+"):
        fetch_archive(params(local_archive=str(tiny_archive), local_sha256=WRONG), out)
    assert_nothing_left(out)


def test_truncated_local_copy_fails_its_checksum(tiny_archive, tmp_path):
    good = sha256_of(tiny_archive)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tiny_archive.read_bytes()[:100])
    out = tmp_path / "out" / "archive.tar.gz"
    with pytest.raises(PipelineError, match="corrupt, truncated"):
        fetch_archive(params(local_archive=str(truncated), local_sha256=good), out)
    assert_nothing_left(out)


def test_download_is_verified(served, tiny_archive, tmp_path):
    out = tmp_path / "out" / "archive.tar.gz"
    source = fetch_archive(params(url=served, sha256=sha256_of(tiny_archive),
                                  local_archive=str(tmp_path / "absent.tar.gz"),
                                  local_sha256=WRONG), out)
    assert source == served
    assert out.read_bytes() == tiny_archive.read_bytes()


def test_download_with_wrong_checksum_leaves_nothing(served, tmp_path):
    out = tmp_path / "out" / "archive.tar.gz"
    with pytest.raises(PipelineError, match="failed verification"):
        fetch_archive(params(url=served), out)
    assert_nothing_left(out)


def test_unreachable_url_is_one_clear_line(tmp_path):
    out = tmp_path / "out" / "archive.tar.gz"
    with pytest.raises(PipelineError, match=r"could not download .*fetch.local_archive") as info:
        fetch_archive(params(), out)
    assert "\n" not in str(info.value)
    assert_nothing_left(out)


def test_local_archive_needs_a_checksum():
    with pytest.raises(ValueError, match="local_sha256"):
        FetchParams(url="u", sha256=WRONG, local_archive="x.tar.gz")
