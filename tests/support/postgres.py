"""A throwaway PostgreSQL cluster for the test session, from the machine's own PostgreSQL binaries.

`initdb`/`pg_ctl` come from PATH or the newest /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as
root, so as root the cluster lives in a directory owned by `postgres` and every binary runs through
`runuser -u postgres --`. The cluster listens on a free loopback port (and a Unix socket in its own
directory), runs with fsync=off, and is stopped (`-m immediate`) and deleted when the session ends.

Each test that asks for `pg_engine` gets its own database, cloned from a template that was migrated
(core.migrate.upgrade) and seeded (dev.seed.seed) once per session. Missing binaries fail the tests that
need them with a message saying how to install them; they are never skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from core.db import make_engine
from core.migrate import upgrade
from dev.seed import seed

TEMPLATE_DB = "orderflow_template"
# Connections each test engine may open (pool + overflow); the cluster allows far more than a few of them.
PG_POOL_SIZE = 40
_MAX_CONNECTIONS = 300


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([0-9.]+)/bin", path)
        return tuple(int(p) for p in found.group(1).split(".") if p) if found else (0,)

    candidates = [
        Path(d)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: version(str(p)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    bin_dir: Path
    base: Path
    port: int
    run_as: str | None  # "postgres" when we are root, else None (run directly)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def command(self, name: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / name), *args]
        return [_runuser() or "runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def run(self, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(name, *args), cwd=self.base, capture_output=True, text=True, timeout=timeout, check=False
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def initdb(self) -> None:
        done = self.run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={_MAX_CONNECTIONS}"
        )
        done = self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)

    def admin(self) -> Engine:
        return create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _owner_for_cluster() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user to run it as "
            "(installing the OS package `postgresql` creates one)",
            pytrace=False,
        )
    if _runuser() is None:
        pytest.fail("running as root needs `runuser` (util-linux) to start PostgreSQL as `postgres`", pytrace=False)
    return "postgres"


def _runuser() -> str | None:
    found = shutil.which("runuser")
    if found:
        return found
    return next((p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None)


def start_cluster() -> PostgresCluster:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL binaries not found (no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin). "
            "Install them: `apt-get install -y postgresql` (.ci/run does this), then run the tests again.",
            pytrace=False,
        )
    run_as = _owner_for_cluster()
    base = Path(tempfile.mkdtemp(prefix="orderflow-pg-"))
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    os.chmod(base, 0o700)
    cluster = PostgresCluster(bin_dir=bin_dir, base=base, port=free_port(), run_as=run_as)
    try:
        cluster.initdb()
        for attempt in range(3):  # the free port can be taken between picking and binding it
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                cluster.port = free_port()
    except BaseException:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    return cluster


def create_template(cluster: PostgresCluster) -> None:
    """A database at the newest schema with the demo data; every test database is a copy of it."""
    admin = cluster.admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{TEMPLATE_DB}"'))
    finally:
        admin.dispose()
    engine = make_engine(cluster.url(TEMPLATE_DB), pool_size=2)
    try:
        upgrade(engine)
        seed(engine, console_passwords=False)
    finally:
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template to have no open connections


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        create_template(cluster)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, migrated and seeded database for this test only; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = pg_cluster.admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"'))
        yield pg_cluster.url(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=PG_POOL_SIZE)
    yield engine
    engine.dispose()
