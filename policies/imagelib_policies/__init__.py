"""CrossGuard rules for the Image Library HA of Platform9 PCD (self-contained: pulumi-policy only).

The rules, the Image Library HA prerequisites of PCD and the gates around image uploads, live one
concern per module: ``storage`` (shared storage, mount path, Cinder multiattach and volume type),
``hosts_and_region`` (host count, one region), ``image_uploads`` (upload endpoint, health gate),
``tls`` (TLS verification) and ``host_checks`` (host checks over SSH). ``POLICIES`` lists them in the
order the pack registers them.

Every validator reads config-known values only (component props, dynamic-resource inputs, provider
arguments), skips a check whose values are unknown at preview, and names resources, hosts, regions,
paths and volume types in its messages but never echoes a value that could be secret (cloud
credentials, provider arguments other than the ones it parses). Every message ends with the fix.
"""

from typing import Final

from pulumi_policy import Policy

from .host_checks import host_checks_configured
from .hosts_and_region import minimum_hosts, single_region
from .image_uploads import health_gates_images, images_through_image_library_hosts
from .storage import cinder_multiattach, cinder_volume_type_declared, same_mount_path, shared_storage_required
from .tls import tls_verification

POLICIES: Final[list[Policy]] = [
    shared_storage_required,
    single_region,
    same_mount_path,
    minimum_hosts,
    cinder_multiattach,
    images_through_image_library_hosts,
    tls_verification,
    health_gates_images,
    cinder_volume_type_declared,
    host_checks_configured,
]

__all__ = ["POLICIES"]
