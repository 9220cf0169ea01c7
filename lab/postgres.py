"""The lab's PostgreSQL server: the one database the hosts' Glances share (SQLite locks under them)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from lab import procs
from lab.paths import LabSetupError, postgres_bin_dir
from lab.settings import LabConfig

DATABASES = ("keystone", "glance")
CINDER_DATABASE = "cinder"


def ensure_server_installed() -> Path:
    """Return the PostgreSQL bin dir, installing Debian's `postgresql` when it is missing."""
    found = postgres_bin_dir()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        raise LabSetupError(
            "PostgreSQL server binaries are missing and apt-get is unavailable: install PostgreSQL"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    found = postgres_bin_dir()
    if found is None:
        raise LabSetupError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb appeared")
    return found


class Postgres:
    """One PostgreSQL cluster run as the `postgres` user (it refuses root) on 127.0.0.1:<pg_port>."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.pg_dir)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def _as_postgres(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], check=False, capture_output=True, text=True,
            cwd="/",
        )

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        bindir = ensure_server_installed()
        pw = pwd.getpwnam("postgres")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.cfg.pg_password + "\n")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            res = self._as_postgres([
                str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--no-sync",
                "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
            ])
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data}: {res.stderr.strip()[-800:]}")
        with open(self.data / "postgresql.conf", "a") as conf:
            # A lab database: durability traded for start-up and write speed; TCP on 127.0.0.1 only,
            # no unix socket (so two labs never meet in /var/run/postgresql).
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.cfg.pg_port}\n"
                "unix_socket_directories = ''\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\nmax_connections = 300\nshared_buffers = 32MB\n"
            )

    def pid(self) -> int | None:
        try:
            return procs.ours(int((self.data / "postmaster.pid").read_text().split()[0]), cwd=self.data)
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        return procs.alive(self.pid())

    def start(self) -> None:
        bindir = ensure_server_installed()
        if not self.initialised():
            self.init()
        if self.running():
            return
        pw = pwd.getpwnam("postgres")
        self.log.touch()
        os.chown(self.log, pw.pw_uid, pw.pw_gid)
        res = self._as_postgres(
            [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start"]
        )
        if res.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {res.stdout.strip()[-400:]}; see {self.log}")

    def create_databases(self, *, cinder: bool = False) -> None:
        """Keystone's and Glance's databases, and Cinder's when the lab runs Cinder."""
        bindir = ensure_server_installed()
        env = {**os.environ, "PGPASSWORD": self.cfg.pg_password}
        # Only this module's constants reach the SQL: no outside input.
        sql = "".join(
            f"SELECT 'CREATE DATABASE {db}' WHERE NOT EXISTS "  # noqa: S608
            f"(SELECT FROM pg_database WHERE datname = '{db}')\\gexec\n"
            for db in (*DATABASES, *((CINDER_DATABASE,) if cinder else ()))
        )
        res = subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.cfg.pg_port), "-U", "postgres",
             "-v", "ON_ERROR_STOP=1", "-q", "-d", "postgres"],
            input=sql, env=env, capture_output=True, text=True, check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"creating the lab databases failed: {res.stderr.strip()[-400:]}")

    def stop(self) -> None:
        pid = self.pid()
        if not procs.alive(pid):
            return
        bindir = postgres_bin_dir()
        if bindir is not None:
            self._as_postgres([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        if pid and procs.alive(pid):
            procs.stop_group(pid)
