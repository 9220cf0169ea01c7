"""Provider module paths are a contract: blobs recorded from each release must unpickle with this code.

State pickles each provider *by reference* (module and class name, ~100 bytes), so refresh and destroy of
an existing stack import the checked-out module by that name. Moving or renaming a provider class breaks
every stack of an earlier release until an ``up`` rewrites the blob. The blobs in
``data/provider_blobs.json`` were recorded from each release (0.1.0 from commit c1b9a3f).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import dill
import pytest
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _deserialize

from imagelib_ha.providers.role import ImageLibraryRoleProvider

DATA = json.loads((Path(__file__).parent / "data" / "provider_blobs.json").read_text())
REPO = Path(__file__).resolve().parents[2]
RECORDED = [
    (release, name, blob) for release, blobs in DATA["releases"].items() for name, blob in blobs.items()
]


def unpickle(blob: str) -> Any:
    # As python -m pulumi.dynamic does (pulumi 3.272.0, dynamic/__main__.py get_provider).
    return _deserialize(lambda: dill.loads(base64.b64decode(blob)))


@pytest.mark.parametrize(("release", "name", "blob"), RECORDED, ids=[f"{r}:{n}" for r, n, _ in RECORDED])
def test_recorded_blob_unpickles_to_the_named_provider(release: str, name: str, blob: str) -> None:
    provider = unpickle(blob)
    assert isinstance(provider, ResourceProvider)
    assert f"{type(provider).__module__}.{type(provider).__qualname__}" == name


def test_recorded_blobs_unpickle_in_a_fresh_provider_process() -> None:
    # The provider process imports the modules by name from the project directory, with nothing else
    # imported first: an import-order dependency or an import-time side effect shows up only there.
    script = (
        "import base64, json, sys, dill\n"
        "from pulumi.runtime._serialization import _deserialize\n"
        "for blob in json.load(sys.stdin):\n"
        "    p = _deserialize(lambda: dill.loads(base64.b64decode(blob)))\n"
        "    print(type(p).__module__ + '.' + type(p).__qualname__)\n"
    )
    blobs = [blob for _, _, blob in RECORDED]
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(blobs), capture_output=True, text=True,
        cwd=REPO, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [name for _, name, _ in RECORDED]


def test_current_providers_pickle_by_reference_as_recorded() -> None:
    # A provider pickled by value would freeze its code in state; by reference it is a short name.
    for name, recorded in DATA["releases"]["0.2.0"].items():
        provider = unpickle(recorded)
        assert serialize_provider(type(provider)()) == recorded, name


def test_the_01_role_provider_hands_its_host_over_and_removes_nothing() -> None:
    blob = DATA["releases"]["0.1.0"]["imagelib_ha.providers.role.ImageLibraryRoleProvider"]
    provider = unpickle(blob)
    assert isinstance(provider, ImageLibraryRoleProvider)
    # No cloud configured and no HTTP mock: any request would raise. It makes none.
    provider.delete("h1", {"host": "node-1", "hostname": "node-1", "adopted": False})
    assert provider.read("h1", {"host": "node-1"}).outs == {"host": "node-1"}
