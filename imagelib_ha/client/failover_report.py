"""What a failover run reports: each attempt, the partial files dead hosts may have left, the result,
and the error when no host could create the image."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imagelib_ha.client.glance import GlanceError


@dataclass(frozen=True)
class Attempt:
    """One step of a run, for the outputs and the operator: which host, which id, what happened."""

    host: str
    image_id: str | None
    outcome: str
    reason: str


@dataclass(frozen=True)
class Orphan:
    """A partial data file a dead host may have left in the shared store (remove it with host access).

    A killed host leaves it for good; a frozen host that wakes up usually removes it itself when it
    finds its record deleted.
    """

    image_id: str
    path: str | None


@dataclass(frozen=True)
class FailoverResult:
    """The image that now carries the key, and how it got there."""

    image_id: str
    status: str
    size: int
    os_hash_value: str
    host: str
    adopted: bool
    attempts: list[Attempt]
    orphans: list[Orphan]
    record: dict[str, Any]

    def attempts_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.attempts]

    def orphans_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self.orphans]


class FailoverError(GlanceError):
    """No host could create the image. The message lists every host and why, and any orphans."""

    def __init__(self, message: str, attempts: list[Attempt], orphans: list[Orphan]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.orphans = orphans
