"""``up``, ``preview``, ``refresh`` and ``down`` in this process: the program and its real dynamic providers
in the engine's order of steps, with no Pulumi CLI.

``up`` runs, as ``pulumi up`` does:

1. a preview pass (``preview.plan``): every dynamic resource's ``check`` and ``diff`` with the values
   other resources compute still unknown. All check failures, refused replacements or deletes of
   protected resources and resources only the engine can create are reported in one error, before the
   first request;
2. the deletes a failed or interrupted run left pending, before anything else (``retirePendingDeletes``
   in pulumi/pulumi's ``pkg/resource/deploy/deployment_executor.go``, read in the versions that have
   it; the newest one read schedules them through the step generator instead);
3. the program, each registration a step (``applying.ExecutingMocks``): create, update, same, or a
   create-before-delete replacement whose old copy is recorded as a pending delete in the same write
   (``deleteBeforeReplace``: delete first). A failed step stops the deployment: running steps finish,
   none starts, no delete runs, pending deletes stay pending;
4. at the end, the replaced copies and the resources the program no longer declares are deleted
   together, dependents first, each through the blob it was created with and with its old outputs.

What differs from ``pulumi up``: no policy pack run; the state is the manifest
(``.inprocess/<stack>.json``, no secret in it); only dynamic resources can run, plus pulumi-openstack's
``VolumeTypeV3`` through a stand-in (``volume_type_standin``; any other provider's resource is refused
before anything is touched);
``deleteBeforeReplace`` does not first replace the resource's dependents, as the engine does; a run
killed in the middle of a create leaves no record of it (the engine records a pending operation).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from imagelib_ha.inprocess.applying import ExecutingMocks
from imagelib_ha.inprocess.deleting import delete_entries, deletion_waves
from imagelib_ha.inprocess.display import format_outputs, health_table
from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry
from imagelib_ha.inprocess.planner import ProviderCache
from imagelib_ha.inprocess.preview import Plan, delete_step, final_deletes, plan
from imagelib_ha.inprocess.recording import PROGRAM, ProgramRun, run_program, stack_config
from imagelib_ha.inprocess.refresh import refresh_manifest
from imagelib_ha.inprocess.steps import Deployment, Drift, InProcessError, Step, short_type, summary

__all__ = [
    "Deployment",
    "Drift",
    "InProcessError",
    "Step",
    "deletion_waves",
    "down",
    "format_outputs",
    "health_table",
    "manifest_path",
    "preview",
    "refresh",
    "up",
]

NOTICE = (
    "Ran without the Pulumi engine: previewed, checked and diffed through the same providers, but no "
    "policy run; state is kept in {manifest}, not in a Pulumi backend."
)


def manifest_path(root: Path, stack: str) -> Path:
    return root / ".inprocess" / f"{stack}.json"


def _planned(
    config: Mapping[str, Any], stack: str, root: Path, program: Path
) -> tuple[Plan, Manifest, dict[str, Any]]:
    manifest = Manifest.load(manifest_path(root, stack), stack)
    raw_config, _ = stack_config(config)
    the_plan = plan(config, stack=stack, manifest=manifest, raw_config=raw_config, program=program)
    return the_plan, manifest, raw_config


def preview(
    config: Mapping[str, Any],
    *,
    stack: str,
    root: Path,
    out: TextIO | None = None,
    program: Path = PROGRAM,
) -> list[Step]:
    """Print what ``up`` would do against the manifest, and return its steps; nothing is touched.

    Raises ``InProcessError`` (with ``.steps``) after printing the plan when ``up`` would refuse it.
    """
    out = sys.stdout if out is None else out
    the_plan, manifest, _ = _planned(config, stack, root, program)
    print(f"in-process preview: stack {stack}, against {manifest.path}", file=out)
    print(the_plan.text(), file=out, flush=True)
    problem = the_plan.problems()
    if problem:
        raise InProcessError(problem, the_plan.steps)
    return the_plan.steps


def up(
    config: Mapping[str, Any],
    *,
    stack: str,
    root: Path,
    out: TextIO | None = None,
    program: Path = PROGRAM,
) -> Deployment:
    """Deploy ``config`` in-process; prints each step, the health report and the stack outputs.

    ``out`` defaults to ``sys.stdout`` as it is when called. A failure raises ``InProcessError`` whose
    ``.steps`` are the steps completed before it.
    """
    out = sys.stdout if out is None else out
    the_plan, manifest, raw_config = _planned(config, stack, root, program)
    problem = the_plan.problems()
    if problem:
        raise InProcessError(problem)
    providers = ProviderCache(raw_config)
    steps: list[Step] = []
    print(f"in-process up: stack {stack}, {len(the_plan.run.resources)} resources; plan: "
          f"{summary(the_plan.steps)}", file=out, flush=True)
    pending = manifest.pending()
    if pending:
        print("  deletes left pending by an earlier run, first:", file=out, flush=True)
        _deleting(pending, manifest, providers, out, steps, counted=pending)

    mocks = ExecutingMocks(manifest=manifest, providers=providers, out=out, steps=steps)
    try:
        run = _run_program(config, stack, mocks, program)
    finally:
        mocks.wait_idle()  # steps already running finish (and are recorded) before we report
    if mocks.failure is not None:
        raise _with_steps(mocks.failure, steps)

    # The replaced copies and what the program no longer declares go last, dependents first.
    gone = final_deletes(manifest, mocks.seen)
    doomed = manifest.pending() + gone
    if doomed:
        _deleting(doomed, manifest, providers, out, steps, counted=gone)
    print("outputs:", file=out)
    print(format_outputs(run.outputs, run.secret_outputs), file=out)
    print(NOTICE.format(manifest=manifest.path), file=out, flush=True)
    return Deployment(run=run, steps=steps)


def _run_program(config: Mapping[str, Any], stack: str, mocks: ExecutingMocks, program: Path) -> ProgramRun:
    try:
        return run_program(config, stack=stack, mocks=mocks, program=program)
    except Exception as exc:  # noqa: BLE001 - re-raised below as the first failed step's error
        mocks.wait_idle()
        # The first failed step is the cause; what the SDK raised may be a later "not started".
        if mocks.failure is None:
            mocks.failure = exc
        raise _with_steps(mocks.failure, mocks.steps) from None


def _deleting(
    entries: list[ManifestEntry],
    manifest: Manifest,
    providers: ProviderCache,
    out: TextIO,
    steps: list[Step],
    *,
    counted: list[ManifestEntry],
) -> None:
    """Delete ``entries``; those in ``counted`` become ``delete`` steps.

    A replaced copy is not counted: its delete belongs to its ``replace`` step.
    """

    def record(entry: ManifestEntry) -> None:
        if any(entry is c for c in counted):
            steps.append(delete_step(entry))

    try:
        delete_entries(entries, manifest, providers, out, on_deleted=record)
    except Exception as exc:  # noqa: BLE001 - re-raised with the steps done so far
        raise _with_steps(exc, steps) from None


def _with_steps(failure: BaseException, steps: list[Step]) -> InProcessError:
    if isinstance(failure, InProcessError):
        failure.steps = list(steps)
        return failure
    wrapped = InProcessError(f"{type(failure).__name__}: {failure}", steps)
    wrapped.__cause__ = failure
    return wrapped


def refresh(config: Mapping[str, Any], *, stack: str, root: Path, out: TextIO | None = None) -> list[Drift]:
    """Read every recorded resource, print and return its drift, and record what is live."""
    out = sys.stdout if out is None else out
    manifest = Manifest.load(manifest_path(root, stack), stack)
    entries = manifest.deletion_order()
    if not entries:
        print(f"in-process refresh: nothing recorded for stack {stack} ({manifest.path})", file=out)
        return []
    raw_config, _ = stack_config(config)
    print(f"in-process refresh: stack {stack}, {len(entries)} resources", file=out, flush=True)
    drifts = refresh_manifest(manifest, ProviderCache(raw_config), out)
    gone = sum(1 for d in drifts if d.gone)
    print(f"refresh: {gone} gone, {len(drifts) - gone} drifted, {len(entries) - len(drifts)} unchanged",
          file=out, flush=True)
    return drifts


def down(config: Mapping[str, Any], *, stack: str, root: Path, out: TextIO | None = None) -> int:
    """Delete what the manifest records, pending deletes included, dependents first; returns how many."""
    out = sys.stdout if out is None else out
    manifest = Manifest.load(manifest_path(root, stack), stack)
    entries = manifest.pending() + manifest.deletion_order()
    if not entries:
        print(f"in-process down: nothing recorded for stack {stack} ({manifest.path})", file=out)
        return 0
    protected = [f"{short_type(e.type)} {e.name}" for e in manifest.deletion_order() if e.protect]
    if protected:
        raise InProcessError(
            "refusing to delete protected resources: "
            + ", ".join(protected)
            + ". Set protect: false on those images (pcd-imagelib-ha:images[i].protect), run up, then down."
        )
    raw_config, _ = stack_config(config)
    print(f"in-process down: stack {stack}, {len(entries)} resources", file=out, flush=True)
    delete_entries(entries, manifest, ProviderCache(raw_config), out)
    return len(entries)
