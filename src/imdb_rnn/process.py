"""Who owns a run, a trial or a temporary file: host, process id and process start time.

A process killed with SIGKILL cannot clean up after itself, so whatever it leaves (an MLflow run
RUNNING, an Optuna trial RUNNING, a half-written temporary beside an output) carries its owner,
and the next run of the stage asks whether that owner is still alive. The start time tells a
live process from a later one that reuses the pid. Owners on other hosts cannot be asked: they
are left alone (``alive`` says None).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


def _start_ticks(pid: int) -> str:
    """The process' start time in clock ticks since boot (Linux /proc), '' when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _boot_id() -> str:
    """Changes at every boot: a pid recorded before a reboot never names a live process."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str  # start ticks since boot; '' where /proc is missing
    boot: str = ""

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_ticks(pid), _boot_id())

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
                "owner.start": self.start, "owner.boot": self.boot}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Owner | None:
        try:
            return cls(tags["owner.host"], int(tags["owner.pid"]), tags.get("owner.start", ""),
                       tags.get("owner.boot", ""))
        except (KeyError, ValueError):
            return None

    def alive(self) -> bool | None:
        """True or False for an owner on this host (this boot); None when it ran elsewhere."""
        if self.host != socket.gethostname():
            return None
        if self.boot and self.boot != _boot_id():
            return False  # this machine rebooted since: every process of then is gone
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's live process
        return _start_ticks(self.pid) == self.start

    def is_dead(self) -> bool:
        """Known to be gone (an owner elsewhere is never declared dead)."""
        return self.alive() is False
