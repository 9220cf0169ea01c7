"""The lab's real Keystone: config, one-time bootstrap, and the gunicorn server."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from lab import procs
from lab.paths import lab_venv_bin
from lab.settings import REGION_ONE, Credentials, LabConfig


def authtoken_section(cfg: LabConfig, svc: Credentials) -> str:
    """The ``[keystone_authtoken]`` section a lab service validates tokens with, as ``svc``."""
    return (
        "[keystone_authtoken]\n"
        f"www_authenticate_uri = {cfg.auth_url}\n"
        f"auth_url = {cfg.auth_url}\n"
        "auth_type = password\n"
        f"username = {svc.username}\n"
        f"password = {svc.password}\n"
        f"project_name = {svc.project_name}\n"
        f"user_domain_name = {svc.user_domain_name}\n"
        f"project_domain_name = {svc.project_domain_name}\n"
        f"region_name = {REGION_ONE}\n"
    )


def _gunicorn_conf(*, app: str, port: int, pidfile: Path, workers: int, threads: int, timeout: int,
                   keepalive: int = 2) -> str:
    # Everything goes in gunicorn.conf.py in the working dir: Keystone's WSGI entry parses sys.argv
    # itself and rejects gunicorn's command-line flags (its workers then die in a loop).
    return (
        f'wsgi_app = "{app}"\n'
        f'bind = "127.0.0.1:{port}"\n'
        f"workers = {workers}\n"
        'worker_class = "gthread"\n'
        f"threads = {threads}\n"
        f"timeout = {timeout}\n"
        f"keepalive = {keepalive}\n"
        f'pidfile = "{pidfile}"\n'
        # gunicorn 27 otherwise gives every instance the same control socket.
        "control_socket_disable = True\n"
        'accesslog = "-"\n'
        'errorlog = "-"\n'
        'loglevel = "warning"\n'
    )


class Keystone:
    """Keystone under gunicorn on 127.0.0.1:<keystone_port>, all of its files under <state>/keystone."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.root / "keystone"
        self.conf = self.dir / "keystone.conf"
        self.log = cfg.logs_dir / "keystone.log"
        self.pidfile = self.dir / "gunicorn.pid"
        self._started: int | None = None

    def write_config(self) -> None:
        for sub in ("fernet-keys", "credential-keys"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir / sub, 0o700)  # Keystone warns on every token if others can read keys
        self.cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.log}\n"
            "[database]\n"
            f"connection = {self.cfg.pg_url_base}/keystone\n"
            "[token]\nprovider = fernet\nexpiration = 7200\n"
            f"[fernet_tokens]\nkey_repository = {self.dir / 'fernet-keys'}\n"
            f"[fernet_receipts]\nkey_repository = {self.dir / 'fernet-keys'}\n"
            f"[credential]\nkey_repository = {self.dir / 'credential-keys'}\n"
            # bcrypt's minimum cost: a password token then costs milliseconds, not ~0.36 s.
            "[identity]\npassword_hash_rounds = 4\n"
        )
        os.chmod(self.conf, 0o600)
        (self.dir / "gunicorn.conf.py").write_text(
            # Production APIs are served through a proxy (PCD puts nginx in front of each host's Glance),
            # and nginx keeps idle client connections 75 s by default; gunicorn's own 2 s made every
            # client race the server's idle close far more often than a deployed Keystone would.
            _gunicorn_conf(app="keystone.wsgi.api:application", port=self.cfg.keystone_port,
                           pidfile=self.pidfile, workers=1, threads=8, timeout=120, keepalive=75)
        )

    def bootstrapped(self) -> bool:
        return (self.dir / "bootstrapped").exists()

    def _manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return procs_popen(
            [str(lab_venv_bin() / "keystone-manage"), "--config-file", str(self.conf), *args],
            log=self.cfg.logs_dir / "keystone-manage.log", env=env,
        )

    def db_sync(self) -> subprocess.Popen[bytes]:
        return self._manage("db_sync")

    def write_keys(self) -> None:
        """Fernet token and credential key repositories, as `keystone-manage fernet_setup` and
        `credential_setup` leave them (key 0 staged, key 1 primary), without two more ~2 s Python
        start-ups: a Fernet key is 32 random bytes, urlsafe-base64 encoded."""
        for sub in ("fernet-keys", "credential-keys"):
            repo = self.dir / sub
            repo.mkdir(parents=True, exist_ok=True)
            os.chmod(repo, 0o700)
            if (repo / "0").exists():
                continue
            for index in ("0", "1"):
                key = repo / index
                key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
                os.chmod(key, 0o600)

    def bootstrap(self) -> subprocess.Popen[bytes]:
        url = self.cfg.auth_url
        # The password travels in the environment, never on a command line others can read.
        env = {**os.environ, "OS_BOOTSTRAP_PASSWORD": self.cfg.admin.password}
        return self._manage(
            "bootstrap", "--bootstrap-username", self.cfg.admin.username,
            "--bootstrap-project-name", self.cfg.admin.project_name,
            "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
            "--bootstrap-region-id", REGION_ONE, "--bootstrap-admin-url", url,
            "--bootstrap-public-url", url, "--bootstrap-internal-url", url, env=env,
        )

    def mark_bootstrapped(self) -> None:
        (self.dir / "bootstrapped").touch()

    def pid(self) -> int | None:
        try:
            return procs.ours(int(self.pidfile.read_text().strip()), cwd=self.dir)
        except (OSError, ValueError):
            return None

    def start(self) -> int:
        running = self.pid()
        if running is not None:
            self._started = running
            return running
        env = {**os.environ, "OS_KEYSTONE_CONFIG_DIR": str(self.dir)}
        env.pop("OS_KEYSTONE_CONFIG_FILES", None)
        proc = procs.spawn([str(lab_venv_bin() / "gunicorn")], cwd=self.dir, env=env,
                           log_path=self.cfg.logs_dir / "keystone-gunicorn.log")
        (self.dir / "leader.pid").write_text(str(proc.pid))
        self._started = proc.pid
        return proc.pid

    def leader_pid(self) -> int | None:
        try:
            return procs.ours(int((self.dir / "leader.pid").read_text()), cwd=self.dir)
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = 60) -> None:
        procs.wait_http(self.cfg.auth_url, timeout=timeout, pid=self._started, what="Keystone",
                        log_path=self.log)

    def stop(self) -> None:
        for pid in {self.leader_pid(), self.pid()}:
            if pid:
                procs.stop_group(pid)


def procs_popen(
    argv: list[str], *, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A one-shot setup command whose output goes to log (checked with wait_ok)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ),
                                stdin=subprocess.DEVNULL)


def wait_ok(proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    if proc.wait() != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); see {log}")
