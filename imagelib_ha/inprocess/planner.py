"""The engine's decisions, shared by ``preview`` and ``up``: which provider, which step, and the refusals.

For each registration the engine runs ``check`` and, for a resource it already holds, ``diff``; the
answer picks the step (create, same, update, replace), and for a replacement its order: create the
new resource first and delete the old one at the end of the deployment, unless ``deleteBeforeReplace``
(the provider's ``DiffResult`` or the resource option, which wins when set) asks for delete first.
The protect rules and their wording are read from pulumi/pulumi (``pkg/resource/deploy/
step_generator.go``: a replacement is refused when ``new.Protect && old.Protect``, so unprotecting and
replacing in one run is allowed; ``step.go``'s ``deleteProtectedError`` for deletes), with the fix
spelled for this project instead of ``pulumi state unprotect``, which has no in-process twin.

The provider is rebuilt the way ``python -m pulumi.dynamic`` does (pulumi 3.272.0,
``pulumi/dynamic/__main__.py``): base64, ``dill.loads`` inside ``pulumi.runtime._serialization.
_deserialize``, then ``configure`` with the whole stack config, once per blob. Private SDK API: the
pulumi version is pinned in pyproject.toml.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dill
from pulumi.dynamic import CheckFailure, Config, ConfigureRequest, DiffResult, ResourceProvider
from pulumi.runtime._serialization import _deserialize

from imagelib_ha.inprocess.manifest import ManifestEntry
from imagelib_ha.inprocess.recording import Registration
from imagelib_ha.inprocess.standins import is_standin_blob, make_standin
from imagelib_ha.inprocess.steps import Op
from imagelib_ha.providers.common import contains_unknown
from imagelib_ha.settings import PROJECT

PROVIDER_KEY = "__provider"
# The provider server runs at most this many calls at once; so do we.
MAX_PARALLEL = 4


@dataclass
class ProviderCache:
    """Unpickled, configured providers, one per serialized blob (as the provider server keeps them).

    A stand-in's "blob" (``standins.standin_blob``) names its type: the stand-in is built, not unpickled.
    """

    raw_config: dict[str, Any]

    def __post_init__(self) -> None:
        self._providers: dict[str, ResourceProvider] = {}
        self._lock = threading.Lock()

    def get(self, blob: str) -> ResourceProvider:
        with self._lock:
            provider = self._providers.get(blob)
            if provider is None:

                def load() -> ResourceProvider:
                    return dill.loads(base64.b64decode(blob))  # noqa: S301 (our own pickled provider)

                provider = make_standin(blob) if is_standin_blob(blob) else _deserialize(load)
                provider.configure(ConfigureRequest(Config(raw_config=self.raw_config, project_name=PROJECT)))
                self._providers[blob] = provider
            return provider


def old_props(entry: ManifestEntry) -> dict[str, Any]:
    """The props the engine passes for an old resource: its stored outputs and the blob it was made with.

    As the engine's state does, the outputs carry the ``__provider`` of the last create or update, so
    ``delete`` (and ``read``) run the code pickled then, and see the old values, never fresh ones.
    """
    props = dict(entry.outputs)
    props[PROVIDER_KEY] = entry.provider_blob
    return props


def changed_inputs(olds: Mapping[str, Any], news: Mapping[str, Any], diff: DiffResult) -> tuple[str, ...]:
    """The checked input keys whose values differ from the stored ones (unknown counts as different).

    The dynamic ``DiffResult`` names only replacing and stable keys, so the rest is compared here, as the
    engine does for a provider without a detailed diff; keys the provider calls stable are left out.
    """
    stables = set(diff.stables or ())
    keys = {
        k
        for k in news
        if k != PROVIDER_KEY and k not in stables and (contains_unknown(news[k]) or olds.get(k) != news[k])
    }
    keys |= set(diff.replaces or ())
    return tuple(sorted(keys))


@dataclass
class Decision:
    """The step the engine would take for one registration, and why it might refuse."""

    op: Op
    checked: dict[str, Any]
    changed: tuple[str, ...] = ()
    delete_before_replace: bool = False
    failures: list[CheckFailure] = field(default_factory=list)
    refusal: str | None = None


def decide(
    provider: ResourceProvider,
    old: ManifestEntry | None,
    news: dict[str, Any],
    registration: Registration,
) -> Decision:
    """``check``, then ``diff`` against ``old``: the step for this registration.

    ``check`` gets the old outputs as ``olds`` (the manifest keeps no separate inputs; the providers
    here return every input among their outputs). A check failure decides nothing further.
    """
    olds = old_props(old) if old is not None else {}
    result = provider.check(olds, news)
    checked = dict(result.inputs or {})
    checked[PROVIDER_KEY] = news[PROVIDER_KEY]
    if result.failures:
        return Decision("create" if old is None else "update", checked, failures=list(result.failures))
    if old is None:
        return Decision("create", checked)
    diff = provider.diff(old.id, olds, checked)
    if diff.changes is None:
        # "Unknown" makes the engine compare every input, __provider included (pulumi/pulumi#12401).
        differs = any(olds.get(k) != v for k, v in checked.items())
        diff = DiffResult(changes=differs, replaces=diff.replaces, stables=diff.stables,
                          delete_before_replace=diff.delete_before_replace)
    if not diff.changes and not diff.replaces:
        return Decision("same", checked)
    changed = changed_inputs(olds, checked, diff)
    if not diff.replaces:
        return Decision("update", checked, changed)
    dbr = bool(diff.delete_before_replace)
    if registration.delete_before_replace is not None:
        dbr = registration.delete_before_replace  # the resource option overrides the provider
    refusal = None
    if old.protect and registration.protect:
        refusal = replace_protected_message(old)
    return Decision("replace", checked, changed, delete_before_replace=dbr, refusal=refusal)


def _unprotect_hint(entry: ManifestEntry) -> str:
    if entry.type.endswith(":FailoverImage"):
        return "set protect: false on that image (pcd-imagelib-ha:images[i].protect)"
    return "remove the `protect` option from the resource in the program"


def replace_protected_message(entry: ManifestEntry) -> str:
    """The engine's refusal to replace a protected resource, with this project's way to unprotect."""
    return (
        f'unable to replace resource "{entry.urn}"\nas it is currently marked for protection. To unprotect '
        f"the resource, {_unprotect_hint(entry)} and run up again (unprotecting and replacing in one run "
        "is allowed)."
    )


def delete_protected_message(entry: ManifestEntry) -> str:
    """The engine's refusal to delete a protected resource the program no longer declares."""
    return (
        f'resource "{entry.urn}" cannot be deleted\nbecause it is protected. To unprotect the resource, '
        f"declare it again with protect off ({_unprotect_hint(entry)}), run up, then remove it and run up "
        "(or down)."
    )
