"""Shared pieces of the dynamic providers: diffing that ignores ``__provider``, preview unknowns.

Kept free of import-time side effects: the provider process imports this module by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.dynamic import DiffResult
from pulumi.output import Unknown

# Bump whenever provider code changes behaviour. Every dynamic resource takes it as the
# ``provider_version`` input; a change shows as an in-place update, which makes the engine store the
# new pickled provider in state (otherwise delete and refresh keep running the old, pickled code).
PROVIDER_VERSION = "1"

# Inputs that never count as a change: the pickled provider itself (pulumi/pulumi#12401).
IGNORED_INPUTS = frozenset({"__provider"})


def is_unknown(value: Any) -> bool:
    """True for a value computed by another resource and not yet known (preview)."""
    return isinstance(value, Unknown)


def contains_unknown(value: Any) -> bool:
    """True if ``value`` or anything nested in it is unknown at preview."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False


def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """Top-level input keys whose values differ, ignoring ``__provider``; unknown new values count."""
    keys = (set(olds) | set(news)) - IGNORED_INPUTS
    return sorted(k for k in keys if contains_unknown(news.get(k)) or olds.get(k) != news.get(k))


def diff_inputs(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    replace_on: Iterable[str] = (),
    delete_before_replace: bool = False,
) -> DiffResult:
    """A precise diff: which inputs changed, and which of those force a replacement.

    ``olds`` are the stored outputs (which carry every input, since each provider returns its inputs in
    its outputs), ``news`` the checked new inputs.
    """
    changes = changed_keys(olds, news)
    replace_set = set(replace_on)
    replaces = [k for k in changes if k in replace_set]
    all_keys = (set(olds) | set(news)) - IGNORED_INPUTS
    stables = sorted(k for k in all_keys if k not in changes)
    return DiffResult(
        changes=bool(changes),
        replaces=replaces,
        stables=stables,
        delete_before_replace=delete_before_replace,
    )
