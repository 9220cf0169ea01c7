"""The lab's persisted configuration: ports, credentials and host identities of one state dir.

Chosen once when a state dir is first created and kept, so restarts keep their addresses and two labs
never pick the same ports.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import socket
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

CONFIG_FILE = "lab.json"
REGION_ONE = "RegionOne"
REGION_TWO = "RegionTwo"
V2RoleSpelling = Literal["image-library", "pf9-glance-role"]


# Ports are claimed machine-wide with one file each, so two labs never pick the same port even while
# neither listens on it yet (a host's Glance binds only when it gets the role).
PORT_CLAIMS_DIR = Path("/tmp/pcd-lab-ports")  # noqa: S108 - claim files only, no secrets
LOWEST_PORT = 15000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _claim(port: int, state_dir: Path) -> bool:
    """Claim port for state_dir; a claim whose state dir is gone is taken over."""
    PORT_CLAIMS_DIR.mkdir(mode=0o755, exist_ok=True)
    claim = PORT_CLAIMS_DIR / str(port)
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                owner = Path(claim.read_text().strip())
            except OSError:
                return False
            if owner == state_dir or owner.exists():
                return False
            claim.unlink(missing_ok=True)  # its lab's state dir is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(state_dir))
        return True
    return False


def free_port(state_dir: Path) -> int:
    """A free port on 127.0.0.1 below the kernel's ephemeral range (so no outgoing connection can be
    holding it when a server binds it later), claimed for state_dir."""
    high = _ephemeral_low() - 1
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(LOWEST_PORT, high)
        if _bindable(port) and _claim(port, state_dir):
            return port
    raise RuntimeError(f"no free port found between {LOWEST_PORT} and {high} on 127.0.0.1")


def release_ports(cfg: LabConfig) -> None:
    """Drop this state dir's port claims (when its directory is removed for good)."""
    for port in cfg.all_ports():
        claim = PORT_CLAIMS_DIR / str(port)
        try:
            if Path(claim.read_text().strip()) == cfg.root:
                claim.unlink()
        except OSError:
            pass


def _secret() -> str:
    return secrets.token_urlsafe(18)


class HostSpec(BaseModel):
    """One simulated image-library host as resmgr registers it."""

    name: str
    id: str
    hostname: str
    region: str
    port: int


class Credentials(BaseModel):
    """A Keystone user's password login."""

    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"


class CinderSettings(BaseModel):
    """What the lab's Cinder (and the RabbitMQ between its services) keeps for one state dir: chosen
    the first time Cinder is enabled, kept afterwards."""

    api_port: int
    rabbit_port: int
    rabbit_dist_port: int
    epmd_port: int
    rabbit_password: str
    service: Credentials

    def ports(self) -> list[int]:
        return [self.api_port, self.rabbit_port, self.rabbit_dist_port, self.epmd_port]


class LabConfig(BaseModel):
    """Everything fixed for one lab state dir."""

    state_dir: str
    pg_port: int
    pg_password: str
    pg_dir: str
    keystone_port: int
    resmgr_port: int
    public_glance_port: int
    control_token: str
    admin: Credentials
    member: Credentials
    glance_service: Credentials
    operator: Credentials = Field(description="the lab's own admin user, left alone by revoke-tokens")
    hosts: list[HostSpec]
    token_cache_seconds: int = 300
    converge_seconds: float = 4.0
    removal_404_seconds: float = 5.0
    v2_roles_spelling: V2RoleSpelling = "image-library"
    cinder: CinderSettings | None = Field(
        default=None, description="set once `up --cinder` has run: the lab then also runs Cinder")

    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.keystone_port}/v3"

    @property
    def resmgr_url(self) -> str:
        return f"http://127.0.0.1:{self.resmgr_port}/resmgr"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.resmgr_port}/_lab"

    @property
    def public_glance_url(self) -> str:
        return f"http://127.0.0.1:{self.public_glance_port}"

    @property
    def pg_url_base(self) -> str:
        return f"postgresql+psycopg2://postgres:{self.pg_password}@127.0.0.1:{self.pg_port}"

    @property
    def store_path(self) -> Path:
        """The mount point every host sees its image store at (inside its own mount namespace)."""
        return self.root / "mnt" / "imagelibrary-data"

    @property
    def shared_dir(self) -> Path:
        return self.root / "shared-store"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def all_ports(self) -> list[int]:
        ports = [self.pg_port, self.keystone_port, self.resmgr_port, self.public_glance_port]
        ports += self.cinder.ports() if self.cinder is not None else []
        return ports + [h.port for h in self.hosts]

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if name in (h.name, h.id, h.hostname):
                return h
        known = ", ".join(h.name for h in self.hosts)
        raise KeyError(f"no lab host named {name!r}; the lab has: {known}")

    def host_dir(self, name: str) -> Path:
        return self.root / "hosts" / name

    def save(self) -> None:
        path = self.root / CONFIG_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        os.chmod(tmp, 0o600)  # holds passwords
        tmp.replace(path)


def _postgres_can_reach(path: Path) -> bool:
    """Whether every ancestor of path lets 'other' users traverse it (postgres is not root)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not (parent.stat().st_mode & 0o001):
            return False
    return True


def pick_pg_dir(state_dir: Path) -> Path:
    """Postgres refuses to run as root, so its data must live where the `postgres` user can enter.

    A checkout under a root-only home directory cannot host it: then a /tmp dir keyed by the state dir
    is used (and reported by `status`).
    """
    if _postgres_can_reach(state_dir):
        return state_dir / "postgres"
    key = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"pcd-lab-pg-{key}"  # noqa: S108 - made 0700 and owned by postgres


def _make_hosts(region_one: int, region_two: int, old: list[HostSpec], state_dir: Path) -> list[HostSpec]:
    by_name = {h.name: h for h in old}
    wanted = [(f"lab-host-{i}", REGION_ONE) for i in range(1, region_one + 1)]
    wanted += [(f"lab-host-r2-{i}", REGION_TWO) for i in range(1, region_two + 1)]
    hosts = []
    for name, region in wanted:
        if name in by_name:
            hosts.append(by_name[name])
        else:
            hosts.append(
                HostSpec(
                    name=name, id=str(uuid.uuid4()), hostname=f"{name}.lab.local", region=region,
                    port=free_port(state_dir),
                )
            )
    return hosts


def grow_hosts(cfg: LabConfig, region: str) -> list[HostSpec]:
    """``cfg.hosts`` with one more host in ``region`` (the next free name, a fresh id and port)."""
    if region not in (REGION_ONE, REGION_TWO):
        raise ValueError(f"region must be {REGION_ONE} or {REGION_TWO}, not {region!r}")
    r1 = sum(h.region == REGION_ONE for h in cfg.hosts) + (region == REGION_ONE)
    r2 = sum(h.region == REGION_TWO for h in cfg.hosts) + (region == REGION_TWO)
    return _make_hosts(r1, r2, cfg.hosts, cfg.root)


def release_port(cfg: LabConfig, port: int) -> None:
    """Drop this state dir's claim on one port (a host that left)."""
    claim = PORT_CLAIMS_DIR / str(port)
    try:
        if Path(claim.read_text().strip()) == cfg.root:
            claim.unlink()
    except OSError:
        pass


def enable_cinder(cfg: LabConfig) -> CinderSettings:
    """Give cfg its Cinder settings (fresh ports and secrets) unless it has them; saved."""
    if cfg.cinder is None:
        cfg.cinder = CinderSettings(
            api_port=free_port(cfg.root), rabbit_port=free_port(cfg.root),
            rabbit_dist_port=free_port(cfg.root), epmd_port=free_port(cfg.root),
            rabbit_password=_secret(),
            service=Credentials(username="cinder", password=_secret(), project_name="service"),
        )
        cfg.save()
    return cfg.cinder


def load_config(state_dir: Path) -> LabConfig | None:
    path = state_dir / CONFIG_FILE
    if not path.exists():
        return None
    return LabConfig.model_validate(json.loads(path.read_text()))


def load_or_create(
    state_dir: Path, *, hosts: int | None = None, region_two_hosts: int | None = None
) -> LabConfig:
    """Load a state dir's config, creating it (with fresh free ports) the first time."""
    state_dir = state_dir.resolve()
    existing = load_config(state_dir)
    if existing is not None:
        if hosts is not None or region_two_hosts is not None:
            r1 = hosts if hosts is not None else sum(h.region == REGION_ONE for h in existing.hosts)
            r2 = (
                region_two_hosts
                if region_two_hosts is not None
                else sum(h.region == REGION_TWO for h in existing.hosts)
            )
            existing.hosts = _make_hosts(r1, r2, existing.hosts, state_dir)
            existing.save()
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    # postgres (not root) may need to traverse it; secrets inside are 0600 files.
    os.chmod(state_dir, 0o755)  # noqa: S103
    cfg = LabConfig(
        state_dir=str(state_dir),
        pg_port=free_port(state_dir),
        pg_password=_secret(),
        pg_dir=str(pick_pg_dir(state_dir)),
        keystone_port=free_port(state_dir),
        resmgr_port=free_port(state_dir),
        public_glance_port=free_port(state_dir),
        control_token=_secret(),
        admin=Credentials(username="admin", password=_secret(), project_name="admin"),
        member=Credentials(username="member", password=_secret(), project_name="admin"),
        glance_service=Credentials(username="glance", password=_secret(), project_name="service"),
        operator=Credentials(username="lab-operator", password=_secret(), project_name="admin"),
        hosts=_make_hosts(
            3 if hosts is None else hosts, 1 if region_two_hosts is None else region_two_hosts, [], state_dir
        ),
    )
    cfg.save()
    return cfg
