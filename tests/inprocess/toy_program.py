"""A tiny ``__main__.py`` for the engine-order tests: the toy resources the stack config lists.

Each entry of ``resources``: ``name``, and optionally ``value``, ``key`` (a change replaces),
``upstream`` (a name: this resource's ``upstream`` input is that one's computed ``out``), ``depends_on``
(names), ``protect``, ``delete_before_replace`` (the resource option), ``dbr`` (the provider asks for
delete-before-replace), ``fail_create``, ``sleep`` (seconds a create takes), ``invalid`` (a check
failure reason), ``flavor`` (provider code).
"""

import sys
from pathlib import Path

import pulumi

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from toy_providers import Toy  # noqa: E402 - importable from this directory, as dill needs it

made: dict[str, Toy] = {}
for spec in pulumi.Config().require_object("resources"):
    props = {
        "value": spec.get("value", "v"),
        "key": spec.get("key", "k1"),
        "dbr": spec.get("dbr", False),
        "fail_create": spec.get("fail_create", False),
        "invalid": spec.get("invalid"),
        "sleep": spec.get("sleep", 0),
        "upstream": made[spec["upstream"]].out if spec.get("upstream") else None,
    }
    opts = pulumi.ResourceOptions(
        protect=spec.get("protect", False),
        delete_before_replace=spec.get("delete_before_replace"),
        depends_on=[made[d] for d in spec.get("depends_on", [])],
    )
    made[spec["name"]] = Toy(spec["name"], props, opts, flavor=spec.get("flavor", "v1"))

pulumi.export("outs", {name: toy.out for name, toy in made.items()})
