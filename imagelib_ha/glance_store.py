"""The ``glance-api.conf`` store sections an image-library host must run for a storage backend.

Plain text rendered from settings, so a Pulumi preview diff shows exactly which Glance config lines
change. Kept free of Pulumi imports: the components and the providers render the same text.
"""

from __future__ import annotations

from typing import Any

# The store id names the backend kind, as seen on PCD hosts (`enabled_backends = cinder:cinder`).
FILE_STORE_ID = "file"
CINDER_STORE_ID = "cinder"


def expected_store(backend: str, *, mount_path: str | None, volume_type: str | None) -> dict[str, Any]:
    """What each host's Glance must report for its default store (``GET /v2/info/stores/detail``)."""
    if backend == "cinder":
        return {"type": "cinder", "volume_type": volume_type}
    return {"type": "file", "data_dir": mount_path}


def render_store_config(backend: str, *, mount_path: str | None, volume_type: str | None) -> str:
    """``enabled_backends``, ``[glance_store] default_backend`` and the store's own section."""
    if backend == "cinder":
        store_id = CINDER_STORE_ID
        section = [f"cinder_volume_type = {volume_type}", "cinder_catalog_info = volumev3::publicURL"]
        kind = "cinder"
    else:
        store_id = FILE_STORE_ID
        # The file store writes <data dir>/<image id>: the data dir is the shared mount itself.
        section = [f"filesystem_store_datadir = {mount_path}"]
        kind = "file"
    lines = [
        "[DEFAULT]",
        f"enabled_backends = {store_id}:{kind}",
        "",
        "[glance_store]",
        f"default_backend = {store_id}",
        "",
        f"[{store_id}]",
        *section,
    ]
    return "\n".join(lines) + "\n"
