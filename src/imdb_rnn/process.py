"""Who owns a run, a trial or a temporary file: host, process id and process start time.

A process killed with SIGKILL cannot clean up after itself, so whatever it leaves (an MLflow run
RUNNING, an Optuna trial RUNNING, a half-written temporary beside an output) carries its owner,
and the next run of the stage asks whether that owner is still alive. The start time tells a
live process from a later one that reuses the pid. Owners on other hosts cannot be asked: they
are left alone (``alive`` says None).

A process also ends with the one that started it (:func:`die_with_parent`,
:func:`watch_launcher`): a stage whose `dvc repro` is killed stops within seconds instead of
training on under PID 1 and writing outputs that ``dvc.lock`` never records.
"""

from __future__ import annotations

import ctypes
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Shells that run a command line given with -c (DVC runs each stage as `$SHELL -c CMD`, else
# `/bin/sh -c CMD`); dash (Debian's /bin/sh) does not exec the command, so it stays its parent.
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"})


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name ([0] state, [19] start time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_ticks(pid: int) -> str:
    """The process' start time in clock ticks since boot (Linux /proc), '' when unknown."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@functools.cache
def _boot_id() -> str:
    """Changes at every boot: a pid recorded before a reboot never names a live process."""
    return _read("/proc/sys/kernel/random/boot_id")


@functools.cache
def _machine_id() -> str:
    """The machine, even where hostnames repeat (cloned VMs, containers)."""
    return _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")


def _pid_namespace() -> str:
    """Processes in another PID namespace (a container) cannot be asked by pid."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str  # start ticks since boot; '' where /proc is missing
    boot: str = ""
    machine: str = ""
    pidns: str = ""

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_ticks(pid), _boot_id(), _machine_id(),
                   _pid_namespace())

    def __str__(self) -> str:
        """``host:pid:start``, the form Optuna trials record as their worker."""
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        try:
            host, pid, start = text.rsplit(":", 2)
            return cls(host, int(pid), start)
        except ValueError:
            return None

    def tags(self) -> dict[str, str]:
        """The owner as MLflow run tags."""
        return {"owner.host": self.host, "owner.pid": str(self.pid),
                "owner.start": self.start, "owner.boot": self.boot,
                "owner.machine": self.machine, "owner.pidns": self.pidns}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Owner | None:
        try:
            return cls(tags["owner.host"], int(tags["owner.pid"]), tags.get("owner.start", ""),
                       tags.get("owner.boot", ""), tags.get("owner.machine", ""),
                       tags.get("owner.pidns", ""))
        except (KeyError, ValueError):
            return None

    def alive(self) -> bool | None:
        """True or False for an owner of this machine and PID namespace; None when it ran
        elsewhere or cannot be asked (another machine with the same hostname, a container)."""
        me = Owner.current()
        if self.host != me.host:
            return None
        for recorded, mine in ((self.machine, me.machine), (self.pidns, me.pidns)):
            if recorded and mine and recorded != mine:
                return None
        if self.boot and self.boot != me.boot:
            # Rebooted since (the same machine) or another machine of the same name.
            return False if self.machine and self.machine == me.machine else None
        if os.name != "posix":
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            start = _start_ticks(self.pid)
            return True if not start else start == self.start
        fields = _stat(self.pid)
        if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        return (fields[19] if len(fields) > 19 else "") == self.start

    def is_dead(self) -> bool:
        """Known to be gone (an owner elsewhere is never declared dead)."""
        return self.alive() is False


def die_with_parent(signum: int, parent: int | None = None) -> None:
    """Linux: ``signum`` to this process when its parent ends (``PR_SET_PDEATHSIG``).

    ``parent``: the pid that started this process, when known (a worker); else the parent seen
    just before the request. A parent that ended before the request took effect (this process
    re-parented already) is noticed here: the process exits at once, as the signal would have
    made it.
    """
    if not sys.platform.startswith("linux"):
        return
    expected = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != expected:
        os._exit(128 + int(signum))


def _parent_of(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def _runs_command(pid: int) -> bool:
    """Whether ``pid`` is a shell running a command line (``sh -c CMD``), such as DVC starts."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (len(argv) > 2 and os.path.basename(argv[0].decode(errors="replace")) in SHELLS
            and b"-c" in argv[1:-1])


def launchers() -> list[int]:
    """The processes this one must end with: its parent and, when the parent is a shell that
    runs this command line (`dvc repro` starts a stage as ``/bin/sh -c CMD``), the shell's
    parent. PID 1 and 0 (a container's init, or already re-parented) are never listed."""
    parent = os.getppid()
    if parent <= 1:
        return []
    found = [parent]
    if _runs_command(parent):
        grandparent = _parent_of(parent)
        if grandparent > 1:
            found.append(grandparent)
    return found


def watch_launcher(on_exit: Callable[[int], None], interval: float = 0.2) -> None:
    """Call ``on_exit(pid)`` once, from a daemon thread, when a process of :func:`launchers`
    ends: ``PR_SET_PDEATHSIG`` fires only for the parent, and a shell between DVC and the stage
    outlives a killed DVC (it waits for its command), so the shell's parent is watched here:
    the shell is re-parented the moment it ends."""
    chain = launchers()
    if not chain:
        return
    # Each watched process with its own parent: a re-parented or ended process has ended or
    # lost its launcher (a pid reused since is told apart by its start time).
    watched = [(pid, _start_ticks(pid)) for pid in chain]

    def ended(pid: int, start: str) -> bool:
        fields = _stat(pid)
        return (not fields or fields[0] in ("Z", "X")
                or (len(fields) > 19 and bool(start) and fields[19] != start))

    def watch() -> None:
        while True:
            gone = [pid for pid, start in watched if ended(pid, start)]
            if os.getppid() != chain[0]:
                gone.insert(0, chain[0])
            elif len(chain) > 1 and _parent_of(chain[0]) != chain[1]:
                gone.insert(0, chain[1])
            if gone:
                on_exit(gone[0])
                return
            time.sleep(interval)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


def command_of(pid: int) -> str:
    """The program name of a process (``dvc``, ``sh``), '' when it is gone."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    names = [os.path.basename(a.decode(errors="replace")) for a in argv[:2] if a]
    # `python .../bin/dvc repro`: the script's name, not the interpreter's
    if len(names) > 1 and names[0].startswith("python") and not names[1].startswith("-"):
        return names[1]
    return names[0] if names else ""
