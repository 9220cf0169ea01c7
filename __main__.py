"""pcd-imagelib-ha: a highly available Image Library for one Platform9 PCD region."""

import pulumi

from components.ha import ImageLibraryHA
from imagelib_ha.settings import load_settings

settings = load_settings()
ha = ImageLibraryHA(f"imagelib-{settings.region.lower()}", settings)

pulumi.export("region", settings.region)
pulumi.export("backend", settings.storage.backend)
pulumi.export("glance_store_config", ha.storage.glance_store_config)
pulumi.export(
    "hosts",
    ha.host_roles.members.apply(
        lambda members: [
            {
                "host": m.get("ref"),
                "host_id": m.get("host_id"),
                "hostname": m.get("hostname"),
                "endpoint": m.get("endpoint"),
                "status": m.get("role_status"),
                "owned": m.get("owned"),
            }
            for m in members or []
        ]
    ),
)
pulumi.export("health_report", ha.health.report)
pulumi.export("serving_count", ha.health.serving_count)
pulumi.export("endpoints", ha.health.endpoints)
pulumi.export(
    "images",
    {
        name: {
            "image_id": img.image_id,
            "status": img.status,
            "host": img.host,
            "os_hash_value": img.os_hash_value,
        }
        for name, img in ha.images.items()
    },
)
