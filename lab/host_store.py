"""A host's image store as PCD's host agent derives it from the region blueprint.

The blueprint's `imageLibraryStorage` is either a filesystem path (a file store at that path) or the
name of a Cinder volume type (Glance's Cinder store, creating one volume of that type per image). The
lab renders each host's Glance store config from it whenever the role converges on the host, with its
own code: reusing the project's renderer would make every test of it circular.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.settings import CinderSettings, Credentials, LabConfig

FILE_STORE_ID = "file"
CINDER_STORE_ID = "cinder"
# How long glance_store waits for a volume to leave a transitional state (attaching, creating, ...).
CINDER_STATE_TRANSITION_TIMEOUT = 120


class StoreConfigError(ValueError):
    """The blueprint asks for a store this lab cannot give a host (the role then fails, naming it)."""


@dataclass(frozen=True)
class FileStore:
    """A filesystem store: the host's store dir bound at `path` in its mount namespace."""

    path: Path

    @property
    def kind(self) -> str:
        return "file"


@dataclass(frozen=True)
class CinderStore:
    """Glance's Cinder store: images as volumes of `volume_type`, reached with the Glance service user."""

    volume_type: str

    @property
    def kind(self) -> str:
        return "cinder"


HostStore = FileStore | CinderStore


def from_blueprint(blueprint: dict[str, Any], default_path: Path) -> HostStore:
    """The store a host of this blueprint's region runs: an absolute path is a file store, any other
    value a volume type name; no value keeps the lab's store path."""
    value = blueprint.get("imageLibraryStorage")
    if value is None or value == "":
        return FileStore(default_path)
    if not isinstance(value, str):
        raise StoreConfigError(f"blueprint imageLibraryStorage must be a string, not {value!r}")
    if value.startswith("/"):
        return FileStore(Path(value))
    return CinderStore(value.strip())


@dataclass(frozen=True)
class RenderedStore:
    """A store's part of glance-api.conf: the `[DEFAULT] enabled_backends` value, and the
    `[glance_store]` section plus the store's own section."""

    enabled_backends: str
    sections: str


def render(store: HostStore, *, cfg: LabConfig, region: str, mount_point_base: Path,
           file_path: Path) -> RenderedStore:
    """Glance's store config for one host. ``file_path`` is where a file store's data dir is seen by
    this Glance (the blueprint path inside a mount namespace, the bound dir itself without one)."""
    if isinstance(store, FileStore):
        return RenderedStore(
            enabled_backends=f"{FILE_STORE_ID}:file",
            sections=(f"[glance_store]\ndefault_backend = {FILE_STORE_ID}\n"
                      f"[{FILE_STORE_ID}]\nfilesystem_store_datadir = {file_path}\n"),
        )
    cinder = _cinder_or_fail(cfg, store)
    svc: Credentials = cfg.glance_service
    return RenderedStore(
        enabled_backends=f"{CINDER_STORE_ID}:cinder",
        sections=(
            f"[glance_store]\ndefault_backend = {CINDER_STORE_ID}\n"
            f"[{CINDER_STORE_ID}]\n"
            f"cinder_volume_type = {store.volume_type}\n"
            "cinder_catalog_info = volumev3::publicURL\n"
            f"cinder_os_region_name = {region}\n"
            f"cinder_store_auth_address = {cfg.auth_url}\n"
            f"cinder_store_user_name = {svc.username}\n"
            f"cinder_store_password = {svc.password}\n"
            f"cinder_store_project_name = {svc.project_name}\n"
            f"cinder_store_user_domain_name = {svc.user_domain_name}\n"
            f"cinder_store_project_domain_name = {svc.project_domain_name}\n"
            f"cinder_mount_point_base = {mount_point_base}\n"
            f"cinder_state_transition_timeout = {CINDER_STATE_TRANSITION_TIMEOUT}\n"
            # Never read: the lab's `sudo` helper drops the rootwrap step (see lab/nfs_emulation.py).
            f"rootwrap_config = {mount_point_base.parent / 'rootwrap.conf'}\n"
            f"# lab: cinder-api at http://127.0.0.1:{cinder.api_port}, found through the catalog\n"
        ),
    )


def _cinder_or_fail(cfg: LabConfig, store: CinderStore) -> CinderSettings:
    if cfg.cinder is None:
        raise StoreConfigError(
            f"the blueprint's imageLibraryStorage names the Cinder volume type {store.volume_type!r}, "
            "but this lab runs without Cinder: start it with `python -m lab up --cinder` "
            "(or set imageLibraryStorage to a path)"
        )
    return cfg.cinder


def describe(store: HostStore) -> dict[str, str]:
    """The store as `status` shows it."""
    if isinstance(store, FileStore):
        return {"kind": store.kind, "path": str(store.path)}
    return {"kind": store.kind, "volume_type": store.volume_type}
