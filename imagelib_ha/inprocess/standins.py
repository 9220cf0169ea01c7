"""Stand-ins: in-process players of the few non-dynamic resources the program declares.

The runner runs dynamic providers from the pickled blob in each resource's ``__provider`` input. A
resource of a bridged provider (pulumi-openstack) has no such blob and its plugin cannot run here, so
the runner refuses it, except for the types listed here: for those it uses a stand-in provider, and
records ``standin:<type token>`` where a dynamic resource's blob would be, so refresh and delete find
the same stand-in later. Every message naming such a resource says it is a stand-in.

Kept import-light: the stand-in's module (openstacksdk, pulumi-openstack) loads only when one runs.
"""

from __future__ import annotations

from pulumi.dynamic import ResourceProvider

VOLUME_TYPE_V3 = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
BLOB_PREFIX = "standin:"
STANDIN_TYPES = frozenset({VOLUME_TYPE_V3})
NOTE = "in-process stand-in"


def standin_blob(type_: str) -> str | None:
    """What the runner records as the provider of a resource of ``type_``: None without a stand-in."""
    return BLOB_PREFIX + type_ if type_ in STANDIN_TYPES else None


def is_standin_blob(blob: str) -> bool:
    return blob.startswith(BLOB_PREFIX)


def make_standin(blob: str) -> ResourceProvider:
    """A new, unconfigured stand-in provider for a blob written by :func:`standin_blob`."""
    type_ = blob[len(BLOB_PREFIX):]
    if type_ == VOLUME_TYPE_V3:
        from imagelib_ha.inprocess.volume_type_standin import VolumeTypeV3StandIn

        return VolumeTypeV3StandIn()
    raise ValueError(f"no in-process stand-in for {type_}")
