"""Run ``__main__.py`` in this process under Pulumi mocks and record every resource it registers.

The SDK's ``MockMonitor`` keeps only each resource's URN, id and state. Tests and policies need the
graph itself (parents, dependencies, providers, which inputs were secret), so ``RecordingMonitor``
keeps every registration request. ``run_program`` also resets the SDK's global runtime state first,
so one process (a pytest session, an operator's ``make up``) can run the program many times with
different configs.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from imagelib_ha.settings import PROJECT

PROGRAM = Path(__file__).resolve().parents[2] / "__main__.py"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass
class RecordedResource:
    """One resource registration as the engine would have received it.

    ``inputs`` are plain (secrets unwrapped); ``secret_inputs`` names the top-level input keys that held
    a secret anywhere inside them. ``dependencies`` are the URNs the resource waits for.
    """

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    secret_inputs: frozenset[str]
    parent: str
    dependencies: list[str]
    provider: str
    custom: bool
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    delete_before_replace: bool | None = None
    additional_secret_outputs: list[str] = field(default_factory=list)
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProgramRun:
    """What one run of the program registered, and the stack outputs it exported (secrets unwrapped)."""

    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]

    def by_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}


def unwrap_secrets(value: Any) -> tuple[Any, bool]:
    """``value`` with every RPC secret wrapper removed, and whether there was one."""
    if rpc.is_rpc_secret(value):
        inner, _ = unwrap_secrets(rpc.unwrap_rpc_secret(value))
        return inner, True
    if isinstance(value, dict):
        found = False
        plain = {}
        for key, item in value.items():
            plain[key], secret = unwrap_secrets(item)
            found = found or secret
        return plain, found
    if isinstance(value, list):
        items = [unwrap_secrets(item) for item in value]
        return [i for i, _ in items], any(s for _, s in items)
    return value, False


@dataclass
class Registration:
    """The registration being served on this thread: what a mock may want beyond ``MockResourceArgs``."""

    urn: str
    parent: str
    dependencies: list[str]
    protect: bool
    # The deleteBeforeReplace resource option; None when the program left it unset (the provider decides).
    delete_before_replace: bool | None = None


_CURRENT = threading.local()


def current_registration() -> Registration | None:
    """The registration whose ``new_resource`` call is running on this thread, if any."""
    return getattr(_CURRENT, "registration", None)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each registration's graph facts (parent, dependencies, ...)."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_secret_outputs: frozenset[str] = frozenset()
        self._stack_urns: set[str] = set()
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            self._stack_urns.add(urn)
            return super().RegisterResource(request)
        raw = rpc.deserialize_properties(request.object, keep_unknowns=True)
        inputs: dict[str, Any] = {}
        secret_keys = set()
        for key, value in raw.items():
            inputs[key], secret = unwrap_secrets(value)
            if secret:
                secret_keys.add(key)
        record = RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            inputs=inputs,
            secret_inputs=frozenset(secret_keys),
            parent=request.parent,
            dependencies=list(request.dependencies),
            provider=request.provider,
            custom=bool(request.custom),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
            protect=bool(request.protect),
            delete_before_replace=(
                bool(request.deleteBeforeReplace) if request.deleteBeforeReplaceDefined else None
            ),
            additional_secret_outputs=list(request.additionalSecretOutputs),
        )
        _CURRENT.registration = Registration(
            urn, request.parent, record.dependencies, record.protect, record.delete_before_replace
        )
        try:
            response = super().RegisterResource(request)
        finally:
            _CURRENT.registration = None
        record.id = response.id or None
        record.outputs, _ = unwrap_secrets(rpc.deserialize_properties(response.object, keep_unknowns=True))
        with self._lock:
            self.recorded.append(record)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn in self._stack_urns:
            raw = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
            plain: dict[str, Any] = {}
            secret = set()
            for key, value in raw.items():
                plain[key], was_secret = unwrap_secrets(value)
                if was_secret:
                    secret.add(key)
            if plain or not self.stack_outputs:
                self.stack_outputs = plain
                self.stack_secret_outputs = frozenset(secret)
        return super().RegisterResourceOutputs(request)


class EchoMocks(pulumi_mocks.Mocks):
    """Mocks that create nothing: each resource's outputs are its inputs, its id derived from its name."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


def stack_config(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Config as Pulumi delivers it: namespaced keys, string values (objects and arrays as JSON).

    Keys without a namespace get ``pcd-imagelib-ha:``. A key is secret when its value holds a password
    or credential secret, as ``pulumi config set --secret --path cloud.password`` would make it.
    """
    flat: dict[str, str] = {}
    secret: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = json.dumps(value)
        flat[full] = text
        if isinstance(value, dict) and ({"password", "applicationCredentialSecret"} & set(value)):
            secret.append(full)
    return flat, secret


@contextmanager
def _fresh_runtime(
    mocks: pulumi_mocks.Mocks, monitor: RecordingMonitor, config: Mapping[str, Any], stack: str, preview: bool
) -> Iterator[None]:
    # The SDK keeps its runtime in module globals and context variables: reset the root stack, the
    # pending RPCs and outputs, and the config before each run, so runs do not leak into each other.
    runtime_settings.ROOT.set(None)
    flat, secret_keys = stack_config(config)
    pulumi.runtime.set_all_config(flat, secret_keys)
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    # set_mocks gives a fresh RPC manager but keeps the output task set: a run that failed half-way
    # would leave its tasks for the next run to await.
    runtime_settings.SETTINGS.outputs.clear()
    # set_mocks registers (and finishes) a root stack at once; run_in_stack makes a fresh one whose
    # outputs are the program's exports.
    runtime_settings.ROOT.set(None)
    try:
        yield
    finally:
        runtime_settings.ROOT.set(None)
        pulumi.runtime.set_all_config({}, [])


def run_program(
    config: Mapping[str, Any],
    *,
    stack: str = "lab",
    preview: bool = False,
    mocks: pulumi_mocks.Mocks | None = None,
    program: Path = PROGRAM,
) -> ProgramRun:
    """Run ``program`` under ``mocks`` (default: ``EchoMocks``) and return what it registered.

    Raises what the program raises (``SettingsError`` for malformed config, a ``RunError`` from a
    mock that refuses a resource).
    """
    the_mocks = mocks if mocks is not None else EchoMocks()
    monitor = RecordingMonitor(the_mocks)
    with _fresh_runtime(the_mocks, monitor, config, stack, preview):

        def execute() -> None:
            runpy.run_path(str(program))

        try:
            _sync_await(run_in_stack(execute))
        except BaseException as failure:
            _already_reported(failure)
            raise
    return ProgramRun(monitor.recorded, monitor.stack_outputs, monitor.stack_secret_outputs)


_REPORTED: list[BaseException] = []


def _already_reported(failure: BaseException) -> None:
    """Keep asyncio quiet about ``failure``: this run raises it to the caller.

    When a registration fails, the SDK resolves every output of that resource with the same exception;
    futures nobody awaited then log "Future exception was never retrieved" with a traceback when they
    are collected, long after the caller has handled the error.
    """
    _REPORTED[:] = [*_REPORTED[-15:], failure]
    loop = _ensure_event_loop()
    if getattr(loop, "_imagelib_quiet", False):
        return
    previous = loop.get_exception_handler()

    def handler(the_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if any(context.get("exception") is seen for seen in _REPORTED):
            return
        if previous is not None:
            previous(the_loop, context)
        else:
            the_loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._imagelib_quiet = True


def run_program_under_mocks(
    config: dict[str, Any], *, stack: str = "lab", preview: bool = False
) -> list[RecordedResource]:
    """Run ``__main__.py`` with ``config`` under mocks that create nothing; return the registrations."""
    return run_program(config, stack=stack, preview=preview).resources
