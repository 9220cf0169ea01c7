"""Shared pieces of the dynamic providers: inputs with defaults, diffing that ignores ``__provider``,
preview unknowns, Keystone's 401 as a clear error, and the resource base class that seeds output-only
keys.

Kept free of import-time side effects: the provider process imports this module by name.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from keystoneauth1 import exceptions as ks_exc
from pulumi import Input, ResourceOptions
from pulumi.dynamic import DiffResult, Resource, ResourceProvider
from pulumi.output import Unknown

from imagelib_ha.client.errors import PcdError

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

    ``provider_version`` defaults to this code's :data:`PROVIDER_VERSION`; every key of ``defaults``
    must be among ``keys``.
    """
    inputs = fill_defaults({key: props.get(key) for key in keys}, defaults)
    if inputs.get("provider_version") is None:
        inputs["provider_version"] = PROVIDER_VERSION
    return inputs


def seed_props(props: Mapping[str, Any], output_keys: Iterable[str]) -> dict[str, Any]:
    """A resource's props as registered: ``provider_version`` added when absent, output keys as None.

    An output-only key must be among the registered props for the resource object to get it as an
    attribute (``role.host_id``, ``health.report``, ...).
    """
    full: dict[str, Any] = dict(props)
    full.setdefault("provider_version", PROVIDER_VERSION)
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


def credentials_rejected(cloud: Mapping[str, Any]) -> PcdError:
    """The error for a 401 from Keystone: names the auth URL and config keys, never the secret."""
    return PcdError(
        f"Keystone at {cloud.get('auth_url')} rejected the credentials in pcd-imagelib-ha:cloud "
        "(user, project or application credential): check them, and that the user has the 'admin' "
        "role in the project."
    )


@contextmanager
def rejected_credentials_explained(cloud: Mapping[str, Any]) -> Iterator[None]:
    """Inside the block, Keystone's 401 becomes :func:`credentials_rejected`'s error.

    The 401 itself is not chained (``from None``): the operator needs the config keys to fix, not
    keystoneauth's traceback.
    """
    try:
        yield
    except ks_exc.Unauthorized:
        raise credentials_rejected(cloud) from None
