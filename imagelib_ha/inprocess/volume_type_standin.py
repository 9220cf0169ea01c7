"""A stand-in for pulumi-openstack's ``VolumeTypeV3``, for in-process runs only.

The in-process runner cannot run pulumi-openstack (a plugin binary the Pulumi CLI downloads), and the
Cinder variant needs the one volume type the program creates. This stand-in plays that resource with
the same contract, so the program stays unchanged and the Pulumi engine keeps running the real one:

* **Inputs and outputs** are the installed ``pulumi_openstack.blockstorage.VolumeTypeV3``'s own
  properties, under their wire names (``name``, ``description``, ``isPublic``, ``extraSpecs``,
  ``region``): :func:`schema_keys` reads them from the installed package, so a provider upgrade that
  changes them fails ``check`` instead of being silently ignored.
* **Diff, replace and update** follow terraform-provider-openstack's
  ``resource_openstack_blockstorage_volume_type_v3.go``, which pulumi-openstack bridges: only
  ``region`` forces a new type; ``name``, ``description`` and ``is_public`` update the type in place
  (one ``PUT``); a change of ``extra_specs`` deletes every old key and then sets the new ones. Every
  property but ``name`` is optional *and computed*, so leaving one out of the config is no change.
  Create sends ``is_public`` false when it is not set (the bridged provider's zero value: a private
  type), so the program sets it.
* **It runs through openstacksdk** (``block_storage``) with the stack's cloud settings
  (``pcd-imagelib-ha:cloud``, read in ``configure()`` like every provider here): the same credentials
  the program gives its explicit ``openstack.Provider``, never stored.

Every step it runs is marked "stand-in" in the runner's output, and the README says what the Pulumi
engine does with a volume type it created (import it by id).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import openstack.connection
import openstack.exceptions
import pulumi_openstack.blockstorage.volume_type_v3 as volume_type_v3
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from imagelib_ha.client.errors import PcdError
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import contains_unknown, is_unknown

TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
# terraform-provider-openstack: region is ForceNew; the others update in place.
REPLACE_ON = ("region",)
UPDATED_BY_PUT = ("name", "description", "isPublic")
SPECS = "extraSpecs"
PROVIDER_KEY = "__provider"


def schema_keys() -> tuple[str, ...]:
    """The wire names of ``VolumeTypeV3``'s input properties, read from the installed package."""
    args = volume_type_v3.VolumeTypeV3Args
    names = [getattr(v.fget, "_pulumi_name", None) for v in vars(args).values() if isinstance(v, property)]
    return tuple(sorted(n for n in names if n))


class VolumeTypeStandInError(PcdError):
    """A Cinder call of the volume-type stand-in failed; the message names the type and the cause."""


class VolumeTypeV3StandIn(CloudConfiguredProvider):
    """Plays ``openstack.blockstorage.VolumeTypeV3`` in the in-process runner, against the real Cinder."""

    label = "stand-in for pulumi-openstack VolumeTypeV3"

    # -- engine calls --------------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        keys = schema_keys()
        inputs = {k: news.get(k) for k in keys}
        failures = self.cloud_failures()
        unexpected = sorted(set(news) - set(keys) - {PROVIDER_KEY})
        if unexpected:
            # The program passes a property the installed VolumeTypeV3 does not have: refuse, never ignore.
            failures.append(
                CheckFailure(unexpected[0], f"is not a VolumeTypeV3 input (inputs: {', '.join(keys)})")
            )
        name = inputs.get("name")
        if not is_unknown(name) and not (isinstance(name, str) and name):
            failures.append(CheckFailure("name", "is required: the volume type's name"))
        specs = inputs.get(SPECS)
        if specs is not None and not contains_unknown(specs) and not (
            isinstance(specs, Mapping) and all(isinstance(v, str) for v in specs.values())
        ):
            failures.append(CheckFailure(SPECS, "must be a map of strings"))
        public = inputs.get("isPublic")
        if public is not None and not is_unknown(public) and not isinstance(public, bool):
            failures.append(CheckFailure("isPublic", "must be true or false"))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Optional and computed: a property left out of the config keeps the live value (no change).
        changed = [
            k for k in schema_keys()
            if news.get(k) is not None and (contains_unknown(news[k]) or news[k] != olds.get(k))
        ]
        replaces = [k for k in changed if k in REPLACE_ON]
        stables = [k for k in schema_keys() if k not in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=stables,
                          delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection(props)
        name = props["name"]
        with self._explained(f"creating volume type {name!r}"):
            try:
                created = conn.block_storage.create_type(
                    name=name,
                    description=props.get("description") or "",
                    is_public=bool(props.get("isPublic")),
                    extra_specs=dict(props.get(SPECS) or {}),
                )
            except openstack.exceptions.ConflictException:
                # Never adopted: a type this state has no record of may be someone else's, and adopting
                # it would let `down` delete it. (The Terraform provider does not adopt either.)
                raise VolumeTypeStandInError(
                    f"{self.label}: a volume type named {name!r} already exists in region "
                    f"{self._region(props)!r} and this stack has no record of it (made outside the stack, "
                    "or by an up interrupted before it recorded the type). Delete it if no volume uses it "
                    f"(openstack volume type delete {name}), or set "
                    "pcd-imagelib-ha:storage.cinder.volumeType to another name"
                ) from None
        return CreateResult(id_=str(created.id), outs=self._read(conn, str(created.id), props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection(news)
        attrs = {
            sdk_name: news[key]
            for key, sdk_name in (("name", "name"), ("description", "description"), ("isPublic", "is_public"))
            if news.get(key) is not None and news[key] != olds.get(key)
        }
        with self._explained(f"updating volume type {id_}"):
            if attrs:
                conn.block_storage.update_type(id_, **attrs)
            new_specs = news.get(SPECS)
            if new_specs is not None and new_specs != olds.get(SPECS):
                # As the Terraform provider does: drop every old key, then set the new ones.
                old_keys = list((olds.get(SPECS) or {}).keys())
                if old_keys:
                    conn.block_storage.delete_type_extra_specs(id_, old_keys)
                if new_specs:
                    conn.block_storage.update_type_extra_specs(id_, **dict(new_specs))
        return UpdateResult(outs=self._read(conn, id_, news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = self._connection(props)
        try:
            outs = self._read(conn, id_, props)
        except VolumeTypeStandInError as exc:
            if isinstance(exc.__cause__, openstack.exceptions.NotFoundException):
                return ReadResult(id_="", outs={})
            raise
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        conn = self._connection(props)
        # Cinder refuses to delete a type its volumes still use: the error says so.
        with self._explained(f"deleting volume type {id_}"):
            conn.block_storage.delete_type(id_, ignore_missing=True)

    # -- helpers --------------------------------------------------------------------------------------

    def _region(self, props: Mapping[str, Any]) -> str | None:
        return props.get("region") or self.access.region

    def _connection(self, props: Mapping[str, Any]) -> openstack.connection.Connection:
        return openstack.connection.Connection(
            session=self.session(), region_name=self._region(props), block_storage_api_version="3"
        )

    def _read(
        self, conn: openstack.connection.Connection, id_: str, props: Mapping[str, Any]
    ) -> dict[str, Any]:
        with self._explained(f"reading volume type {id_}"):
            found = conn.block_storage.get_type(id_)
        return {
            "name": found.name,
            "description": found.description,
            "isPublic": found.is_public,
            SPECS: dict(found.extra_specs or {}),
            "region": self._region(props),
        }

    @contextmanager
    def _explained(self, what: str) -> Iterator[None]:
        """An openstacksdk failure as one error naming the step; cloud errors as the providers word them."""
        with self.cloud_errors_explained():
            try:
                yield
            except openstack.exceptions.SDKException as exc:
                raise VolumeTypeStandInError(f"{self.label}: {what}: {exc}") from exc
