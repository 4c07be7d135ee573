"""Get the aclImdb archive: download it with pooch (checksum verified) or take a verified local copy."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pooch

from imdb_rnn.errors import PipelineError
from imdb_rnn.io import atomic_path, temporary_directory
from imdb_rnn.config.params import FetchParams


def sha256_of(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    return pooch.file_hash(str(path), alg="sha256")


def verify_sha256(path: str | Path, expected_sha256: str) -> None:
    """A one-line error unless ``path`` has the expected SHA-256."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise PipelineError(
            f"{path}: SHA-256 is {actual}, expected {expected_sha256}: "
            "the archive is corrupt, truncated or not the expected file"
        )


def copy_verified(source: Path, expected_sha256: str, out_path: Path) -> None:
    """Copy ``source`` to ``out_path`` if its SHA-256 matches; a mismatch leaves nothing behind."""
    verify_sha256(source, expected_sha256)
    with atomic_path(out_path) as tmp:
        shutil.copyfile(source, tmp)


def download_verified(url: str, expected_sha256: str, out_path: Path, *, progressbar: bool) -> None:
    """Download ``url`` to ``out_path``, verified; pooch's partial download stays inside a
    temporary folder beside ``out_path`` (removed on failure, or by the next run after a kill)."""
    with temporary_directory(out_path) as tmp:
        try:
            downloaded = pooch.retrieve(url, known_hash=f"sha256:{expected_sha256}",
                                        fname=out_path.name, path=tmp, progressbar=progressbar)
        except ValueError as error:  # pooch's checksum mismatch
            raise PipelineError(f"{url}: downloaded file failed verification: {error}") from None
        except Exception as error:  # requests' connection, HTTP and timeout errors
            raise PipelineError(
                f"could not download {url} ({type(error).__name__}: {error}); "
                "on a machine without internet set fetch.local_archive to a local copy"
            ) from None
        os.replace(downloaded, out_path)


def fetch_archive(params: FetchParams, out_path: str | Path) -> str:
    """Put the verified archive at ``out_path``; return where it came from (a path or the URL)."""
    out_path = Path(out_path)
    if params.local_archive is not None and Path(params.local_archive).is_file():
        assert params.local_sha256 is not None  # guaranteed by FetchParams
        copy_verified(Path(params.local_archive), params.local_sha256, out_path)
        return params.local_archive
    if params.local_archive is not None:
        print(f"fetch: no local copy at {params.local_archive}; downloading {params.url}",
              file=sys.stderr)
    download_verified(params.url, params.sha256, out_path, progressbar=sys.stderr.isatty())
    return params.url
