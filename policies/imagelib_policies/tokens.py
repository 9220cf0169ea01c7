"""Type tokens the rules recognise (fixed in docs/contracts.md; URNs depend on them)."""

from typing import Final

ROLES: Final = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
SETTINGS: Final = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
HEALTH: Final = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
FAILOVER_IMAGE: Final = "pulumi-python:dynamic/imagelib:FailoverImage"

HA: Final = "pcd-imagelib-ha:index:ImageLibraryHA"
STORAGE: Final = "pcd-imagelib-ha:index:SharedImageStorage"
HOSTS: Final = "pcd-imagelib-ha:index:ImageLibraryHosts"

OPENSTACK_PROVIDER: Final = "pulumi:providers:openstack"
OPENSTACK_IMAGE: Final = "openstack:images/image:Image"
OPENSTACK_VOLUME_TYPE: Final = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"

IMAGE_TYPES: Final = frozenset({FAILOVER_IMAGE, OPENSTACK_IMAGE})

# Short names used in violation messages.
KIND: Final = {
    ROLES: "ImageLibraryRoles",
    SETTINGS: "ImageLibrarySettings",
    HEALTH: "ImageLibraryHealth",
    FAILOVER_IMAGE: "FailoverImage",
    HA: "ImageLibraryHA",
    STORAGE: "SharedImageStorage",
    HOSTS: "ImageLibraryHosts",
    OPENSTACK_PROVIDER: "OpenStack provider",
    OPENSTACK_IMAGE: "openstack.images.Image",
    OPENSTACK_VOLUME_TYPE: "openstack.blockstorage.VolumeTypeV3",
}
