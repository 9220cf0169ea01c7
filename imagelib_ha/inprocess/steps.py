"""What an in-process run reports: its steps, a deployment, drift found by refresh, and its error.

The names mirror the engine's: a *step* is one operation on one resource (``create``, ``update``,
``replace``, ``delete`` or ``same``). ``preview`` returns the steps it plans, ``up`` the steps it
ran, in the order they completed, so a test can compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from imagelib_ha.inprocess.recording import ProgramRun
from imagelib_ha.inprocess.standins import NOTE, STANDIN_TYPES

Op = Literal["create", "update", "replace", "delete", "same"]
OPS: tuple[Op, ...] = ("create", "update", "replace", "delete", "same")
DYNAMIC_PREFIX = "pulumi-python:dynamic/"
# Explicit provider resources (``openstack.Provider``): nothing to run; never recorded (their inputs
# hold credentials, and the manifest holds none).
PROVIDER_TYPE_PREFIX = "pulumi:providers:"


@dataclass(frozen=True)
class Step:
    """One operation on one resource.

    ``changed`` names the input keys that differ from the recorded state (for ``update`` and
    ``replace``; empty otherwise). A create-before-delete replacement is one ``replace`` step even
    though its old resource is deleted at the end of the run; a pending delete left by an earlier run
    is a ``delete`` step.
    """

    op: Op
    urn: str
    type: str
    name: str
    changed: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return resource_label(self.type, self.name)


@dataclass
class Deployment:
    """What ``up`` did: the program run (registrations, stack outputs) and the steps in completion order."""

    run: ProgramRun
    steps: list[Step] = field(default_factory=list)

    def ops(self) -> dict[str, list[str]]:
        """Resource names by op, for messages and quick assertions."""
        grouped: dict[str, list[str]] = {}
        for step in self.steps:
            grouped.setdefault(step.op, []).append(step.name)
        return grouped


@dataclass(frozen=True)
class Drift:
    """How one recorded resource differs from what its provider reads now.

    ``gone``: the read found nothing (deleted out of band). ``changed``: output key -> (recorded, live);
    values of secret keys are replaced by ``"[secret]"``.
    """

    urn: str
    type: str
    name: str
    gone: bool
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


class InProcessError(pulumi.RunError):
    """An in-process run refused or failed; the message says which resource and why.

    ``steps`` holds the steps that completed before the failure (empty when nothing was touched).
    """

    def __init__(self, message: str, steps: Sequence[Step] = ()) -> None:
        super().__init__(message)
        self.steps = list(steps)


def short_type(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def resource_label(type_: str, name: str) -> str:
    """``ImageLibraryRole imagelib-regionone-lab-host-1``: how messages name a resource.

    A resource played by a stand-in says so wherever it is named (plan, steps, deletes, errors).
    """
    if type_ in STANDIN_TYPES:
        return f"{short_type(type_)} ({NOTE}) {name}"
    return f"{short_type(type_)} {name}"


def summary(steps: Sequence[Step]) -> str:
    """``2 to create, 1 to replace, 4 unchanged``-style counts (ops with no step are left out)."""
    words = {"create": "to create", "update": "to update", "replace": "to replace", "delete": "to delete",
             "same": "unchanged"}
    counts = {op: sum(1 for s in steps if s.op == op) for op in OPS}
    parts = [f"{counts[op]} {words[op]}" for op in OPS if counts[op]]
    return ", ".join(parts) if parts else "no resources"
