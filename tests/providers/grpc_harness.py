"""Serve a dynamic provider exactly as the Pulumi engine does, and drive it over gRPC.

``python -u -m pulumi.dynamic`` (run from the repository root, like the engine runs it from the
project directory) prints its port on the first stdout line and needs no handshake. Every call carries
the pickled provider in ``__provider``: the server unpickles it, which imports the provider's module
by name in this separate process. That is the point of the contract test: a provider that does not
pickle, or whose module cannot be imported (or has import-time side effects), fails here and not
first in front of an operator.

The providers read their cloud access from the stack config the engine sends to ``Configure``
(``{"pcd-imagelib-ha:cloud": "<JSON>"}``: namespaced keys, every value a string). Every number in a
property struct crosses as a protobuf double, as under the engine: an integer input arrives as ``2.0``.

Usage::

    with ProviderServer(MyProvider()) as server:
        server.configure({"pcd-imagelib-ha:cloud": json.dumps({"authUrl": ..., "region": ...})})
        checked = server.check(urn, {}, {"hosts": [...], ...})
        created = server.create(urn, checked.inputs)
        server.delete(created.id, urn, created.outputs)
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER_KEY = "__provider"
# The engine's wire sentinel for "unknown at preview": pass it as a property value to simulate one.
UNKNOWN = rpc.UNKNOWN


def dynamic_urn(type_token: str, name: str, *, stack: str = "test", project: str = "pcd-imagelib-ha") -> str:
    """A URN of the shape the engine builds for a top-level resource of ``type_token``."""
    return f"urn:pulumi:{stack}::{project}::{type_token}::{name}"


class ProviderCallError(RuntimeError):
    """A gRPC call the provider answered with an error; ``details`` holds the server's traceback."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.method = method
        self.code = code
        self.details = details
        super().__init__(f"{method} failed ({code.name}): {details}")


@dataclass
class CheckOutcome:
    """What ``Check`` answered: the checked inputs (``__provider`` removed) and the failures."""

    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass
class DiffOutcome:
    """What ``Diff`` answered."""

    changes: str  # "DIFF_NONE" | "DIFF_SOME" | "DIFF_UNKNOWN"
    replaces: list[str]
    delete_before_replace: bool


@dataclass
class ResourceState:
    """An id and its output properties (``__provider`` removed), as Create/Read/Update answer them."""

    id: str
    outputs: dict[str, Any]
    inputs: dict[str, Any] | None = field(default=None)


def _to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return struct


def _from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    props = rpc.deserialize_properties(struct, True)
    plain = {k: rpc.unwrap_rpc_secret(v) for k, v in dict(props).items()}
    plain.pop(PROVIDER_KEY, None)
    return plain


class ProviderServer:
    """A ``python -m pulumi.dynamic`` subprocess serving ``provider``, with typed call helpers.

    ``provider`` is pickled once, as the SDK does when a resource is registered; each helper adds the
    blob as ``__provider`` to the property structs it sends.
    """

    def __init__(
        self,
        provider: ResourceProvider,
        *,
        python: str = sys.executable,
        cwd: Path = REPO_ROOT,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        call_timeout: float = 600.0,
    ) -> None:
        self.blob = serialize_provider(provider)
        self._python = python
        self._cwd = cwd
        self._env = dict(os.environ if env is None else env)
        self._start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ProviderServer:
        self._proc = subprocess.Popen(
            [self._python, "-u", "-m", "pulumi.dynamic"],
            cwd=self._cwd,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._proc.poll() is not None:
                err = self._stop_and_collect_stderr()
                raise RuntimeError(f"pulumi.dynamic did not print its port: {err}")
            ready, _, _ = select.select([self._proc.stdout], [], [], remaining)
            if ready:
                chunk = self._proc.stdout.read1(64)  # type: ignore[attr-defined]
                if not chunk:
                    continue
                line += chunk
        self.port = int(line.strip().splitlines()[0])
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self._channel).result(timeout=self._start_timeout)
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        return self

    def stop(self) -> str:
        """Stop the server (by its own PID) and return what it wrote to stderr."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        return self._stop_and_collect_stderr()

    def _stop_and_collect_stderr(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return err

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- calls ---------------------------------------------------------------------------------
    def _props(self, props: Mapping[str, Any]) -> struct_pb2.Struct:
        return _to_struct({**props, PROVIDER_KEY: self.blob})

    def _call(self, method: str, request: Any) -> Any:
        assert self._stub is not None, "start() the server first"
        try:
            return getattr(self._stub, method)(request, timeout=self.call_timeout)
        except grpc.RpcError as exc:
            raise ProviderCallError(method, exc.code(), exc.details() or "") from None

    def configure(self, variables: Mapping[str, str] | None = None) -> None:
        """Send the stack config as the engine does (``args`` = the config, no secrets accepted).

        ``variables`` maps namespaced keys to strings (objects as JSON), e.g.
        ``{"pcd-imagelib-ha:cloud": json.dumps({...camelCase keys...})}``.
        """
        self._call(
            "Configure",
            provider_pb2.ConfigureRequest(
                variables=dict(variables or {}),
                args=_to_struct(dict(variables or {})),
                acceptSecrets=False,
            ),
        )

    def check(self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> CheckOutcome:
        # For a resource not created yet the engine sends no old inputs at all (no __provider either):
        # a provider tells a create from an update by empty olds.
        old_props = self._props(olds) if olds else struct_pb2.Struct()
        resp = self._call(
            "Check",
            provider_pb2.CheckRequest(urn=urn, olds=old_props, news=self._props(news)),
        )
        return CheckOutcome(
            inputs=_from_struct(resp.inputs),
            failures=[(f.property, f.reason) for f in resp.failures],
        )

    def diff(self, id_: str, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffOutcome:
        resp = self._call(
            "Diff",
            provider_pb2.DiffRequest(id=id_, urn=urn, olds=self._props(olds), news=self._props(news)),
        )
        return DiffOutcome(
            changes=provider_pb2.DiffResponse.DiffChanges.Name(resp.changes),
            replaces=list(resp.replaces),
            delete_before_replace=resp.deleteBeforeReplace,
        )

    def create(self, urn: str, props: Mapping[str, Any]) -> ResourceState:
        resp = self._call("Create", provider_pb2.CreateRequest(urn=urn, properties=self._props(props)))
        return ResourceState(id=resp.id, outputs=_from_struct(resp.properties))

    def read(
        self, id_: str, urn: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
    ) -> ResourceState:
        request = provider_pb2.ReadRequest(id=id_, urn=urn, properties=self._props(props))
        if inputs is not None:
            request.inputs.CopyFrom(self._props(inputs))
        resp = self._call("Read", request)
        read_inputs = _from_struct(resp.inputs) if resp.HasField("inputs") else None
        return ResourceState(id=resp.id, outputs=_from_struct(resp.properties), inputs=read_inputs)

    def update(self, id_: str, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> ResourceState:
        resp = self._call(
            "Update",
            provider_pb2.UpdateRequest(id=id_, urn=urn, olds=self._props(olds), news=self._props(news)),
        )
        return ResourceState(id=id_, outputs=_from_struct(resp.properties))

    def delete(self, id_: str, urn: str, props: Mapping[str, Any]) -> None:
        self._call("Delete", provider_pb2.DeleteRequest(id=id_, urn=urn, properties=self._props(props)))


@contextmanager
def serve(
    provider: ResourceProvider, *, config: Mapping[str, str] | None = None, **kwargs: Any
) -> Iterator[ProviderServer]:
    """Start a provider server, configure it with the stack config ``config`` (empty when None), stop it
    at the end."""
    server = ProviderServer(provider, **kwargs).start()
    try:
        server.configure(config)
        yield server
    finally:
        server.stop()
