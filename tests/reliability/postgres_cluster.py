"""A private PostgreSQL cluster that a test may stop and start without disturbing anyone else.

    cluster = PostgresCluster.create()        # initdb in a fresh folder, started on its own socket
    url = cluster.create_database("load")     # a SQLAlchemy URL of a new, empty database
    cluster.stop(); cluster.start()           # a real outage and recovery
    cluster.remove()                          # stop it and delete its folder

The machine's shared server (127.0.0.1:5432) serves other tests, so restart tests run their own
cluster: ``initdb`` refuses to run as root, so the cluster's folder belongs to the ``postgres`` user
and its programs run through ``runuser`` when the tests run as root. Authentication is ``trust`` (on
the socket only), and ``fsync`` is off (a test cluster need not survive a power cut, only a restart).

The cluster listens on a Unix socket in its own folder and on no TCP port at all: PostgreSQL cannot be
handed a socket nor bind port 0, so any TCP port the test picked could be taken by another process
between the pick and the start (or a restart); a socket path inside the cluster's folder cannot.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

PG_VERSIONS_DIR = Path("/usr/lib/postgresql")
OWNER = "postgres"
SOCKET_PORT = 5432
"""Only names the socket file (``socket/.s.PGSQL.5432``); the cluster listens on no TCP port."""


class ClusterError(RuntimeError):
    """The private cluster could not be created, started or stopped; carries the server's output."""


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder (``EVALGATE_TEST_PG_BIN`` overrides)."""
    chosen = os.environ.get("EVALGATE_TEST_PG_BIN")
    if chosen:
        return Path(chosen)
    versions = sorted(
        (path for path in PG_VERSIONS_DIR.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not versions:
        raise ClusterError(f"no PostgreSQL server programs (initdb) under {PG_VERSIONS_DIR}")
    return versions[-1]


@dataclass
class PostgresCluster:
    """A cluster in ``root`` (``data/``, ``socket/``, ``server.log``) listening on ``socket/`` only."""

    root: Path
    bin_dir: Path

    @classmethod
    def create(cls) -> PostgresCluster:
        """initdb a new cluster in a fresh folder owned by the ``postgres`` user, and start it."""
        root = Path(tempfile.mkdtemp(prefix="evalgate-pg-"))
        cluster = cls(root=root, bin_dir=pg_bin_dir())
        try:
            (root / "socket").mkdir()
            if os.geteuid() == 0:
                owner = pwd.getpwnam(OWNER)
                for path in (root, root / "socket"):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--no-sync", "--no-instructions")  # fmt: skip
            cluster.start()
        except BaseException:
            cluster.remove()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this cluster (through its Unix socket)."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.root / 'socket'}&port={SOCKET_PORT}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {SOCKET_PORT} -k {self.root / 'socket'} -c listen_addresses='' -c fsync=off "
                   "-c max_connections=200")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, roll back their transactions; ``immediate``:
        no shutdown checkpoint, like a crash) and wait until it is down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        """Whether the server's postmaster is alive."""
        done = subprocess.run(self._command("pg_ctl", "-D", str(self.data), "status"), capture_output=True)
        return done.returncode == 0

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; its URL."""
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def remove(self) -> None:
        """Stop the server if it runs (immediately: nothing in it is kept) and delete its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for failure messages."""
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", OWNER, "--", *command] if os.geteuid() == 0 else command

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(self._command(program, *args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ClusterError(
                f"{program} {' '.join(args)} exited {done.returncode}: {done.stderr.strip() or done.stdout}"
                f"\n{self.log_tail()}"
            )
