"""Text for the terminal: the planned steps with their changed inputs, the health table, stack outputs.

Secrets are never printed: an input that was secret shows as ``[secret]``. A value that is unknown until
another resource changes shows as ``<computed>``, where ``pulumi preview`` shows ``output<...>``.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from imagelib_ha.inprocess.steps import Step, summary
from imagelib_ha.providers.common import contains_unknown
from imagelib_ha.providers.settings import render_glance_store_config

SETTINGS_SUFFIX = ":ImageLibrarySettings"
MARKS = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}
MAX_VALUE = 100


def show_value(value: Any, secret: bool) -> str:
    """One value for a diff line: JSON, shortened; ``[secret]`` and ``<computed>`` as they apply."""
    if secret:
        return "[secret]"
    if contains_unknown(value):
        return "<computed>"
    text = json.dumps(_integral(value), sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def store_config_diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """The ``glance-api.conf`` store lines the settings change, as a unified diff (empty if none or unknown).

    The stored side is the recorded ``glance_store_config`` output; the planned side is rendered from
    the checked inputs with the provider's own renderer, as ``create``/``update`` will render it.
    """
    keys = ("backend", "mount_path", "volume_type")
    if any(contains_unknown(news.get(k)) for k in keys) or news.get("backend") is None:
        return []
    planned = render_glance_store_config(
        str(news["backend"]), mount_path=news.get("mount_path"), volume_type=news.get("volume_type")
    )
    stored = str(olds.get("glance_store_config") or "")
    if planned == stored:
        return []
    return list(
        difflib.unified_diff(
            stored.splitlines(), planned.splitlines(), "glance_store_config (stored)",
            "glance_store_config (planned)", lineterm="",
        )
    )


def step_lines(
    step: Step, olds: Mapping[str, Any], news: Mapping[str, Any], secret_keys: Iterable[str], note: str = ""
) -> list[str]:
    """One planned step: its mark, op and resource, then each changed input as ``old => new``."""
    head = f"  {MARKS[step.op]:<2} {step.op:<8} {step.label}{note}"
    lines = [head]
    secret = set(secret_keys)
    for key in step.changed:
        if step.op == "create":
            break
        lines.append(f"        {key}: {show_value(olds.get(key), key in secret)} => "
                     f"{show_value(news.get(key), key in secret)}")
    if step.type.endswith(SETTINGS_SUFFIX) and step.op in ("create", "update", "replace"):
        lines += ["        " + line for line in store_config_diff(olds, news)]
    return lines


def plan_text(
    pending: list[Step],
    changes: list[tuple[Step, Mapping[str, Any], Mapping[str, Any], frozenset[str]]],
    deletes: list[Step],
) -> str:
    """The whole plan: pending deletes, each registration that changes something, the final deletes."""
    lines = []
    for step in pending:
        lines += step_lines(step, {}, {}, (), "  (pending delete left by an earlier run: runs first)")
    for step, olds, news, secret_keys in changes:
        if step.op != "same":
            lines += step_lines(step, olds, news, secret_keys)
    for step in deletes:
        lines += step_lines(step, {}, {}, (), "  (no longer declared)")
    steps = pending + [c[0] for c in changes] + deletes
    lines.append(f"plan: {summary(steps)}")
    return "\n".join(lines)


def health_table(report: list[Mapping[str, Any]]) -> str:
    """The health report as an aligned text table."""
    columns: tuple[str, ...] = ("hostname", "host_id", "endpoint", "status", "reason")
    if any("host_checks" in entry for entry in report):
        columns = (*columns[:4], "host_checks", "reason")  # the state the host checks over SSH left
    rows = [[str(entry.get(c) if entry.get(c) is not None else "") for c in columns] for entry in report]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join("    " + line.rstrip() for line in lines)


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
