"""A throwaway PostgreSQL server on loopback, for the tests that check PostgreSQL support.

Uses the Debian ``postgresql`` package's binaries. PostgreSQL refuses to run as root,
so as root the server runs as the ``postgres`` user. Tests using it are skipped, with
the reason, when the binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BINARIES = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15")]


def find_bin() -> Path | None:
    for d in BINARIES:
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL in a temporary folder; yield a SQLAlchemy URL; stop and remove it."""
    bindir = find_bin()
    assert bindir is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Not under pytest's tmp dir: the postgres user could not enter root's private folders.
    workdir = Path(tempfile.mkdtemp(prefix="dialoop-pg-"))
    data = workdir / "pgdata"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        os.chmod(workdir, 0o700)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr or proc.stdout}")

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dialoop", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(workdir / "log"), "-o",
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dialoop",
            "dialoop")
        yield f"postgresql+psycopg://dialoop@127.0.0.1:{port}/dialoop"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop")
        shutil.rmtree(workdir, ignore_errors=True)
