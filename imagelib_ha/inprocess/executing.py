"""Executing mocks: run ``__main__.py`` in this process with the real dynamic providers, no Pulumi CLI.

Each dynamic resource reaches ``Mocks.new_resource`` with its pickled provider in the secret
``__provider`` input. ``ExecutingMocks`` rebuilds that provider the way ``python -m pulumi.dynamic``
does (pulumi 3.272.0, ``pulumi/dynamic/__main__.py``: base64, ``dill.loads`` inside
``pulumi.runtime._serialization._deserialize``, then ``configure`` with the stack config once per
blob) and calls ``check`` then ``create`` -- or, for a resource the manifest already holds, ``diff``
then ``update`` or a create-before-delete replacement. That is private SDK API: the pulumi version is
pinned in pyproject.toml.

What differs from ``pulumi up``: no preview, no diff display, no policy pack run, and the state is the
manifest (``.inprocess/<stack>.json``), not a Pulumi backend. Only dynamic resources can run here; a
config that needs another provider's resources (the Cinder volume type through pulumi-openstack) is
refused before anything is touched.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import dill
import pulumi
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime._serialization import _deserialize

from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry, with_cloud
from imagelib_ha.inprocess.recording import (
    PROGRAM,
    ProgramRun,
    current_registration,
    run_program,
    stack_config,
    unwrap_secrets,
)
from imagelib_ha.settings import PROJECT, parse_settings

DYNAMIC_PREFIX = "pulumi-python:dynamic/"
PROVIDER_KEY = "__provider"
# The provider server runs at most this many calls at once; so do we.
MAX_PARALLEL = 4
HEALTH_TYPE = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
NOTICE = (
    "Ran without the Pulumi engine: no preview, no diff, no policy run; state is kept in {manifest}, "
    "not in a Pulumi backend."
)


class InProcessError(pulumi.RunError):
    """An in-process run refused or failed; the message says which resource and why."""


def short_type(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def engine_only_resources(run: ProgramRun) -> list[str]:
    """Custom resources no dynamic provider can create here (``type name`` for each)."""
    return [
        f"{r.type} {r.name}"
        for r in run.resources
        if r.custom and not r.type.startswith(DYNAMIC_PREFIX) and not r.type.startswith("pulumi:providers:")
    ]


@dataclass
class ProviderCache:
    """Unpickled, configured providers, one per serialized blob (as the provider server keeps them)."""

    raw_config: dict[str, Any]

    def __post_init__(self) -> None:
        self._providers: dict[str, ResourceProvider] = {}
        self._lock = threading.Lock()

    def get(self, blob: str) -> ResourceProvider:
        with self._lock:
            provider = self._providers.get(blob)
            if provider is None:

                def load() -> ResourceProvider:
                    return dill.loads(base64.b64decode(blob))  # noqa: S301 (our own pickled provider)

                provider = _deserialize(load)
                provider.configure(ConfigureRequest(Config(raw_config=self.raw_config, project_name=PROJECT)))
                self._providers[blob] = provider
            return provider


def _check(
    provider: ResourceProvider, olds: dict[str, Any], news: dict[str, Any], label: str
) -> dict[str, Any]:
    result = provider.check(olds, news)
    if result.failures:
        reasons = "; ".join(f"{f.property}: {f.reason}" for f in result.failures)
        raise InProcessError(f"{label}: check refused the inputs: {reasons}")
    checked = dict(result.inputs)
    checked[PROVIDER_KEY] = news[PROVIDER_KEY]
    return checked


class ExecutingMocks(pulumi_mocks.Mocks):
    """Mocks whose ``new_resource`` creates (or updates) the resource for real through its provider."""

    def __init__(self, *, manifest: Manifest, raw_config: dict[str, Any], out: TextIO) -> None:
        self.manifest = manifest
        self.providers = ProviderCache(raw_config)
        self.out = out
        self.seen: set[str] = set()
        self._slots = threading.Semaphore(MAX_PARALLEL)
        self._print_lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._print_lock:
            print(text, file=self.out, flush=True)

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise InProcessError(f"function {args.token} cannot be called without the Pulumi engine")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if not args.custom:
            return "", dict(args.inputs)
        if not args.typ.startswith(DYNAMIC_PREFIX):
            raise InProcessError(
                f"{args.typ} {args.name} needs the Pulumi engine; it cannot be created in-process"
            )
        registration = current_registration()
        if registration is None:
            raise InProcessError("ExecutingMocks must run under the RecordingMonitor")
        news: dict[str, Any] = {}
        secret_keys: list[str] = []
        for key, value in args.inputs.items():
            news[key], secret = unwrap_secrets(value)
            if secret:
                secret_keys.append(key)
        blob = news[PROVIDER_KEY]
        label = f"{short_type(args.typ)} {args.name}"
        with self._slots:
            provider = self.providers.get(blob)
            started = time.monotonic()
            try:
                resource_id, outs, verb = self._apply(provider, registration.urn, news, label)
            except InProcessError:
                raise
            except Exception as exc:
                # The provider's message names the host and the cause; say which resource it was.
                raise InProcessError(f"{label}: {type(exc).__name__}: {exc}") from exc
            elapsed = time.monotonic() - started
        self.seen.add(registration.urn)
        self.manifest.put(
            ManifestEntry(
                urn=registration.urn,
                type=args.typ,
                name=args.name,
                id=resource_id,
                outputs={k: v for k, v in outs.items() if k != PROVIDER_KEY},
                secret_keys=sorted(set(secret_keys) - {PROVIDER_KEY}),
                dependencies=registration.dependencies,
                provider_blob=blob,
                protect=registration.protect,
            )
        )
        self.say(f"  {verb:<10} {label}  ({elapsed:.1f}s)")
        if args.typ == HEALTH_TYPE and verb == "unchanged":
            # Created, updated or replaced, the provider has just printed its live table (with
            # latency) to stderr; unchanged, nothing was probed, so the stored report is what there is.
            self.say("    health report (unchanged: as stored at the last validation, not probed now):")
            self.say(health_table(outs.get("report") or []))
        # The engine re-marks an output secret under the key of a secret input: do the same.
        state = {k: (rpc.wrap_rpc_secret(v) if k in secret_keys else v) for k, v in outs.items()}
        state[PROVIDER_KEY] = rpc.wrap_rpc_secret(blob)
        return resource_id, state

    def _apply(
        self, provider: ResourceProvider, urn: str, news: dict[str, Any], label: str
    ) -> tuple[str, dict[str, Any], str]:
        old = self.manifest.get(urn)
        if old is None:
            checked = _check(provider, {}, news, label)
            created = provider.create(checked)
            return str(created.id), dict(created.outs or {}), "created"
        olds = with_cloud(old.outputs, news.get("cloud") or {})
        olds[PROVIDER_KEY] = news[PROVIDER_KEY]
        checked = _check(provider, olds, news, label)
        diff = provider.diff(old.id, olds, checked)
        if diff.changes is False:
            return old.id, olds, "unchanged"
        if diff.replaces:
            if diff.delete_before_replace:
                provider.delete(old.id, olds)
                created = provider.create(checked)
            else:
                created = provider.create(checked)
                # The old resource goes with the code pickled when it was made, as the engine does.
                self.providers.get(old.provider_blob).delete(old.id, olds)
            return str(created.id), dict(created.outs or {}), "replaced"
        updated = provider.update(old.id, olds, checked)
        return old.id, dict(updated.outs or {}), "updated"


def health_table(report: list[Mapping[str, Any]]) -> str:
    """The health report as an aligned text table."""
    columns = ("hostname", "host_id", "endpoint", "status", "reason")
    rows = [[str(entry.get(c) if entry.get(c) is not None else "") for c in columns] for entry in report]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join("    " + line.rstrip() for line in lines)


def manifest_path(root: Path, stack: str) -> Path:
    return root / ".inprocess" / f"{stack}.json"


def _cloud_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return parse_settings(config).cloud_access()


def deletion_waves(entries: list[ManifestEntry]) -> list[list[ManifestEntry]]:
    """``entries`` grouped so each group only holds resources nothing left still depends on."""
    remaining = list(entries)
    waves = []
    while remaining:
        needed = {dep for e in remaining for dep in e.dependencies}
        wave = [e for e in remaining if e.urn not in needed]
        if not wave:  # a cycle cannot come from a Pulumi program; fall back to reverse creation order
            wave = [remaining[0]]
        waves.append(wave)
        remaining = [e for e in remaining if e not in wave]
    return waves


def delete_entries(
    entries: list[ManifestEntry],
    manifest: Manifest,
    providers: ProviderCache,
    cloud: dict[str, Any],
    out: TextIO,
) -> None:
    """Delete ``entries`` through the providers pickled when each was made, dependents first.

    Resources of one wave (the roles of several hosts, say) are deleted concurrently, as the engine
    would; each is struck from the manifest as soon as it is gone.
    """
    lock = threading.Lock()

    def delete(entry: ManifestEntry) -> None:
        label = f"{short_type(entry.type)} {entry.name}"
        props = with_cloud(entry.outputs, cloud)
        props[PROVIDER_KEY] = entry.provider_blob
        started = time.monotonic()
        try:
            providers.get(entry.provider_blob).delete(entry.id, props)
        except Exception as exc:
            raise InProcessError(f"{label}: delete failed: {type(exc).__name__}: {exc}") from exc
        manifest.remove(entry.urn)
        with lock:
            print(f"  {'deleted':<10} {label}  ({time.monotonic() - started:.1f}s)", file=out, flush=True)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        for wave in deletion_waves(entries):
            for future in [pool.submit(delete, entry) for entry in wave]:
                future.result()


def format_outputs(outputs: Mapping[str, Any], secret: frozenset[str]) -> str:
    """Stack outputs for a terminal: one key per line, structures as indented JSON."""
    lines = []
    for key in sorted(outputs):
        value = _integral(outputs[key])
        if key in secret:
            text = "[secret]"
        elif isinstance(value, str):
            text = value.rstrip("\n")
        else:
            text = json.dumps(value, indent=2, sort_keys=True)
        if "\n" in text:
            lines.append(f"  {key}:\n" + textwrap.indent(text, "      "))
        else:
            lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def _integral(value: Any) -> Any:
    # Numbers travel as protobuf doubles: show 3, not 3.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def up(
    config: Mapping[str, Any],
    *,
    stack: str,
    root: Path,
    out: TextIO = sys.stdout,
    program: Path = PROGRAM,
) -> ProgramRun:
    """Deploy ``config`` in-process; prints each resource, the health report and the stack outputs."""
    # A dry pass under mocks that create nothing: malformed settings and engine-only resources are
    # refused here, before anything real is touched.
    dry = run_program(config, stack=stack, preview=True, program=program)
    refused = engine_only_resources(dry)
    if refused:
        raise InProcessError(
            "this config needs resources only the Pulumi engine can create: "
            + ", ".join(refused)
            + ". Install the Pulumi CLI (https://www.pulumi.com/docs/install/) and run `pulumi up`, "
            "or use an NFS storage backend (storage.backend: nfs) for the in-process run."
        )
    manifest = Manifest.load(manifest_path(root, stack), stack)
    raw_config, _ = stack_config(config)
    mocks = ExecutingMocks(manifest=manifest, raw_config=raw_config, out=out)
    print(f"in-process up: stack {stack}, {len(dry.resources)} resources", file=out, flush=True)
    run = run_program(config, stack=stack, mocks=mocks, program=program)
    # Resources the program no longer declares go, as `pulumi up` would delete them.
    gone = [e for e in manifest.deletion_order() if e.urn not in mocks.seen]
    if gone:
        delete_entries(gone, manifest, mocks.providers, _cloud_from_config(config), out)
    print("outputs:", file=out)
    print(format_outputs(run.outputs, run.secret_outputs), file=out)
    print(NOTICE.format(manifest=manifest.path), file=out, flush=True)
    return run


def down(config: Mapping[str, Any], *, stack: str, root: Path, out: TextIO = sys.stdout) -> int:
    """Delete what ``up`` recorded in the manifest, dependents first. Returns how many were deleted."""
    manifest = Manifest.load(manifest_path(root, stack), stack)
    entries = manifest.deletion_order()
    if not entries:
        print(f"in-process down: nothing recorded for stack {stack} ({manifest.path})", file=out)
        return 0
    protected = [f"{short_type(e.type)} {e.name}" for e in entries if e.protect]
    if protected:
        raise InProcessError(
            "refusing to delete protected resources: "
            + ", ".join(protected)
            + ". Set protect: false on those images (pcd-imagelib-ha:images[i].protect), run up, then down."
        )
    raw_config, _ = stack_config(config)
    print(f"in-process down: stack {stack}, {len(entries)} resources", file=out, flush=True)
    delete_entries(entries, manifest, ProviderCache(raw_config), _cloud_from_config(config), out)
    return len(entries)
