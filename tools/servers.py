"""Real servers on localhost for the tests and the load benchmark: a PostgreSQL server of its
own in a scratch folder, and ``mlflow server`` on it with proxied artifacts.

Nothing here is a stand-in: the PostgreSQL server is Debian's (package ``postgresql``; its
programs live under /usr/lib/postgresql/VERSION/bin), the tracking server is MLflow's own, with its
basic-auth app. Both listen on 127.0.0.1 only and are stopped and removed by their owner.

    MLFLOW_TRACKING_PASSWORD=... python tools/servers.py   # start both, print the URLs,
                                                           # stop them on Ctrl-C
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of the PostgreSQL server programs (pg_ctl, initdb), None if not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


class Postgres:
    """A PostgreSQL server in ``root`` on 127.0.0.1 (trust authentication, user ``imdb``)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin, self.root, self.port = bin_dir, root, free_port()
        self.data = root / "data"
        self.log = root / "server.log"
        # initdb and the server refuse to run as root: as Debian's postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "imdb", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.created: set[str] = set()
        self.start()

    @classmethod
    def scratch(cls) -> Postgres:
        """A new server in a new folder under the system's temporary directory (not a
        private one: the server may run as another user)."""
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server not installed (Debian: apt-get install "
                               "postgresql)")
        root = Path(tempfile.mkdtemp(prefix="imdb-postgres-"))
        root.chmod(0o755)
        return cls(bin_dir, root)

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bin / program), *args], check=True,
                       capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """A new (or existing) database as a SQLAlchemy URL (psycopg2 driver)."""
        import psycopg2

        if database not in self.created:
            connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="imdb",
                                          dbname="postgres")
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{database}"')
            connection.close()
            self.created.add(database)
        return f"postgresql+psycopg2://imdb@127.0.0.1:{self.port}/{database}"


class TrackingServer:
    """``mlflow server`` with a PostgreSQL backend store and proxied artifacts (a local folder
    standing in for object storage); clients talk to it over HTTP only.

    As a team would run it: MLflow's ``basic-auth`` app (users in ``auth_db``, default: a SQLite
    file next to the log), an admin password generated here and handed to the server through
    its environment only (MLFLOW_AUTH_ADMIN_PASSWORD; the auth config file holds none), and
    ``--allowed-hosts`` naming the one address it serves, so a request with any other Host
    header is refused. Clients authenticate with :attr:`credentials` (MLflow's client reads
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD); :meth:`authenticated` sets them in
    this process's environment, which its subprocesses inherit.
    """

    username = "admin"

    def __init__(self, backend: str, artifacts: Path, log: Path, workers: int = 2,
                 auth_db: str | None = None, password: str | None = None) -> None:
        self.backend, self.artifacts, self.log, self.workers = backend, artifacts, log, workers
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.uri = f"http://{self.host}"
        self.auth_db = auth_db or f"sqlite:///{Path(log).parent / 'basic_auth.db'}"
        # Generated (or the caller's), in memory only: never in a file, a log or a command line.
        self.password = password or secrets.token_urlsafe(24)
        # What the auth app signs its CSRF tokens with, the same in every worker.
        self._secret_key = secrets.token_hex(32)
        self.process: subprocess.Popen | None = None

    @property
    def credentials(self) -> dict[str, str]:
        """The environment variables MLflow's client authenticates with."""
        return {"MLFLOW_TRACKING_USERNAME": self.username,
                "MLFLOW_TRACKING_PASSWORD": self.password}

    @contextlib.contextmanager
    def authenticated(self) -> Iterator[None]:
        """:attr:`credentials` in this process's environment for the block, then restored."""
        from imdb_rnn.tracking.runs import environment

        with environment(**self.credentials):
            yield

    def _auth_config(self) -> Path:
        """The basic-auth app's config (MLFLOW_AUTH_CONFIG_PATH); it holds no password."""
        path = Path(self.log).parent / "basic_auth.ini"
        path.write_text("[mlflow]\ndefault_permission = READ\n"
                        f"database_uri = {self.auth_db}\nadmin_username = {self.username}\n"
                        "authorization_function = "
                        "mlflow.server.auth:authenticate_request_basic_auth\n")
        return path

    def start(self, timeout: float = 120) -> None:
        mlflow = Path(sys.executable).parent / "mlflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # MLflow 3's job runner (GenAI jobs: judges, trace roll-ups) is not used here; its eight
        # processes (seven Huey consumers) poll the store and ignore SIGTERM.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(self._auth_config())
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.password  # creates the admin on first start
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = self._secret_key
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [str(mlflow), "server", "--app-name", "basic-auth",
                 "--backend-store-uri", self.backend,
                 "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                 "--port", str(self.port), "--allowed-hosts", self.host,
                 "--workers", str(self.workers)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()  # what it started may still run in its process group
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:  # /health answers without credentials
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout} s")

    def stop(self) -> None:
        """SIGTERM to the server and its workers (its own process group), then SIGKILL to what
        is left of the group: no process of the server outlives it."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.2)
        if _group_alive(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.process = None


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def scratch_servers(password: str | None = None
                    ) -> Iterator[tuple[Postgres, TrackingServer]]:
    """A scratch PostgreSQL server and a tracking server on it (its database ``mlflow``,
    artifacts and log in the PostgreSQL server's folder), started, with its credentials in this
    process's environment meanwhile; both stopped and removed afterwards."""
    postgres = Postgres.scratch()
    try:
        server = TrackingServer(postgres.url("mlflow"), postgres.root / "artifacts",
                                postgres.root / "mlflow.log", password=password)
        try:
            server.start()
            with server.authenticated():
                yield postgres, server
        finally:
            server.stop()
    finally:
        postgres.remove()


def main() -> None:
    # SIGTERM as Ctrl-C: both leave the with block, which stops and removes the servers. (Not
    # a blocked signal mask with sigwait: the servers would inherit the mask and ignore SIGTERM.)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not password:  # the admin password is the caller's: this tool prints none
        sys.exit("error: set MLFLOW_TRACKING_PASSWORD first (the tracking server's admin "
                 "password; user admin)")
    try:
        with scratch_servers(password) as (postgres, server):
            print(f"export IMDB_TUNE_STORAGE={postgres.url('optuna')}")
            print(f"export MLFLOW_TRACKING_URI={server.uri}")
            print(f"export MLFLOW_TRACKING_USERNAME={server.username}")
            print("(Ctrl-C stops both servers and removes their data)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
