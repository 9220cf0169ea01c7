"""Toy dynamic providers for the engine-order tests: every call journaled, a JSON file as the "cloud".

Defined in an importable module, so dill pickles the provider by reference, as it does the project's
own providers. ``flavor`` is pickled with each instance: a resource made with flavor ``v1`` and deleted
after the program moved to ``v2`` shows which blob ran the delete.

The journal (one JSON object per line) and the world (``{"next": n, "resources": {id: outputs}}``) are
files named by the stack config keys ``journal`` and ``world``, read in ``configure`` as the real
providers read their credentials.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

INPUTS = ("label", "value", "key", "upstream", "dbr", "fail_create", "invalid", "sleep")
# Inputs that change the resource; the others steer the toy (its diff ignores them).
DIFFED = ("value", "key", "upstream")
_LOCK = threading.Lock()


def _shown(value: Any) -> Any:
    return "<unknown>" if isinstance(value, Unknown) else value


class ToyProvider(ResourceProvider):
    """A provider whose resources live in a JSON file; ``key`` forces a replacement."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor

    def configure(self, req: ConfigureRequest) -> None:
        self.journal = Path(req.config.require("journal"))
        self.world = Path(req.config.require("world"))

    def _note(self, call: str, label: Any, **details: Any) -> None:
        entry = {"call": call, "label": _shown(label), "flavor": self.flavor,
                 **{k: _shown(v) for k, v in details.items()}}
        with _LOCK, self.journal.open("a") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")

    def _world(self) -> dict[str, Any]:
        if not self.world.exists():
            return {"next": 1, "resources": {}}
        loaded: dict[str, Any] = json.loads(self.world.read_text())
        return loaded

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        self._note("check", news.get("label"), upstream=news.get("upstream"))
        inputs = {k: news.get(k) for k in INPUTS}
        failures = []
        if news.get("invalid"):
            failures.append(CheckFailure("value", str(news["invalid"])))
        return CheckResult(inputs, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in DIFFED if isinstance(news.get(k), Unknown) or olds.get(k) != news.get(k)]
        self._note("diff", news.get("label"), id=id_, changed=changed)
        replaces = [k for k in changed if k == "key"]
        return DiffResult(changes=bool(changed), replaces=replaces,
                          stables=[k for k in DIFFED if k not in changed],
                          delete_before_replace=bool(news.get("dbr")))

    def _outputs(self, props: dict[str, Any]) -> dict[str, Any]:
        outs = {k: props.get(k) for k in INPUTS}
        outs["out"] = f"{props.get('label')}:{props.get('value')}:{props.get('key')}"
        return outs

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._note("create", props.get("label"), key=props.get("key"), value=props.get("value"))
        time.sleep(float(props.get("sleep") or 0))
        if props.get("fail_create"):
            raise RuntimeError(f"toy {props.get('label')} refuses to be created")
        outs = self._outputs(props)
        with _LOCK:
            world = self._world()
            id_ = f"{props.get('label')}#{world['next']}"
            world["next"] += 1
            world["resources"][id_] = outs
            self.world.write_text(json.dumps(world))
        return CreateResult(id_, outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._note("update", news.get("label"), id=id_, value=news.get("value"), old_value=olds.get("value"))
        outs = self._outputs(news)
        with _LOCK:
            world = self._world()
            world["resources"][id_] = outs
            self.world.write_text(json.dumps(world))
        return UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._note("delete", props.get("label"), id=id_, key=props.get("key"), value=props.get("value"))
        with _LOCK:
            world = self._world()
            world["resources"].pop(id_, None)
            self.world.write_text(json.dumps(world))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        self._note("read", props.get("label"), id=id_)
        with _LOCK:
            live = self._world()["resources"].get(id_)
        if live is None:
            return ReadResult("", {})
        return ReadResult(id_, dict(live))


class Toy(Resource, module="toy", name="Toy"):
    """A toy resource; ``out`` is computed by its provider (unknown at preview until it exists)."""

    out: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None, flavor: str = "v1"
    ) -> None:
        super().__init__(ToyProvider(flavor), name, {**props, "label": name, "out": None}, opts)
