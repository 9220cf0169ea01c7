"""The apply pass: each registration becomes a real step through its dynamic provider.

``ExecutingMocks.new_resource`` runs what the engine's step executor would: ``check``, then ``create``
for a new resource, or ``diff`` and then nothing (same), ``update``, or a replacement. A replacement
creates the new resource and records it together with the old one as a pending delete (one manifest
write), and the old one is deleted at the end of the deployment; with ``deleteBeforeReplace`` the old
one is deleted first. A failed step stops the deployment as the engine's does: steps already running
finish and are recorded, no new step starts, and the caller runs no deletes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from pulumi.dynamic import ResourceProvider
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from imagelib_ha.inprocess.display import health_table
from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry
from imagelib_ha.inprocess.planner import (
    MAX_PARALLEL,
    PROVIDER_KEY,
    Decision,
    ProviderCache,
    decide,
    old_props,
)
from imagelib_ha.inprocess.recording import Registration, current_registration, unwrap_secrets
from imagelib_ha.inprocess.standins import standin_blob
from imagelib_ha.inprocess.steps import (
    DYNAMIC_PREFIX,
    PROVIDER_TYPE_PREFIX,
    InProcessError,
    Step,
    resource_label,
)

HEALTH_TYPE = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
PROVIDER_ID = "in-process"
VERBS = {"create": "created", "update": "updated", "replace": "replaced", "same": "unchanged"}


class NotStarted(InProcessError):
    """A step that was not started because an earlier step failed."""


class ExecutingMocks(pulumi_mocks.Mocks):
    """Mocks whose ``new_resource`` runs the resource's step for real through its provider."""

    def __init__(
        self, *, manifest: Manifest, providers: ProviderCache, out: TextIO, steps: list[Step]
    ) -> None:
        self.manifest = manifest
        self.providers = providers
        self.out = out
        self.steps = steps
        self.seen: set[str] = set()
        self.failure: BaseException | None = None
        self._slots = threading.Semaphore(MAX_PARALLEL)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0

    def say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def wait_idle(self) -> None:
        """Return once no step is running (the SDK may give up on a failed run before they finish)."""
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0)

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise InProcessError(f"function {args.token} cannot be called without the Pulumi engine")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if not args.custom:
            return "", dict(args.inputs)
        label = resource_label(args.typ, args.name)
        if args.typ.startswith(PROVIDER_TYPE_PREFIX):
            # The stand-ins read the stack's cloud config themselves: the provider object only
            # needs an id so the resources that name it can register.
            return PROVIDER_ID, dict(args.inputs)
        standin = standin_blob(args.typ)
        if not args.typ.startswith(DYNAMIC_PREFIX) and standin is None:
            raise InProcessError(f"{label} needs the Pulumi engine; it cannot be run in-process")
        registration = current_registration()
        if registration is None:
            raise InProcessError("ExecutingMocks must run under the RecordingMonitor")
        with self._slots:
            with self._lock:
                if self.failure is not None:
                    # The engine starts no step once one has failed.
                    raise NotStarted(f"{label}: not started, an earlier step failed")
                self._running += 1
            try:
                return self._step(args, registration, label)
            except BaseException as exc:
                with self._lock:
                    if self.failure is None:
                        self.failure = exc
                raise
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

    def _step(
        self, args: pulumi_mocks.MockResourceArgs, registration: Registration, label: str
    ) -> tuple[str, dict[Any, Any]]:
        news: dict[str, Any] = {}
        secret_keys: list[str] = []
        for key, value in args.inputs.items():
            news[key], secret = unwrap_secrets(value)
            if secret:
                secret_keys.append(key)
        standin = standin_blob(args.typ)
        if standin is not None:
            news[PROVIDER_KEY] = standin
        blob = news[PROVIDER_KEY]
        provider = self.providers.get(blob)
        old = self.manifest.get(registration.urn)
        started = time.monotonic()
        try:
            decision = decide(provider, old, news, registration)
            if decision.failures:
                reasons = "; ".join(f"{f.property}: {f.reason}" for f in decision.failures)
                raise InProcessError(f"{label}: check refused the inputs: {reasons}")
            if decision.refusal:
                raise InProcessError(decision.refusal)
            resource_id, outs, blob_now = self._apply(
                provider, old, decision, blob, registration, secret_keys, args
            )
        except InProcessError:
            raise
        except Exception as exc:
            # The provider's message names the host and the cause; say which resource it was.
            raise InProcessError(f"{label}: {type(exc).__name__}: {exc}") from exc
        elapsed = time.monotonic() - started
        self.seen.add(registration.urn)
        step = Step(decision.op, registration.urn, args.typ, args.name, decision.changed)
        verb = VERBS[decision.op] + (" (deleted first)" if decision.delete_before_replace else "")
        with self._lock:
            self.steps.append(step)
            print(f"  {verb:<10} {label}  ({elapsed:.1f}s)", file=self.out, flush=True)
        if args.typ == HEALTH_TYPE and decision.op == "same":
            # Created, updated or replaced, the provider has just printed its live table (with
            # latency) to stderr; unchanged, nothing was probed, so the stored report is what there is.
            self.say("    health report (unchanged: as stored at the last validation, not probed now):")
            self.say(health_table(outs.get("report") or []))
        # The engine re-marks an output secret under the key of a secret input: do the same.
        state = {k: (rpc.wrap_rpc_secret(v) if k in secret_keys else v) for k, v in outs.items()}
        state[PROVIDER_KEY] = rpc.wrap_rpc_secret(blob_now)
        return resource_id, state

    def _apply(
        self,
        provider: ResourceProvider,
        old: ManifestEntry | None,
        decision: Decision,
        blob: str,
        registration: Registration,
        secret_keys: list[str],
        args: pulumi_mocks.MockResourceArgs,
    ) -> tuple[str, dict[str, Any], str]:
        def entry(resource_id: str, outs: Mapping[str, Any], provider_blob: str) -> ManifestEntry:
            return ManifestEntry(
                urn=registration.urn,
                type=args.typ,
                name=args.name,
                id=resource_id,
                outputs={k: v for k, v in outs.items() if k != PROVIDER_KEY},
                secret_keys=sorted(set(secret_keys) - {PROVIDER_KEY}),
                dependencies=registration.dependencies,
                provider_blob=provider_blob,
                protect=registration.protect,
            )

        checked = decision.checked
        if old is None or decision.op == "create":
            created = provider.create(checked)
            outs = dict(created.outs or {})
            self.manifest.put(entry(str(created.id), outs, blob))
            return str(created.id), outs, blob
        if decision.op == "same":
            # The engine keeps the old outputs, and with them the blob of the last create or update;
            # only the goal's options (protect, dependencies) are new.
            self.manifest.put(entry(old.id, old.outputs, old.provider_blob))
            return old.id, dict(old.outputs), old.provider_blob
        if decision.op == "update":
            updated = provider.update(old.id, old_props(old), checked)
            outs = dict(updated.outs or {})
            self.manifest.put(entry(old.id, outs, blob))
            return old.id, outs, blob
        if decision.delete_before_replace:
            # The old resource goes first, through the code pickled when it was made, with its old
            # outputs; until the new one exists nothing is recorded under this URN.
            self.providers.get(old.provider_blob).delete(old.id, old_props(old))
            self.manifest.forget(old)
            created = provider.create(checked)
            outs = dict(created.outs or {})
            self.manifest.put(entry(str(created.id), outs, blob))
            return str(created.id), outs, blob
        created = provider.create(checked)
        outs = dict(created.outs or {})
        # Recorded with the old copy as a pending delete in one write: a run that stops before its
        # final deletes leaves the old copy recorded, and the next up deletes it first.
        self.manifest.replace(entry(str(created.id), outs, blob), old)
        return str(created.id), outs, blob

