"""Real PostgreSQL and Redis servers for the scale-out tests, started on 127.0.0.1 in a private
directory and stopped afterwards. ``bin/test`` installs them from Debian when they are missing."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; run bin/test, which installs it")
    return path


def _as_postgres_user() -> tuple[list[str], int | None, int | None]:
    """initdb refuses to run as root: run the server as the 'postgres' system user when we are root."""
    if os.geteuid() != 0:
        return [], None, None
    user = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid


@contextmanager
def postgres_server(base: Path):
    """``base`` only names the run; the cluster lives in a directory of its own that the 'postgres'
    user can reach (pytest's temporary directories are private to root)."""
    prefix, uid, gid = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix=f"desk-{base.name}-"))
    data = base / "pgdata"
    data.mkdir()
    if uid is not None:
        os.chown(base, uid, gid)
        os.chown(data, uid, gid)
    subprocess.run([*prefix, _pg_bin("initdb"), "-D", str(data), "-U", "desk", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(base / "postgres.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([*prefix, _pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                               "-k", str(base), "-c", "fsync=off", "-c", "max_connections=200"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port)
        deadline = time.monotonic() + 30
        while subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not become ready")
            time.sleep(0.2)
        subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "desk", "desk"],
                       check=True, capture_output=True, timeout=60)
        yield f"postgresql://desk@127.0.0.1:{port}/desk"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis_server(base: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run bin/test, which installs it")
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
