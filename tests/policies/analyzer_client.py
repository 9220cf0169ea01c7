"""Serve the policy pack the way the Pulumi CLI does and talk to it over the Analyzer gRPC API.

The CLI starts a Python pack with ``python -u -m pulumi.policy <engine address> <pack dir>``: that
module runs the pack's ``__main__.py`` (with the pack directory first on ``sys.path``), whose
``PolicyPack(...)`` prints the port it listens on as the first stdout line and serves until killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
CONFIG_FILE = PACK_DIR / "config.json"

# How the engine marks a secret and an unknown value inside a property struct.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_VALUE = rpc.UNKNOWN

LEVELS = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "disabled": analyzer_pb2.DISABLED,
    "remediate": analyzer_pb2.REMEDIATE,
}


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    line: list[bytes] = []
    reader = threading.Thread(
        target=lambda: line.append(process.stdout.readline() if process.stdout else b"")
    )
    reader.start()
    reader.join(timeout)
    if not line or not line[0].strip():
        stderr = b""
        if process.poll() is not None and process.stderr is not None:
            stderr = process.stderr.read()
        raise RuntimeError(
            f"policy pack printed no port within {timeout}s: {stderr.decode(errors='replace')}"
        )
    return int(line[0].strip())


@contextmanager
def served_pack(timeout: float = 60.0) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack served by ``python -u -m pulumi.policy``; stopped (by its PID) on exit."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PACK_DIR,
    )
    channel = None
    try:
        port = _read_port(process, timeout)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=timeout)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        if channel is not None:
            channel.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def info(stub: analyzer_pb2_grpc.AnalyzerStub) -> analyzer_pb2.AnalyzerInfo:
    return stub.GetAnalyzerInfo(empty_pb2.Empty())


def configure(stub: analyzer_pb2_grpc.AnalyzerStub, config: Mapping[str, Mapping[str, Any]]) -> None:
    """Send a policy config file's content as the CLI does (enforcement level apart from properties)."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, entry in config.items():
        properties = struct_pb2.Struct()
        properties.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
        request.policyConfig[name].CopyFrom(
            analyzer_pb2.PolicyConfig(
                enforcementLevel=LEVELS[entry.get("enforcementLevel", "mandatory")], properties=properties
            )
        )
    stub.Configure(request)


def sample_config() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(CONFIG_FILE.read_text())
    return loaded


def engine_value(value: Any) -> Any:
    """A plain value as the engine puts it in a property struct (unknowns as the unknown sentinel)."""
    if isinstance(value, Unknown):
        return UNKNOWN_VALUE
    if isinstance(value, dict):
        return {k: engine_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [engine_value(v) for v in value]
    return value


def to_struct(
    props: Mapping[str, Any], secret_keys: frozenset[str] | set[str] = frozenset()
) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    encoded: dict[str, Any] = {}
    for key, value in props.items():
        plain = engine_value(value)
        encoded[key] = {SECRET_SIG_KEY: SECRET_SIG, "value": plain} if key in secret_keys else plain
    struct.update(encoded)
    return struct


def provider_message(
    resource_type: str,
    name: str,
    urn: str,
    props: Mapping[str, Any],
    secret_keys: frozenset[str] = frozenset(),
) -> analyzer_pb2.AnalyzerProviderResource:
    return analyzer_pb2.AnalyzerProviderResource(
        type=resource_type, name=name, urn=urn, properties=to_struct(props, secret_keys)
    )


def analyze(
    stub: analyzer_pb2_grpc.AnalyzerStub,
    *,
    resource_type: str,
    name: str,
    urn: str,
    props: Mapping[str, Any],
    secret_keys: frozenset[str] = frozenset(),
    parent: str = "",
    provider: analyzer_pb2.AnalyzerProviderResource | None = None,
) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        name=name,
        urn=urn,
        properties=to_struct(props, secret_keys),
        options=analyzer_pb2.AnalyzerResourceOptions(parent=parent),
    )
    if provider is not None:
        request.provider.CopyFrom(provider)
    return list(stub.Analyze(request).diagnostics)


def stack_resource(
    *,
    resource_type: str,
    name: str,
    urn: str,
    props: Mapping[str, Any],
    secret_keys: frozenset[str] = frozenset(),
    parent: str = "",
    dependencies: list[str] | None = None,
    provider: analyzer_pb2.AnalyzerProviderResource | None = None,
) -> analyzer_pb2.AnalyzerResource:
    resource = analyzer_pb2.AnalyzerResource(
        type=resource_type,
        name=name,
        urn=urn,
        properties=to_struct(props, secret_keys),
        options=analyzer_pb2.AnalyzerResourceOptions(parent=parent),
        parent=parent,
        dependencies=dependencies or [],
    )
    if provider is not None:
        resource.provider.CopyFrom(provider)
    return resource


def analyze_stack(
    stub: analyzer_pb2_grpc.AnalyzerStub, resources: list[analyzer_pb2.AnalyzerResource]
) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    return list(stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources)).diagnostics)
