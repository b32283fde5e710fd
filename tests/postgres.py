"""A throwaway PostgreSQL cluster for the platform tests: Debian's ``postgresql-15`` binaries, a
temporary data directory, a Unix socket in it and no TCP port, stopped and deleted at the end.

PostgreSQL refuses to run as root; as root, the cluster runs as the ``postgres`` user the Debian
package creates. ``$SSCARD_TEST_POSTGRES_URL`` names a server of one's own instead (nothing is
started then). Every test works in a schema of its own (:func:`schema_url`) and drops it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "SSCARD_TEST_POSTGRES_URL"
#: ``required`` (``make test``): no PostgreSQL is a failure, not a skip
REQUIRE_ENV = "SSCARD_TEST_POSTGRES"
BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))


class NoPostgres(Exception):
    """No PostgreSQL server can be had here (the message says why)."""


def required() -> bool:
    """Whether this run must test PostgreSQL (``$SSCARD_TEST_POSTGRES=required``)."""
    return os.environ.get(REQUIRE_ENV, "") == "required"


def _bin_dir() -> Path:
    for folder in BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise NoPostgres("no PostgreSQL server binaries (Debian package postgresql-15)")


def _as_owner(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster of one's own; yield its SQLAlchemy URL; stop it and delete its files.

    :raises NoPostgres: no binaries, no ``postgres`` user when run as root, or it did not start
    """
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    bin_dir = _bin_dir()
    user: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise NoPostgres("running as root and there is no 'postgres' user") from None
        user = owner.pw_name
    top = Path(tempfile.mkdtemp(prefix="sscard-pg-"))
    data, sockets = top / "data", top / "run"
    sockets.mkdir()
    if user:
        for path in (top, sockets):
            shutil.chown(path, user, user)
    log = top / "server.log"
    initdb = [
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
    ]
    start = [
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
        "-o",
        f"-c listen_addresses='' -k {sockets} -c fsync=off -c max_connections=200",
        "start",
    ]
    stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    try:
        for step in (initdb, start):
            done = subprocess.run(
                _as_owner(step, user), capture_output=True, text=True, timeout=120, check=False
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                server = (
                    log.read_text(errors="replace").strip().splitlines()[-3:]
                    if log.exists()
                    else []
                )
                raise NoPostgres(f"{Path(step[0]).name} failed: {' / '.join(tail + server)}")
        yield f"postgresql+psycopg://postgres@/postgres?host={sockets}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner(stop, user), capture_output=True, timeout=60, check=False)
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def schema_url(url: str) -> Iterator[str]:
    """A schema of one's own on the server at ``url``, dropped at the end; yields a URL whose
    connections use it (``search_path``).

    :raises NoPostgres: the driver is missing or the server does not answer
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise NoPostgres(
            "the psycopg driver is not installed (pip install 'psycopg[binary]')"
        ) from None
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    schema = f"sscard_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        raise NoPostgres(f"the server at {url} does not answer: {exc.orig}") from None
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
