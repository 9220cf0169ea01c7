"""Assign or remove the image-library role on a host and wait until resmgr says it converged.

The waiting rules are the ones the Terraform provider tested against real PCD regions:

* resmgr answers 409 ``RoleUpdateConflict`` while a host converges a previous change (or sits in
  ``deauth-error``): retry the write for up to ``conflict_timeout``.
* Done when ``role_status == "ok"`` **and** ``roles_status_details["pf9-glance-role"] == "applied"``:
  ``role_status`` alone can read ``ok`` before Glance is serving.
* ``failed`` flaps briefly during normal onboarding: fail only once it has lasted ``failed_grace``.
* Everything is bounded by ``converge_timeout``.
* After a removal, the per-host endpoint can answer 404 for minutes: a host that vanished counts as
  removed.

Clock and sleep are injectable so tests run the whole state machine without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from imagelib_ha.client.errors import (
    RoleConflictTimeout,
    RoleConvergeTimeout,
    RoleFailed,
    RoleUpdateConflict,
)
from imagelib_ha.client.resmgr import ResmgrClient, ResmgrHost

Action = Literal["assign", "remove"]
Clock = Callable[[], float]
Sleep = Callable[[float], None]

FAILED_ROLE_STATUS = "failed"
OK_ROLE_STATUS = "ok"
APPLIED = "applied"
NOT_APPLIED = "not-applied"
# Per-role error states of pf9-glance-role: treated like role_status "failed" (same grace period).
GLANCE_ERROR_STATES = frozenset({"auth-error", "deauth-error"})


@dataclass(frozen=True)
class WaitPolicy:
    """How long to retry conflicts, tolerate ``failed``, and wait overall; all in seconds."""

    converge_timeout: float = 1800.0
    failed_grace: float = 120.0
    conflict_timeout: float = 600.0
    poll_interval: float = 5.0


@dataclass(frozen=True)
class RoleProgress:
    """One observation while waiting, for operator output (``str()`` gives a one-line summary)."""

    action: Action
    host_id: str
    hostname: str | None
    phase: str  # "conflict" | "waiting" | "failed-flap" | "done"
    role_status: str | None
    glance_state: str | None
    elapsed: float

    def __str__(self) -> str:
        who = f"{self.hostname or self.host_id} ({self.host_id})"
        return (
            f"image-library {self.action} on {who}: {self.phase}, role_status={self.role_status}, "
            f"pf9-glance-role={self.glance_state}, {self.elapsed:.0f} s"
        )


Progress = Callable[[RoleProgress], None]


def _no_progress(_: RoleProgress) -> None:
    return None


class RoleWaiter:
    """Runs assign-and-wait and remove-and-wait against one region's resmgr.

    Holds only immutable settings, so one instance may serve several threads.
    """

    def __init__(
        self,
        client: ResmgrClient,
        policy: WaitPolicy | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or WaitPolicy()
        self.clock = clock
        self.sleep = sleep
        self.progress = progress or _no_progress

    # --- public ----------------------------------------------------------------------------------
    def assign_and_wait(self, host_id: str, hostname: str | None = None) -> ResmgrHost:
        """Assign the role (retrying 409) and wait until it is applied; returns the converged host."""
        start = self.clock()
        self._write_with_conflict_retry("assign", host_id, hostname, start)
        return self._wait_assigned(host_id, hostname, start)

    def wait_assigned(self, host_id: str, hostname: str | None = None) -> ResmgrHost:
        """Wait, without writing, until a role already assigned (adopted) is applied."""
        return self._wait_assigned(host_id, hostname, self.clock())

    def remove_and_wait(self, host_id: str, hostname: str | None = None) -> None:
        """Remove the role (retrying 409) and wait until the host no longer holds it (or vanished)."""
        start = self.clock()
        self._write_with_conflict_retry("remove", host_id, hostname, start)
        self._wait_removed(host_id, hostname, start)

    # --- steps -----------------------------------------------------------------------------------
    def _report(
        self, action: Action, host_id: str, hostname: str | None, phase: str, host: ResmgrHost | None,
        start: float,
    ) -> None:
        self.progress(
            RoleProgress(
                action=action,
                host_id=host_id,
                hostname=(host.hostname if host else None) or hostname,
                phase=phase,
                role_status=host.role_status if host else None,
                glance_state=host.glance_role_state if host else None,
                elapsed=self.clock() - start,
            )
        )

    def _pause(self, start: float) -> None:
        remaining = self.policy.converge_timeout - (self.clock() - start)
        self.sleep(max(0.0, min(self.policy.poll_interval, remaining)))

    def _write_with_conflict_retry(
        self, action: Action, host_id: str, hostname: str | None, start: float
    ) -> None:
        limit = min(self.policy.conflict_timeout, self.policy.converge_timeout)
        while True:
            try:
                if action == "assign":
                    self.client.assign_image_library(host_id)
                else:
                    self.client.remove_image_library(host_id)
                return
            except RoleUpdateConflict:
                waited = self.clock() - start
                if waited >= limit:
                    raise RoleConflictTimeout(
                        action=action, host_id=host_id, hostname=hostname or host_id, waited=waited,
                        limit=limit,
                    ) from None
                self._report(action, host_id, hostname, "conflict", None, start)
                self.sleep(max(0.0, min(self.policy.poll_interval, limit - waited)))

    def _wait_assigned(self, host_id: str, hostname: str | None, start: float) -> ResmgrHost:
        failed_since: float | None = None
        while True:
            host = self.client.get_host(host_id)
            now = self.clock()
            if host is not None and self._applied(host):
                self._report("assign", host_id, hostname, "done", host, start)
                return host
            failed_since = self._check_failed("assign", host_id, hostname, host, failed_since, now)
            self._check_deadline("assign", host_id, hostname, host, start, now)
            phase = "failed-flap" if failed_since is not None else "waiting"
            self._report("assign", host_id, hostname, phase, host, start)
            self._pause(start)

    def _wait_removed(self, host_id: str, hostname: str | None, start: float) -> None:
        failed_since: float | None = None
        while True:
            host = self.client.get_host(host_id)
            now = self.clock()
            if host is None or self._removed(host):
                self._report("remove", host_id, hostname, "done", host, start)
                return
            failed_since = self._check_failed("remove", host_id, hostname, host, failed_since, now)
            self._check_deadline("remove", host_id, hostname, host, start, now)
            phase = "failed-flap" if failed_since is not None else "waiting"
            self._report("remove", host_id, hostname, phase, host, start)
            self._pause(start)

    # --- rules -----------------------------------------------------------------------------------
    @staticmethod
    def _applied(host: ResmgrHost) -> bool:
        return (
            host.has_image_library
            and host.role_status == OK_ROLE_STATUS
            and host.glance_role_state == APPLIED
        )

    @staticmethod
    def _removed(host: ResmgrHost) -> bool:
        return not host.has_image_library and host.glance_role_state in (None, NOT_APPLIED)

    @staticmethod
    def _is_failed(host: ResmgrHost | None) -> bool:
        if host is None:
            return False
        return host.role_status == FAILED_ROLE_STATUS or host.glance_role_state in GLANCE_ERROR_STATES

    def _check_failed(
        self, action: Action, host_id: str, hostname: str | None, host: ResmgrHost | None,
        failed_since: float | None, now: float,
    ) -> float | None:
        """The time ``failed`` was first seen in the current streak (None when not failed).

        Raises ``RoleFailed`` once the streak has lasted ``failed_grace``.
        """
        if not self._is_failed(host):
            return None
        assert host is not None
        since = now if failed_since is None else failed_since
        if now - since >= self.policy.failed_grace:
            raise RoleFailed(
                action=action,
                host_id=host_id,
                hostname=host.hostname or hostname or host_id,
                role_status=host.role_status,
                glance_state=host.glance_role_state,
                failed_for=now - since,
                grace=self.policy.failed_grace,
                host_message=host.message or "(none reported)",
            )
        return since

    def _check_deadline(
        self, action: Action, host_id: str, hostname: str | None, host: ResmgrHost | None, start: float,
        now: float,
    ) -> None:
        if now - start >= self.policy.converge_timeout:
            raise RoleConvergeTimeout(
                action=action,
                host_id=host_id,
                hostname=(host.hostname if host else None) or hostname or host_id,
                limit=self.policy.converge_timeout,
                role_status=host.role_status if host else "host not found",
                glance_state=host.glance_role_state if host else None,
            )
