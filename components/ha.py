"""``ImageLibraryHA``: a region's highly available image library, composed from its parts."""

from __future__ import annotations

from typing import Any

import pulumi

from components.hosts import ImageLibraryHosts
from components.storage import SharedImageStorage, volume_type_extra_specs
from imagelib_ha.names import resource_slug
from imagelib_ha.providers.health import ImageLibraryHealth
from imagelib_ha.providers.image import FailoverImage
from imagelib_ha.providers.settings import ImageLibrarySettings, expected_store
from imagelib_ha.settings import StackSettings

TYPE = "pcd-imagelib-ha:index:ImageLibraryHA"


class ImageLibraryHA(pulumi.ComponentResource):
    """The image library of one PCD region made highly available.

    Order of operations: the shared storage, then the region's image-library settings (blueprint and
    Glance store config), then the role on the hosts, then a health check that depends on the roles,
    then the images, which depend on the health check so they are only uploaded to a proven library.
    Credentials are not passed to any resource: the providers read them from the stack config.
    The props carry the config-known facts (backend, mount path, region, hosts) so the policy pack can
    judge them at preview, when the resources' own outputs are still unknown.
    """

    # Attribute names differ from the props' keys on purpose: the SDK resolves a component's props
    # back onto the attributes its class annotates, converting them to the annotated types.
    storage: SharedImageStorage
    region_settings: ImageLibrarySettings
    host_roles: ImageLibraryHosts
    health: ImageLibraryHealth
    images: dict[str, FailoverImage]

    def __init__(
        self, name: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        storage_cfg = settings.storage
        host_props = settings.host_props()
        extra_specs = volume_type_extra_specs(settings)
        props: dict[str, Any] = {
            "region": settings.region,
            "backend": storage_cfg.backend,
            "mount_path": storage_cfg.mount_path,
            "volume_type": storage_cfg.volume_type,
            "volume_type_extra_specs": extra_specs,
            "host_count": len(settings.hosts),
            "host_names": [h.host for h in settings.hosts],
            "hosts": host_props,
            "insecure": settings.cloud.insecure,
            "lab": settings.lab,
            "min_healthy": settings.health.min_healthy_hosts,
        }
        super().__init__(TYPE, name, props, opts)

        self.storage = SharedImageStorage(f"{name}-storage", settings, pulumi.ResourceOptions(parent=self))

        self.region_settings = ImageLibrarySettings(
            f"{name}-settings",
            {
                "region": settings.region,
                "blueprint": settings.region,
                "backend": storage_cfg.backend,
                "mount_path": storage_cfg.mount_path,
                "volume_type": storage_cfg.volume_type,
                "volume_type_extra_specs": extra_specs,
                "shared": storage_cfg.backend != "local",
                "hosts": host_props,
                "lab": settings.lab,
                "migration_ack": storage_cfg.acknowledge_migration_to,
            },
            # Depends on the whole storage component: for Cinder, the volume type must exist first.
            pulumi.ResourceOptions(parent=self, depends_on=[self.storage]),
        )

        self.host_roles = ImageLibraryHosts(
            f"{name}-hosts",
            settings=settings,
            depends_on=[self.region_settings],
            opts=pulumi.ResourceOptions(parent=self),
        )

        health = settings.health
        self.health = ImageLibraryHealth(
            f"{name}-health",
            {
                "region": settings.region,
                "role_host_ids": self.host_roles.host_ids,
                "hosts": host_props,
                "backend": storage_cfg.backend,
                "expected_store": expected_store(
                    storage_cfg.backend,
                    mount_path=storage_cfg.mount_path,
                    volume_type=storage_cfg.volume_type,
                ),
                "min_healthy": health.min_healthy_hosts,
                "probe_timeout": health.probe_timeout_seconds,
                "deadline": health.deadline_seconds,
                "canary": health.canary,
                "audit_images": health.audit_images,
                "service_unit": health.service_unit,
                "log_path": health.log_path,
                # Whether hostAccess is configured (the access itself is read by the provider).
                "host_checks": settings.host_access is not None,
                "lab": settings.lab,
            },
            pulumi.ResourceOptions(parent=self, depends_on=[self.host_roles.roles]),
        )

        project, stack = pulumi.get_project(), pulumi.get_stack()
        self.images = {}
        for image in settings.images:
            self.images[image.name] = FailoverImage(
                f"{name}-image-{resource_slug(image.name)}",
                {
                    "region": settings.region,
                    "name": image.name,
                    "source": image.source,
                    "disk_format": image.disk_format,
                    "container_format": image.container_format,
                    "visibility": image.visibility,
                    "properties": dict(image.properties),
                    "tags": list(image.tags),
                    "identity": image.key or f"{project}/{stack}/{image.name}",
                    "digest": image.digest,
                    "import_method": image.import_method,
                    "import_timeout": image.import_timeout_seconds,
                    "health": self.health.id,
                    "endpoints": self.health.endpoints,
                },
                pulumi.ResourceOptions(
                    parent=self, depends_on=[self.health], protect=settings.image_protected(image)
                ),
            )

        self.register_outputs(
            {
                "region": settings.region,
                "glance_store_config": self.storage.glance_store_config,
                "serving_count": self.health.serving_count,
                "endpoints": self.health.endpoints,
                "report": self.health.report,
                "image_ids": {n: img.image_id for n, img in self.images.items()},
            }
        )
