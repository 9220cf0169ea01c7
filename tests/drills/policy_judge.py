"""Judge the program's recorded resources with every rule of the policy pack, as the analyzer would.

The pack is self-contained (the Pulumi CLI runs it from its own directory), so it is imported with
``policies/`` on ``sys.path``. Resource rules see each resource's inputs; stack rules see the graph.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from imagelib_ha.inprocess.recording import RecordedResource

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
if str(PACK_DIR) not in sys.path:
    sys.path.insert(0, str(PACK_DIR))

from imagelib_policies import POLICIES  # noqa: E402 - needs the pack directory on sys.path


def _options(parent: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def judge(records: list[RecordedResource]) -> dict[str, list[str]]:
    """Violation messages per policy name, for every rule of the pack (enforcement level aside)."""
    by_urn: dict[str, PolicyResource] = {}
    for record in records:
        by_urn[record.urn] = PolicyResource(
            record.type, unknown_checking_proxy(copy.deepcopy(record.inputs)), record.urn, record.name,
            _options(record.parent or None), None, None, [], {},
        )
    for record in records:
        resource = by_urn[record.urn]
        resource.parent = by_urn.get(record.parent) if record.parent else None
        resource.dependencies = [by_urn[d] for d in record.dependencies if d in by_urn]
    found: dict[str, list[str]] = {}

    def reporter(name: str) -> Any:
        def report(message: str, urn: str | None = None) -> None:
            found.setdefault(name, []).append(message)
        return report

    for policy in POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            for record in records:
                args = ResourceValidationArgs(record.type, by_urn[record.urn].props, record.urn, record.name,
                                              _options(record.parent or None), None, None)
                policy.validate(args, reporter(policy.name))
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(list(by_urn.values()), None), reporter(policy.name))
    return found
