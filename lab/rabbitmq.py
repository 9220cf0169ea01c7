"""The lab's RabbitMQ (Debian's `rabbitmq-server`): the message bus between Cinder's services.

oslo.messaging has no other RPC driver that crosses processes (`fake` is in-process, `kafka` carries
notifications only), so Cinder's api, scheduler and volume services need a real broker. Everything of
one lab's broker stays in `<state>/rabbitmq`, on 127.0.0.1 and on the lab's own ports, including its
own `epmd` (Erlang's port mapper): a machine-wide epmd on 4369 would outlive the lab and be shared by
other labs, so the lab starts one per state dir in the foreground and stops it with the broker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from pathlib import Path

from lab import procs
from lab.paths import LabSetupError
from lab.settings import LabConfig

RABBIT_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
RABBIT_USER = "cinder"


def server_installed() -> bool:
    return (RABBIT_SCRIPTS / "rabbitmq-server").exists() and shutil.which("epmd") is not None


def require_installed() -> None:
    if not server_installed():
        raise LabSetupError(
            "RabbitMQ is missing (Cinder's services talk through it): "
            "`apt-get install rabbitmq-server`, or run `python -m lab setup --cinder`"
        )


class RabbitMQ:
    """One RabbitMQ node and its epmd, run as root from `<state>/rabbitmq` on the lab's ports."""

    def __init__(self, cfg: LabConfig) -> None:
        if cfg.cinder is None:
            raise ValueError("RabbitMQ runs only in a lab with Cinder enabled")
        self.cfg = cfg
        self.cinder = cfg.cinder
        self.dir = cfg.root / "rabbitmq"
        self.log = cfg.logs_dir / "rabbitmq.log"
        # A node name unique per state dir: two labs' nodes must never take each other for a peer.
        self.node = f"lab{hashlib.sha256(str(cfg.root).encode()).hexdigest()[:8]}@localhost"

    @property
    def transport_url(self) -> str:
        return f"rabbit://{RABBIT_USER}:{self.cinder.rabbit_password}@127.0.0.1:{self.cinder.rabbit_port}/"

    def _env(self) -> dict[str, str]:
        d = self.dir
        return {
            **os.environ,
            "HOME": str(d),  # the Erlang cookie lives in $HOME
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),  # not Debian's /etc/rabbitmq one
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.cinder.rabbit_port),
            "RABBITMQ_DIST_PORT": str(self.cinder.rabbit_dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.cinder.epmd_port),
            # rabbitmqctl's own distribution ports must stay on loopback too (unused by the lab).
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def write_config(self) -> None:
        d = self.dir
        for sub in ("mnesia", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq-env.conf").write_text("")
        (d / "advanced.config").write_text("[].\n")
        (d / "enabled_plugins").write_text("[].\n")
        # The default user is created only when the node first boots with an empty database.
        conf = d / "rabbitmq.conf"
        conf.write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.cinder.rabbit_port}\n"
            f"default_user = {RABBIT_USER}\n"
            f"default_pass = {self.cinder.rabbit_password}\n"
            "default_vhost = /\n"
            "vm_memory_high_watermark.absolute = 256MiB\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        os.chmod(conf, 0o600)  # holds the broker password
        cookie = d / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(hashlib.sha256(os.urandom(32)).hexdigest()[:20])
        os.chmod(cookie, 0o400)

    def _group(self, name: str, marker: str) -> int | None:
        """The process group a leader file names, while one of its members is still ours (the
        rabbitmq-server script's shell may exit and leave beam.smp running in its group)."""
        try:
            pgid = int((self.dir / name).read_text().strip())
        except (OSError, ValueError):
            return None
        for pid in procs.group_members(pgid):
            if procs.ours(pid, cmd_marker=marker) is not None:
                return pgid
        return None

    def epmd_pid(self) -> int | None:
        return self._group("epmd.leader", f"-port {self.cinder.epmd_port}")

    def pid(self) -> int | None:
        """The broker's process group (beam.smp runs with `-home <state>/rabbitmq`)."""
        return self._group("rabbitmq.leader", str(self.dir))

    def start(self) -> None:
        """Start epmd and the broker (returns at once; wait_ready waits for the AMQP listener)."""
        require_installed()
        self.write_config()
        env = self._env()
        if self.epmd_pid() is None:
            epmd = procs.spawn(["epmd", "-port", str(self.cinder.epmd_port), "-address", "127.0.0.1"],
                               cwd=self.dir, env=env, log_path=self.cfg.logs_dir / "epmd.log")
            (self.dir / "epmd.leader").write_text(str(epmd.pid))
            _wait_port(self.cinder.epmd_port, 10, "epmd", epmd.pid)
        if self.pid() is None:
            proc = procs.spawn([str(RABBIT_SCRIPTS / "rabbitmq-server")], cwd=self.dir, env=env,
                               log_path=self.log)
            (self.dir / "rabbitmq.leader").write_text(str(proc.pid))

    def wait_ready(self, timeout: float = 90) -> None:
        _wait_port(self.cinder.rabbit_port, timeout, f"RabbitMQ (see {self.log} and {self.dir / 'log'})",
                   self.pid())

    def stop(self) -> None:
        for pid in (self.pid(), self.epmd_pid()):
            if pid is not None:
                procs.stop_group(pid)

    def pids(self) -> dict[str, int | None]:
        return {"rabbitmq": self.pid(), "epmd": self.epmd_pid()}


def _wait_port(port: int, timeout: float, what: str, pid: int | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not procs.alive(pid):
            raise RuntimeError(f"{what} exited while starting")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")

