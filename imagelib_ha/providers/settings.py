"""``ImageLibrarySettings``: a region's image-library storage settings, as a Pulumi dynamic resource.

On PCD the image-library hosts take their storage from the region's **blueprint**:
``imageLibraryStorage`` (a filesystem path, or a Cinder volume type name) and
``imageLibrarySharedStorage``. This resource owns exactly those two fields and writes them with a
read-modify-write of the whole blueprint (resmgr replaces a blueprint as a whole), so every other field
survives. Its output ``glance_store_config`` renders the ``glance-api.conf`` store section those settings
give each host, so ``pulumi preview --diff`` shows a storage change line by line.

Decisions:

* The file store's data dir is the mount path itself (``filesystem_store_datadir = <mount_path>``): the
  blueprint path is what PCD hands to the role's ``filesystem_store_datadir`` setting, and the lab does
  the same. Field notes saw images under ``<mount>/glance/<image-id>`` on one release; the health check
  compares each host's *reported* data dir, so a host laid out differently is caught, not assumed.
  ``expected_store()`` is the one place that rule lives: the program and health checks use it too.
* ``delete`` leaves the blueprint as it is. The fields cannot be "unset" (every region's blueprint has
  a storage value), and restoring the value seen at create time could point hosts still serving images
  (another stack's, or ones assigned by hand) at a path without their data. The blueprint is harmless
  once no host holds the role.
* ``read`` reports the blueprint's live values in place of the inputs they came from, so ``pulumi
  refresh`` shows drift and the next ``up`` writes the configured values back.
* ``check`` refuses the HA prerequisite violations (two regions, ``local`` with several hosts, differing
  mount paths, a Cinder volume type without multiattach): the apply-time twin of the policy pack.
  ``volume_type_extra_specs`` (the extra specs of the volume type the program creates) is an input
  for that check only: the blueprint names the type, never its specs.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from typing import Any

from pulumi import Output
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from imagelib_ha.client.resmgr import BLUEPRINT_SHARED, BLUEPRINT_STORAGE, ResmgrClient
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import (
    SeededResource,
    diff_inputs,
    host_expectations,
    inputs_with_defaults,
    is_unknown,
)
from imagelib_ha.providers.prereqs import cinder_multiattach_failures, ha_prerequisite_failures

LOG = logging.getLogger(__name__)

BACKENDS = ("nfs", "cinder", "local")
FILE_BACKENDS = frozenset({"nfs", "local"})
FILE_STORE_ID = "file"
CINDER_STORE_ID = "cinder"

INPUT_KEYS = (
    "region",
    "blueprint",
    "backend",
    "mount_path",
    "volume_type",
    "volume_type_extra_specs",
    "shared",
    "hosts",
    "lab",
    "migration_ack",
)
INPUT_DEFAULTS: dict[str, Any] = {
    "hosts": [], "lab": False, "migration_ack": None, "volume_type_extra_specs": None,
}
# A change of these on a live library moves where Glance looks for every image.
STORE_INPUTS = ("backend", "mount_path", "volume_type")
OUTPUT_KEYS = ("glance_store_config", "blueprint_storage", "blueprint_shared")


# --- rendering (pure; also used by the program and the health check) -----------------------------


def expected_store(backend: str, *, mount_path: str | None, volume_type: str | None) -> dict[str, Any]:
    """What each host's Glance should report for its default store (``GET /v2/info/stores/detail``).

    ``{"type": "file", "data_dir": <mount_path>}`` for ``nfs``/``local``, ``{"type": "cinder",
    "volume_type": ...}`` for ``cinder``: the ``expected_store`` input of ``ImageLibraryHealth``.
    """
    if backend == "cinder":
        return {"type": "cinder", "volume_type": volume_type}
    return {"type": "file", "data_dir": posixpath.normpath(mount_path) if mount_path else None}


def render_glance_store_config(backend: str, *, mount_path: str | None, volume_type: str | None) -> str:
    """The ``glance-api.conf`` store section a host gets from these settings (multi-store syntax)."""
    if backend == "cinder":
        store_id, store_type = CINDER_STORE_ID, "cinder"
        store_lines = [f"cinder_volume_type = {volume_type}"]
    else:
        store_id, store_type = FILE_STORE_ID, "file"
        data_dir = expected_store(backend, mount_path=mount_path, volume_type=None)["data_dir"]
        store_lines = [f"filesystem_store_datadir = {data_dir}"]
    lines = [
        "[DEFAULT]",
        f"enabled_backends = {store_id}:{store_type}",
        "",
        "[glance_store]",
        f"default_backend = {store_id}",
        "",
        f"[{store_id}]",
        *store_lines,
    ]
    return "\n".join(lines) + "\n"


def blueprint_storage_value(backend: str, *, mount_path: str | None, volume_type: str | None) -> str | None:
    """The ``imageLibraryStorage`` value: the path for file backends, the volume type for Cinder."""
    return volume_type if backend == "cinder" else mount_path


# --- the provider ----------------------------------------------------------------------------------


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    inputs = inputs_with_defaults(props, INPUT_KEYS, INPUT_DEFAULTS)
    # Defaults that follow from other inputs (and stay open while those are unknown at preview).
    if inputs["blueprint"] is None and not is_unknown(inputs["region"]):
        inputs["blueprint"] = inputs["region"]
    if inputs["shared"] is None and not is_unknown(inputs["backend"]):
        inputs["shared"] = inputs["backend"] != "local"
    return inputs


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


def _field_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    region, backend = inputs["region"], inputs["backend"]
    if not is_unknown(region) and not (isinstance(region, str) and region):
        failures.append(CheckFailure("region", "must be the region name (pcd-imagelib-ha:cloud.region)"))
    blueprint = inputs["blueprint"]
    if _known(blueprint) and not (isinstance(blueprint, str) and blueprint and "/" not in blueprint):
        failures.append(
            CheckFailure("blueprint", "must be a blueprint name (no '/'), default the region name")
        )
    if not is_unknown(backend) and backend not in BACKENDS:
        failures.append(CheckFailure(
            "backend", "must be one of nfs, cinder, local (pcd-imagelib-ha:storage.backend)"
        ))
    mount_path, volume_type, shared = inputs["mount_path"], inputs["volume_type"], inputs["shared"]
    if backend in FILE_BACKENDS and not is_unknown(mount_path) and not (
        isinstance(mount_path, str) and posixpath.isabs(mount_path)
    ):
        key = "storage.nfs.mountPath" if backend == "nfs" else "storage.local.path"
        failures.append(CheckFailure(
            "mount_path", f"{backend} storage needs an absolute path: set pcd-imagelib-ha:{key}"
        ))
    if backend == "cinder" and not is_unknown(volume_type) and not (
        isinstance(volume_type, str) and volume_type
    ):
        failures.append(CheckFailure(
            "volume_type", "cinder storage needs a volume type: set pcd-imagelib-ha:storage.cinder.volumeType"
        ))
    if _known(shared) and not isinstance(shared, bool):
        failures.append(CheckFailure("shared", "must be true or false"))
    elif backend == "local" and shared is True:
        failures.append(CheckFailure(
            "shared", "local storage is not shared between hosts: shared must be false for backend 'local'"
        ))
    hosts = inputs["hosts"]
    if not is_unknown(hosts) and not isinstance(hosts, list | tuple):
        failures.append(CheckFailure("hosts", "must be a list of {host, region, mount_path}"))
    return failures


def _store_config_key(prop: str, backend: Any) -> str:
    """The config key an operator edits to change the store input ``prop``."""
    if prop == "backend":
        return "storage.backend"
    if prop == "volume_type":
        return "storage.cinder.volumeType"
    return "storage.nfs.mountPath" if backend == "nfs" else "storage.local.path"


def _migration_failures(olds: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[CheckFailure]:
    """A store change on a live library, refused unless ``migration_ack`` names the new target.

    ``olds`` are the inputs the resource was last deployed with (empty for a new library, and a region
    change is a new library). Glance records each image's absolute location (a path under the store,
    or a Cinder volume): pointing the hosts elsewhere leaves every existing image unreadable.
    """
    if not olds or any(is_unknown(inputs.get(k)) for k in STORE_INPUTS):
        return []
    if any(olds.get(k) != inputs.get(k) for k in ("region", "blueprint")):
        return []  # another region's (or blueprint's) library: a replacement, with no images to strand
    old_target = blueprint_storage_value(
        str(olds.get("backend")), mount_path=olds.get("mount_path"), volume_type=olds.get("volume_type")
    )
    new_target = blueprint_storage_value(
        str(inputs["backend"]), mount_path=inputs["mount_path"], volume_type=inputs["volume_type"]
    )
    if olds.get("backend") == inputs["backend"] and old_target == new_target:
        return []
    if inputs.get("migration_ack") == new_target:
        return []
    prop = "backend" if olds.get("backend") != inputs["backend"] else (
        "volume_type" if inputs["backend"] == "cinder" else "mount_path"
    )
    return [CheckFailure(
        prop,
        f"pcd-imagelib-ha:{_store_config_key(prop, inputs['backend'])}: "
        f"moving the image store of a live library from {olds.get('backend')} '{old_target}' to "
        f"{inputs['backend']} '{new_target}' would leave every existing image unreadable (Glance records "
        "each image's absolute location). Migrate first: copy the store's data to the new target (or "
        "re-upload the images), then set pcd-imagelib-ha:storage.acknowledgeMigrationTo to "
        f"'{new_target}' and run up again. Nothing was changed.",
    )]


class ImageLibrarySettingsProvider(CloudConfiguredProvider):
    """Writes the region blueprint's image-library storage fields and renders the Glance store config.

    Keeps nothing on ``self`` but the cloud access from ``configure()``: every call builds its own
    session.
    """

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = _inputs(news)
        failures = self.cloud_failures() + _field_failures(inputs) + _migration_failures(olds, inputs)
        failures += [
            CheckFailure(prop, reason)
            for prop, reason in ha_prerequisite_failures(
                region=inputs["region"],
                backend=inputs["backend"],
                hosts=inputs["hosts"],
                mount_path=inputs["mount_path"],
                lab=inputs["lab"],
            )
        ]
        failures += [
            CheckFailure(prop, reason)
            for prop, reason in cinder_multiattach_failures(
                backend=inputs["backend"], extra_specs=inputs["volume_type_extra_specs"]
            )
        ]
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_inputs = {k: olds[k] for k in INPUT_KEYS if k in olds}
        new_inputs = {k: news[k] for k in INPUT_KEYS if k in news}
        for values in (old_inputs, new_inputs):
            if "hosts" in values:
                values["hosts"] = host_expectations(values["hosts"])
        # Another region or blueprint is another object: replace (the old one's delete writes nothing).
        return diff_inputs(old_inputs, new_inputs, replace_on=("region", "blueprint"), stored=olds)

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        outs = self._write(inputs)
        return CreateResult(id_=f"{inputs['region']}/{inputs['blueprint']}", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._write(_inputs(news)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        client = self._client(inputs)
        with self.cloud_errors_explained():
            blueprint = client.get_blueprint(inputs["blueprint"])
        if blueprint is None:
            return ReadResult(id_="", outs={})
        live_storage = blueprint.get(BLUEPRINT_STORAGE)
        live_shared = blueprint.get(BLUEPRINT_SHARED)
        live = dict(inputs)
        if inputs["backend"] == "cinder":
            live["volume_type"] = live_storage
        else:
            live["mount_path"] = live_storage
        live["shared"] = live_shared
        return ReadResult(id_=id_, outs=self._outputs(live, storage=live_storage, shared=live_shared))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Deliberately leaves the blueprint as it is: see the module docstring.
        LOG.info(
            "image-library settings of blueprint %s left in place (a blueprint always holds a storage value)",
            props.get("blueprint"),
        )

    # --- steps -----------------------------------------------------------------------------------
    def _client(self, inputs: Mapping[str, Any]) -> ResmgrClient:
        # The settings' region picks the resmgr endpoint (and blueprint) even if the cloud's differs.
        return ResmgrClient(self.session(), region=inputs["region"])

    def _write(self, inputs: dict[str, Any]) -> dict[str, Any]:
        storage = blueprint_storage_value(
            inputs["backend"], mount_path=inputs["mount_path"], volume_type=inputs["volume_type"]
        )
        shared = bool(inputs["shared"])
        client = self._client(inputs)
        with self.cloud_errors_explained():
            change = client.set_image_library_storage(
                inputs["blueprint"], storage=str(storage), shared=shared
            )
        if change.written:
            LOG.info("blueprint %s: image-library storage %s -> %s", change.name, dict(change.before),
                     dict(change.after))
        return self._outputs(inputs, storage=storage, shared=shared)

    @staticmethod
    def _outputs(inputs: Mapping[str, Any], *, storage: Any, shared: Any) -> dict[str, Any]:
        return {
            **inputs,
            "glance_store_config": render_glance_store_config(
                inputs["backend"], mount_path=inputs["mount_path"], volume_type=inputs["volume_type"]
            ),
            "blueprint_storage": storage,
            "blueprint_shared": shared,
        }


class ImageLibrarySettings(SeededResource, module="imagelib", name="ImageLibrarySettings"):
    """The image-library storage settings of one region: blueprint fields and Glance store section."""

    glance_store_config: Output[str]
    blueprint_storage: Output[str]
    blueprint_shared: Output[bool]

    provider_class = ImageLibrarySettingsProvider
    output_keys = OUTPUT_KEYS
