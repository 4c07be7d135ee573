"""Who owns a run, a trial or a temporary file: host, process id and process start time.

A process killed with SIGKILL cannot clean up after itself, so whatever it leaves (an MLflow run
RUNNING, an Optuna trial RUNNING, a half-written temporary beside an output) carries its owner,
and the next run of the stage asks whether that owner is still alive. The start time tells a
live process from a later one that reuses the pid. Owners on other hosts cannot be asked: they
are left alone (``alive`` says None).
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path


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
