"""The preview pass: the program in preview mode, every dynamic resource checked and diffed, nothing done.

``up`` runs it first, as ``pulumi up`` previews before it updates: every check failure of every
resource, every refused replacement or delete of a protected resource, and every resource only the
engine can create is reported in one error before the first request. ``preview`` prints it. A
resource with a stand-in (``standins``) is checked and diffed through the stand-in like a dynamic one.

What the dependents see follows the engine's preview (pulumi/pulumi ``pkg/resource/provider_plugin.go``:
a provider without preview support, as dynamic providers are, hands back the new inputs as the state
of a create or update): a resource that will be created, updated or replaced shows its checked inputs
and nothing else, so its output-only keys are unknown, and a created or replaced one has an unknown id.
An unchanged resource shows its stored outputs. Inputs computed from unknowns reach ``check`` and
``diff`` as ``pulumi.output.Unknown`` instances.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckFailure
from pulumi.runtime import mocks as pulumi_mocks

from imagelib_ha.inprocess.deleting import deletion_waves
from imagelib_ha.inprocess.display import plan_text
from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry
from imagelib_ha.inprocess.planner import (
    PROVIDER_KEY,
    ProviderCache,
    decide,
    delete_protected_message,
    old_props,
)
from imagelib_ha.inprocess.recording import (
    PROGRAM,
    ProgramRun,
    current_registration,
    run_program,
    unwrap_secrets,
)
from imagelib_ha.inprocess.standins import standin_blob
from imagelib_ha.inprocess.steps import (
    DYNAMIC_PREFIX,
    PROVIDER_TYPE_PREFIX,
    InProcessError,
    Step,
    resource_label,
)

ENGINE_ONLY_HINT = (
    ". Install the Pulumi CLI (https://www.pulumi.com/docs/install/) and run `pulumi up`: the in-process "
    "run has stand-ins for openstack VolumeTypeV3 only."
)


@dataclass(frozen=True)
class PlannedChange:
    """The values behind one planned step, for display: stored outputs, checked inputs, secret keys."""

    step: Step
    olds: dict[str, Any]
    news: dict[str, Any]
    secret_keys: frozenset[str]


@dataclass
class Plan:
    """What ``up`` would do, and what it would refuse.

    ``steps``: pending deletes first, then one step per dynamic resource in registration order, then
    the deletes of resources the program no longer declares (dependents first), as ``up`` runs them.
    """

    run: ProgramRun
    pending: list[Step] = field(default_factory=list)
    changes: list[PlannedChange] = field(default_factory=list)
    deletes: list[Step] = field(default_factory=list)
    check_failures: list[tuple[str, list[CheckFailure]]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    engine_only: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return self.pending + [c.step for c in self.changes] + self.deletes

    def text(self) -> str:
        """The plan for a terminal: each step that does something, its changed inputs, the counts."""
        return plan_text(
            self.pending, [(c.step, c.olds, c.news, c.secret_keys) for c in self.changes], self.deletes
        )

    def problems(self) -> str | None:
        """One message for everything that stops ``up`` before it touches anything; None when clean."""
        if self.engine_only:
            return (
                "this config needs resources only the Pulumi engine can create: "
                + ", ".join(self.engine_only)
                + ENGINE_ONLY_HINT
            )
        parts = []
        if self.check_failures:
            lines = [
                f"  {label}: " + "; ".join(f"{f.property}: {f.reason}" for f in failures)
                for label, failures in self.check_failures
            ]
            count = len(self.check_failures)
            plural = "s" if count > 1 else ""
            parts.append(f"check refused the inputs of {count} resource{plural}:\n" + "\n".join(lines))
        parts += self.refusals
        if not parts:
            return None
        return "\n".join(parts) + "\nNothing was created, changed or deleted."


class PlanningMocks(pulumi_mocks.Mocks):
    """Mocks for a preview run: ``check`` and ``diff`` through the real providers, no create/update/delete."""

    def __init__(self, *, manifest: Manifest, providers: ProviderCache) -> None:
        self.manifest = manifest
        self.providers = providers
        self.changes: list[PlannedChange] = []
        self.check_failures: list[tuple[str, list[CheckFailure]]] = []
        self.refusals: list[str] = []
        self.engine_only: list[str] = []
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise InProcessError(f"function {args.token} cannot be called without the Pulumi engine")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if not args.custom:
            return "", dict(args.inputs)
        standin = standin_blob(args.typ)
        if not args.typ.startswith(DYNAMIC_PREFIX) and standin is None:
            if not args.typ.startswith(PROVIDER_TYPE_PREFIX):
                with self._lock:
                    self.engine_only.append(f"{args.typ} {args.name}")
            return "", dict(args.inputs)
        registration = current_registration()
        if registration is None:
            raise InProcessError("PlanningMocks must run under the RecordingMonitor")
        news: dict[str, Any] = {}
        secret_keys = set()
        for key, value in args.inputs.items():
            news[key], secret = unwrap_secrets(value)
            if secret:
                secret_keys.add(key)
        if standin is not None:
            news[PROVIDER_KEY] = standin
        old = self.manifest.get(registration.urn)
        label = resource_label(args.typ, args.name)
        try:
            decision = decide(self.providers.get(news[PROVIDER_KEY]), old, news, registration)
        except Exception as exc:
            # A provider that raises in check or diff (rather than reporting a failure): say which.
            raise InProcessError(f"{label}: {type(exc).__name__} in check/diff: {exc}") from exc
        step = Step(decision.op, registration.urn, args.typ, args.name, decision.changed)
        with self._lock:
            self.seen.add(registration.urn)
            if decision.failures:
                self.check_failures.append((label, decision.failures))
            if decision.refusal:
                self.refusals.append(decision.refusal)
            self.changes.append(
                PlannedChange(step, old_props(old) if old else {}, decision.checked, frozenset(secret_keys))
            )
        if decision.failures:
            return "", news
        if decision.op == "same" and old is not None:
            return old.id, old_props(old)
        # As the engine previews a create or update for a provider without preview support: the new
        # inputs are the state, so output-only keys stay unknown; a new resource's id is unknown too.
        return (old.id if decision.op == "update" and old is not None else ""), dict(decision.checked)


def final_deletes(manifest: Manifest, declared: set[str]) -> list[ManifestEntry]:
    """Live entries the program no longer declares, dependents first."""
    return [e for e in manifest.deletion_order() if e.urn not in declared]


def plan(
    config: Mapping[str, Any],
    *,
    stack: str,
    manifest: Manifest,
    raw_config: dict[str, Any],
    program: Path = PROGRAM,
) -> Plan:
    """Run ``program`` in preview mode against ``manifest``: the steps ``up`` would take, and its refusals."""
    mocks = PlanningMocks(manifest=manifest, providers=ProviderCache(raw_config))
    run = run_program(config, stack=stack, preview=True, mocks=mocks, program=program)
    result = Plan(
        run=run,
        changes=mocks.changes,
        check_failures=mocks.check_failures,
        refusals=mocks.refusals,
        engine_only=mocks.engine_only,
    )
    result.pending = [delete_step(e) for wave in deletion_waves(manifest.pending()) for e in wave]
    gone = final_deletes(manifest, mocks.seen)
    result.deletes = [delete_step(e) for wave in deletion_waves(gone) for e in wave]
    result.refusals += [delete_protected_message(e) for e in gone if e.protect]
    return result


def delete_step(entry: ManifestEntry) -> Step:
    """The ``delete`` step of a recorded resource."""
    return Step("delete", entry.urn, entry.type, entry.name)
