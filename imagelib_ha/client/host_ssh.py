"""SSH to the image-library hosts: one reused connection per host, bounded concurrency, verified keys.

asyncssh, not paramiko, by measurement (loopback, median, 2026-11-25, shared/reference/glance-lab.md;
noisy shared machine): a new connection 85 ms with asyncssh 2.24 vs 112 ms with paramiko 5.1, a command
on a reused connection 10 ms vs 53 ms, three hosts in parallel 107 ms (one event loop, no thread per
host). OpenSSH's client was 215 ms per connection. A whole host check is one command on one
connection, so a round costs about one handshake per host, paid in parallel, and later rounds of the
same run (``validate`` retries, ``doctor --watch``) reuse the connections.

Cost measured here (3 lab hosts, 2 shared cores, other labs running: noisy, medians of 9 rounds): the
host checks alone 382 ms a round on reused connections (505 ms on new ones), an API-only health
probe 208 ms, the probe with host checks (run concurrently with the API probes) 440 ms: the checks'
processes on the hosts (sshd, sh, systemctl, stat, findmnt, runuser), not the client, dominate, so
this misses the 1.15x-of-the-CPU-floor target on this machine; the 8-host figure was not measured.

The pool runs its own event loop in one thread so the synchronous health code can call it from any
thread. Host keys are always verified (known_hosts, or the one configured ``hostKey``): a host whose
key is unknown or changed is reported by name and never connected to.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncssh

from imagelib_ha.client.host_access import HostAccess

# How long one host's command may run once connected (the checks are a few stat/grep calls).
COMMAND_TIMEOUT = 20.0
# Bytes of command output kept per host: the log part is bounded on the host already.
MAX_OUTPUT = 256 * 1024


class HostUnreachable(Exception):
    """A host's checks could not run: no connection, refused key, unverified host key, or timeout."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


@dataclass(frozen=True)
class CommandResult:
    """What one command printed on one host, and its exit status."""

    stdout: str
    stderr: str
    exit_status: int


class SshPool:
    """Connections to the hosts of one run (a health round, a doctor run), reused until ``close``."""

    def __init__(self, access: HostAccess) -> None:
        self.access = access
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="host-ssh", daemon=True)
        self._thread.start()
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._tunnel: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._limit = asyncio.Semaphore(access.concurrency)

    # -- public, synchronous ----------------------------------------------------------------------------

    def run_all(
        self, scripts: Mapping[str, tuple[str, Sequence[str]]]
    ) -> dict[str, CommandResult | HostUnreachable]:
        """Run ``scripts[host] = (sh script, args)`` on each host concurrently (at most ``concurrency``)."""
        future = asyncio.run_coroutine_threadsafe(self._run_all(scripts), self._loop)
        return future.result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SshPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- inside the loop ----------------------------------------------------------------------------------

    async def _run_all(
        self, scripts: Mapping[str, tuple[str, Sequence[str]]]
    ) -> dict[str, CommandResult | HostUnreachable]:
        hosts = list(scripts)
        results = await asyncio.gather(*(self._run(h, *scripts[h]) for h in hosts))
        return dict(zip(hosts, results, strict=True))

    async def _run(self, host: str, script: str, args: Sequence[str]) -> CommandResult | HostUnreachable:
        async with self._limit:
            try:
                conn = await self._connection(host)
            except HostUnreachable as exc:
                return exc
            command = "sh -c " + shlex.quote(script) + " host-check " + " ".join(shlex.quote(a) for a in args)
            if self.access.sudo:
                command = f"sudo -n -u {shlex.quote(self.access.sudo)} {command}"
            try:
                res = await asyncio.wait_for(conn.run(command, check=False), COMMAND_TIMEOUT)
            except (TimeoutError, asyncssh.Error, OSError) as exc:
                self._conns.pop(host, None)  # a broken connection is not reused
                conn.abort()
                return HostUnreachable(host, f"the check command failed over SSH: {_describe(exc)}")
            return CommandResult(_text(res.stdout), _text(res.stderr), int(res.exit_status or 0))

    async def _connection(self, host: str) -> asyncssh.SSHClientConnection:
        conn = self._conns.get(host)
        if conn is not None and not conn.is_closed():
            return conn
        errors = 0
        while True:
            try:
                conn = await self._connect(host)
            except (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied) as exc:
                # Never retried: a changed host key or a refused key will not fix itself.
                raise HostUnreachable(host, _describe(exc)) from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                errors += 1
                if errors >= self.access.dial_error_limit:
                    raise HostUnreachable(host, f"cannot connect over SSH after {errors} attempt(s): "
                                                f"{_describe(exc)}") from None
                await asyncio.sleep(min(0.2 * errors, 1.0))
                continue
            self._conns[host] = conn
            return conn

    async def _connect(self, host: str) -> asyncssh.SSHClientConnection:
        a = self.access
        options = self._options()
        if a.proxy is not None:
            async with self._lock:
                if self._tunnel is None or self._tunnel.is_closed():
                    self._tunnel = await asyncio.wait_for(
                        asyncssh.connect(a.proxy.host, port=a.proxy.port,
                                         **{**options, "username": a.proxy.user}),
                        a.per_dial_timeout)
            options["tunnel"] = self._tunnel
        if a.port is not None:
            options["port"] = a.port
        return await asyncio.wait_for(asyncssh.connect(host, **options), a.per_dial_timeout)

    def _options(self) -> dict[str, Any]:
        a = self.access
        known: Any
        if a.host_key is not None:
            known = ([asyncssh.import_public_key(a.host_key)], [], [])
        else:
            known = a.known_hosts  # a path: asyncssh matches [host]:port entries as OpenSSH does
        options: dict[str, Any] = {
            "username": a.user,
            "known_hosts": known,
            "config": [a.ssh_config] if a.ssh_config else None,
            "connect_timeout": a.per_dial_timeout,
            "agent_path": a.agent_socket_path,
        }
        if a.private_key is not None:
            options["client_keys"] = [asyncssh.import_private_key(a.private_key, a.private_key_password)]
        elif a.agent_socket_path is None:
            options["client_keys"] = None
        return options

    async def _close(self) -> None:
        conns = list(self._conns.values()) + ([self._tunnel] if self._tunnel else [])
        self._conns.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()


def _text(value: Any) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
    return text[:MAX_OUTPUT]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return ("host key verification failed: its key is unknown or has changed (refused; check the host "
                "and update hostAccess.knownHosts/hostKey if the change is expected)")
    if isinstance(exc, asyncssh.PermissionDenied):
        return "the SSH key was refused (permission denied): check hostAccess.user and the key"
    if isinstance(exc, TimeoutError):
        return "timed out (hostAccess.perDialTimeout)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running?)"
    return f"{type(exc).__name__}: {exc}"
