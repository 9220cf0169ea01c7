"""``SharedImageStorage``: the image store every image-library host of a region shares."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_openstack as openstack

from imagelib_ha.client.block_storage import image_library_extra_specs
from imagelib_ha.providers.settings import render_glance_store_config
from imagelib_ha.settings import StackSettings

TYPE = "pcd-imagelib-ha:index:SharedImageStorage"


class SharedImageStorage(pulumi.ComponentResource):
    """The storage backend of one region's image library and the Glance store config it implies.

    NFS (and the non-HA ``local`` kind) is mounted by the operator on each host: this component only
    carries the mount spec. Cinder needs a volume type, created here through pulumi-openstack with an
    explicit provider built from the stack's cloud settings (never from ambient ``OS_*`` variables).
    ``glance_store_config`` is the ``glance-api.conf`` text every host must run.
    """

    glance_store_config: pulumi.Output[str]
    volume_type_resource: openstack.blockstorage.VolumeTypeV3 | None
    openstack_provider: openstack.Provider | None

    def __init__(
        self, name: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        storage = settings.storage
        nfs = storage.nfs if storage.backend == "nfs" else None
        rendered = render_glance_store_config(
            storage.backend, mount_path=storage.mount_path, volume_type=storage.volume_type
        )
        props: dict[str, Any] = {
            "backend": storage.backend,
            "mount_path": storage.mount_path,
            "volume_type": storage.volume_type,
            "nfs_server": nfs.server if nfs else None,
            "nfs_export": nfs.export if nfs else None,
            "region": settings.region,
            "glance_store_config": rendered,
        }
        super().__init__(TYPE, name, props, opts)

        self.volume_type_resource = None
        self.openstack_provider = None
        if storage.backend == "cinder" and storage.cinder is not None:
            self.openstack_provider = openstack_provider(f"{name}-openstack", settings, parent=self)
            self.volume_type_resource = openstack.blockstorage.VolumeTypeV3(
                f"{name}-volume-type",
                name=storage.cinder.volume_type,
                # Several hosts attach an image's volume at once: multiattach unless configured off
                # (which the settings' check and the policy pack then refuse).
                extra_specs=volume_type_extra_specs(settings),
                description="Image Library store (managed by pcd-imagelib-ha)",
                # Glance creates the volumes with its own service user: a private type (what the
                # provider creates when is_public is left unset) is invisible to that project.
                is_public=True,
                region=settings.region,
                opts=pulumi.ResourceOptions(parent=self, provider=self.openstack_provider),
            )

        self.glance_store_config = pulumi.Output.from_input(rendered)
        self.register_outputs(
            {
                "glance_store_config": self.glance_store_config,
                "volume_type_id": self.volume_type_resource.id if self.volume_type_resource else None,
            }
        )


def volume_type_extra_specs(settings: StackSettings) -> dict[str, str] | None:
    """The extra specs of the volume type the program creates (None without a Cinder backend)."""
    cinder = settings.storage.cinder
    if settings.storage.backend != "cinder" or cinder is None:
        return None
    return image_library_extra_specs(cinder.extra_specs)


def openstack_provider(name: str, settings: StackSettings, *, parent: pulumi.Resource) -> openstack.Provider:
    """An explicit pulumi-openstack provider for the stack's region.

    TLS is verified unless ``cloud.insecure`` is set; the password and the application credential
    secret are passed as secrets so they stay encrypted in state.
    """
    access = settings.cloud_access()
    password = access["password"]
    app_secret = access["application_credential_secret"]
    return openstack.Provider(
        name,
        auth_url=access["auth_url"],
        region=access["region"],
        user_name=access["username"],
        password=pulumi.Output.secret(password) if password is not None else None,
        tenant_name=access["project_name"],
        user_domain_name=access["user_domain_name"],
        project_domain_name=access["project_domain_name"],
        application_credential_id=access["application_credential_id"],
        application_credential_secret=pulumi.Output.secret(app_secret) if app_secret is not None else None,
        cacert_file=access["ca_bundle"],
        insecure=bool(access["insecure"]),
        opts=pulumi.ResourceOptions(parent=parent),
    )
