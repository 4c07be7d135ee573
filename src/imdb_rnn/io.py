"""Atomic file and directory writes, so a failed stage never leaves output that looks complete.

Temporaries live beside their target as ``.NAME.tmp-PID-START-XXXXXXXX`` (PID and START name the
process that writes them). A process killed with SIGKILL cannot remove its own; the next run of
the stage does, before it starts (:func:`sweep_stale_temporaries`), leaving those of live
processes alone. A full disk is a one-line error naming the output (:func:`disk_full_message`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imdb_rnn.errors import PipelineError
from imdb_rnn.process import Owner

# A temporary's name, ".NAME.tmp-" then: this module's (writer's pid and start time, then
# tempfile's 8 random characters, "old" for a folder being replaced) or, before owners were
# recorded, the random part alone.
_TEMPORARY = re.compile(r"\..+\.tmp-(?:(\d+)-(\d*)-)?(?:[a-z0-9_]{8}|old)")


def _temporary_prefix(target: Path) -> str:
    me = Owner.current()
    return f".{target.name}.tmp-{me.pid}-{me.start}-"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    The temporary lives in the target's folder, so the final ``os.replace`` is a rename on one
    file system. On any exception the temporary is removed and ``target`` is left untouched.
    """
    target = Path(target)
    created = _make_parents(target)
    prefix = _temporary_prefix(target)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) entries; give the usual permissions.
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        move_into_place(tmp, target)
    except BaseException as error:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        _remove_empty(created)
        if disk_full_error(error) is not None:
            raise PipelineError(disk_full_message(error, target)) from None
        raise


# errno of a full file system, and of a user's full quota
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(error: BaseException) -> OSError | None:
    """The full-disk OSError that ``error`` is, or was raised from (Keras, h5py and MLflow wrap
    it), else None."""
    for _ in range(10):
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return error
        error = error.__cause__ or error.__context__
        if error is None:
            return None
    return None


def disk_full_message(error: BaseException, target: str | os.PathLike[str] | None = None) -> str:
    """``no space left on device writing PATH``: ``target``, else the file the error names."""
    found = disk_full_error(error)
    where = target if target is not None else getattr(found, "filename", None)
    what = ("disk quota exceeded" if found is not None and found.errno == errno.EDQUOT
            else "no space left on device")
    return f"{what} writing {where}" if where else what


def _make_parents(target: Path) -> list[Path]:
    """Create the folders above ``target``; the ones created, deepest first."""
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed write created, deepest first, while they are empty (another
    output may have been written into one meanwhile)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` (same file system), replacing a file or a folder.

    An old folder is moved aside under a temporary's name first: a kill from here on leaves
    the new output or the old one, never a half-deleted folder.
    """
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f"{_temporary_prefix(target)}old")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Temporary paths for several output files, moved into place together when the block succeeds."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(target)) for target in targets]


@contextlib.contextmanager
def temporary_directory(beside: str | os.PathLike[str]) -> Iterator[Path]:
    """A scratch folder beside ``beside`` (named as its temporaries are), removed on exit."""
    beside = Path(beside)
    created = _make_parents(beside)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(beside), dir=beside.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Folders of a project never searched for temporaries (tools, caches, environments).
_NOT_SEARCHED = {".git", ".dvc", ".venv", "venv", "node_modules", "__pycache__"}


def is_stale(name: str, me: Owner) -> bool:
    """Whether ``name`` is one of this module's temporaries and its writer is gone (a dead pid,
    or a pid reused since); a live writer's (a parallel worker's) is kept."""
    match = _TEMPORARY.fullmatch(name)
    if match is None:
        return False  # not one of ours
    return not (match[1] and Owner(me.host, int(match[1]), match[2]).alive())


def sweep_stale_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Remove every stale temporary under the project ``root`` (each stage does this before it
    starts, so also those of a stage that DVC restores from its run cache instead of running
    again); each removal is reported on stderr. Returns the paths removed."""
    me = Owner.current()
    stale = []
    for folder, dirs, files in os.walk(root):
        found = {name for name in (*dirs, *files) if is_stale(name, me)}
        dirs[:] = [d for d in dirs if d not in _NOT_SEARCHED and d not in found]
        stale += [Path(folder) / name for name in sorted(found)]
    return _remove(stale)


def _remove(paths: list[Path]) -> list[Path]:
    removed = []
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            print(f"warning: cannot remove {path}, left by a killed run: {error.strerror}",
                  file=sys.stderr)
            continue
        print(f"recovered: removed {path}, left by a killed run", file=sys.stderr)
        removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it is a file, else a one-line PipelineError saying what is missing."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: {what} not found")
    return path


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read a JSON file; a missing or malformed file is a one-line PipelineError."""
    try:
        return json.loads(require_file(path, what).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PipelineError(f"{path}: {what} is not valid JSON ({error})") from None


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False,
                                allow_nan=False) + "\n")


def _json_safe(data: Any) -> Any:
    """``data`` with float NaN and infinities as None: they are not JSON (Python writes them
    bare, and DVC, browsers and ``jq`` refuse the file)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_json_safe(v) for v in data]
    return data

