"""Shared pieces of the dynamic providers: inputs with defaults, diffing that ignores ``__provider``,
preview unknowns, numbers as the engine delivers them, and the resource base class that seeds
output-only keys.

Kept free of import-time side effects: the provider process imports this module by name.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pulumi import Input, ResourceOptions
from pulumi.dynamic import DiffResult, Resource, ResourceProvider
from pulumi.output import Unknown

from imagelib_ha.providers.access import LEGACY_KEYS

# No provider version input: provider classes live in importable modules, so dill pickles them by
# reference and refresh and delete always run the checked-out code. What must not change is where the
# classes live (tests/providers/test_provider_blobs.py guards it).

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


def legacy_keys_in(stored: Mapping[str, Any]) -> list[str]:
    """Keys of an earlier release found in stored state (credentials among them): each is a change."""
    return [k for k in LEGACY_KEYS if k in stored]


def diff_inputs(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    replace_on: Iterable[str] = (),
    delete_before_replace: bool = False,
    stored: Mapping[str, Any] | None = None,
) -> DiffResult:
    """A precise diff: which inputs changed, and which of those force a replacement.

    ``olds`` are the stored outputs (which carry every input, since each provider returns its inputs in
    its outputs), ``news`` the checked new inputs. ``stored`` is the whole stored state: keys an
    earlier release kept there (``cloud``) make an in-place update that drops them, never a replacement.
    """
    changes = changed_keys(olds, news) + legacy_keys_in(stored or {})
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


def host_expectations(hosts: Any) -> Any:
    """What a configured host list says about the library, however its hosts are spelt or ordered.

    The sorted ``(region, mount_path)`` of the entries: the settings and the health check judge those
    (and how many there are); which hosts they are is compared by resmgr id where it matters (the
    roles, the health check's ``role_host_ids``). So re-spelling a host (hostname <-> id) or reordering
    the list is no change to them.
    """
    if not isinstance(hosts, list) or contains_unknown(hosts):
        return hosts
    return sorted(
        json.dumps([h.get("region"), h.get("mount_path")] if isinstance(h, Mapping) else h) for h in hosts
    )


def fill_defaults(values: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each of its keys that is None set to its default (a copy: defaults stay pristine).

    Only keys ``values`` already holds are filled, so a caller can leave some inputs out on purpose.
    """
    for key, default in defaults.items():
        if key in values and values[key] is None:
            values[key] = copy.copy(default)
    return values


def inputs_with_defaults(
    props: Mapping[str, Any], keys: Iterable[str], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The input ``keys`` of ``props`` (inputs or stored outputs) with ``defaults`` filled in.

    Every key of ``defaults`` must be among ``keys``; other keys of ``props`` (an earlier release's
    ``cloud``) are left out.
    """
    return fill_defaults({key: props.get(key) for key in keys}, defaults)


def whole_number(value: Any) -> int | None:
    """``value`` as an int when it is a whole number, else None.

    Numbers cross the provider boundary as protobuf doubles: a configured ``2`` arrives as ``2.0``,
    under the engine and the in-process runner alike.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def seed_props(props: Mapping[str, Any], output_keys: Iterable[str]) -> dict[str, Any]:
    """A resource's props as registered, output-only keys seeded as None.

    An output-only key must be among the registered props for the resource object to get it as an
    attribute (``roles.members``, ``health.report``, ...).
    """
    full: dict[str, Any] = dict(props)
    for key in output_keys:
        full.setdefault(key, None)
    return full


class SeededResource(Resource):
    """A dynamic resource whose provider is ``provider_class()`` and whose output keys are seeded.

    Subclasses name their type token as usual (``class X(SeededResource, module=..., name=...)``) and
    set ``provider_class`` and ``output_keys``. The provider *instance* is what gets pickled into
    ``__provider``; its class lives in the subclass's module, so dill pickles it by reference.
    """

    provider_class: ClassVar[type[ResourceProvider]]
    output_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        resource_name: str,
        props: Mapping[str, Input[Any]],
        opts: ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.provider_class(), resource_name, seed_props(props, self.output_keys), opts)
