"""The sections of the ``pcd-imagelib-ha:*`` stack config as pydantic models, with their field types."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from imagelib_ha.settings.errors import DEFAULT_LOG_PATH, DEFAULT_MOUNT_PATH, DEFAULT_SERVICE_UNIT

# --- field types -----------------------------------------------------------------------------------


def _template(text: str) -> str:
    """``text`` as a pydantic message template (which formats ``{...}``): braces escaped."""
    return text.replace("{", "{{").replace("}", "}}")


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        # Glance records each image's absolute file path, so every host must see the same absolute path.
        raise PydanticCustomError(
            "relative_path",
            _template(f"{value!r} is a relative path"),
            {"fix": f"give an absolute path, e.g. {DEFAULT_MOUNT_PATH}"},
        )
    return posixpath.normpath(value)


def url_problem(value: str) -> str | None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"{value!r} is not a full URL with an http:// or https:// scheme"
    return None


def _http_url(value: str) -> str:
    problem = url_problem(value)
    if problem:
        raise PydanticCustomError(
            "url_scheme",
            _template(problem),
            {"fix": "write the full URL, e.g. https://pcd.example.com/keystone/v3"},
        )
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty", "is empty", {"fix": "give a value or remove the key"})
    return value


def _sha256_digest(value: str) -> str:
    algo, _, hexdigest = value.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        raise PydanticCustomError(
            "digest",
            _template(f"{value!r} is not a sha256 digest"),
            {"fix": "write sha256:<64 lowercase hex digits> (the output of sha256sum on the file)"},
        )
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Name = Annotated[str, AfterValidator(_non_empty)]
Seconds = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    # strict: a quoted "false" must not silently become a boolean; forbid: a misspelt key is an error,
    # not a silently ignored setting.
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


# --- the config sections ---------------------------------------------------------------------------


class CloudSettings(_Model):
    """How to reach the region's Keystone: auth URL, credentials (secret), project, TLS settings."""

    # A clouds.yaml entry (read with openstacksdk's openstack.config, as the openstack client does):
    # it fills every key below that the stack config leaves unset.
    cloud: Name | None = None
    auth_url: HttpUrl | None = None
    # Environment variable holding the auth URL: the lab binds free ports, so its URL is not fixed.
    auth_url_env: Name | None = None
    region: Name | None = None
    username: Name | None = None
    password: SecretStr | None = None
    password_env: Name | None = None
    application_credential_id: Name | None = None
    application_credential_secret: SecretStr | None = None
    project_name: Name | None = None
    project_domain_name: Name = "Default"
    user_domain_name: Name = "Default"
    ca_bundle: AbsolutePath | None = None
    insecure: bool = False
    # Each Keystone, catalog and resmgr request (connect, and each read) is bounded by this.
    timeout_seconds: Seconds = 30


class NfsSettings(_Model):
    """An NFS share mounted by the operator at the same path on every image-library host."""

    server: Name | None = None
    export: Name | None = None
    mount_path: AbsolutePath = DEFAULT_MOUNT_PATH
    # Environment variable holding the mount path: the lab's store path depends on its state dir.
    mount_path_env: Name | None = None
    mount_options: str | None = None


class CinderSettings(_Model):
    """The Block Storage backend: images are Cinder volumes of this volume type."""

    volume_type: Name
    extra_specs: dict[str, str] = Field(default_factory=dict)


class LocalSettings(_Model):
    """A host-local directory: not shared, so not HA (the policy pack and providers flag it)."""

    path: AbsolutePath = DEFAULT_MOUNT_PATH


class StorageSettings(_Model):
    """The image store backend the image-library hosts share."""

    backend: Literal["nfs", "cinder", "local"]
    nfs: NfsSettings | None = None
    cinder: CinderSettings | None = None
    local: LocalSettings | None = None
    # A store change on a live library is refused unless this names the new target (path or volume
    # type): the operator says the data has been migrated.
    acknowledge_migration_to: Name | None = None

    @property
    def mount_path(self) -> str | None:
        """The path every host mounts the store at (None for Cinder)."""
        if self.backend == "nfs":
            return (self.nfs or NfsSettings()).mount_path
        if self.backend == "local":
            return (self.local or LocalSettings()).path
        return None

    @property
    def volume_type(self) -> str | None:
        return self.cinder.volume_type if self.backend == "cinder" and self.cinder else None


class HostSettings(_Model):
    """One image-library host, by resmgr host id or hostname, with what the operator believes of it."""

    id: Name | None = None
    hostname: Name | None = None
    region: Name | None = None
    mount_path: AbsolutePath | None = None

    @property
    def host(self) -> str:
        """The host reference as configured: the resmgr id when given, else the hostname."""
        return self.id or self.hostname or ""

    def as_prop(self) -> dict[str, Any]:
        """``{host, region, mount_path}``: the shape the components, providers and policies read."""
        return {"host": self.host, "region": self.region, "mount_path": self.mount_path}


class RoleSettings(_Model):
    """Deadlines for assigning the image-library role (defaults from the PCD Terraform provider)."""

    converge_timeout_seconds: Seconds = 1800
    failed_grace_seconds: Seconds = 120
    conflict_timeout_seconds: Seconds = 600
    poll_interval_seconds: Seconds = 5


class HealthSettings(_Model):
    """What counts as a healthy image library, and how long to wait for it."""

    min_healthy_hosts: Annotated[int, Field(ge=1)] | None = None
    probe_timeout_seconds: Seconds = 5
    deadline_seconds: Seconds = 120
    service_unit: Name = DEFAULT_SERVICE_UNIT
    log_path: AbsolutePath = DEFAULT_LOG_PATH
    canary: bool = True
    audit_images: bool = False


# hostAccess: resolved (secrets, files, environment) by settings.host_access.
class ProxySettings(_Model):
    """A bastion the SSH connections go through (same key and host-key checks as the hosts)."""

    host: Name
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: Name | None = None


class HostAccessSettings(_Model):
    """SSH access to the image-library hosts, for the service, log, config and mount checks."""

    user: Name = "root"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # 22, or what sshConfig says
    private_key: SecretStr | None = None
    private_key_env: Name | None = None
    private_key_password: SecretStr | None = None
    agent_socket_path: AbsolutePath | None = None
    host_key: Name | None = None
    known_hosts: AbsolutePath | None = None
    known_hosts_env: Name | None = None
    # An OpenSSH client config (Host blocks: HostName, Port, User): how each hostname is reached.
    ssh_config: AbsolutePath | None = None
    ssh_config_env: Name | None = None
    proxy: ProxySettings | None = None
    per_dial_timeout: Seconds = 15
    dial_error_limit: Annotated[int, Field(ge=1)] = 10
    # Run the checks through `sudo -n -u <sudo>` (the SSH user then needs no root login).
    sudo: Name | None = None
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8


class ImageSettings(_Model):
    """One image to create through the image library, failing over across hosts."""

    name: Name
    source: Name
    disk_format: Literal[
        "raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "ari", "aki", "ploop"
    ] = "raw"
    container_format: Literal["bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed"] = "bare"
    visibility: Literal["private", "shared", "community", "public"] = "private"
    properties: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    key: Name | None = None
    # sha256 of a URL source's bytes, "sha256:<64 hex digits>": pins what the URL must serve.
    digest: Annotated[str, AfterValidator(_sha256_digest)] | None = None
    # How a URL's bytes reach the store: uploaded by the client, or pulled by the host itself.
    import_method: Literal["upload", "web-download", "auto"] = "upload"
    # Bound of one host's web-download: nothing tells a slow download from a stalled one.
    import_timeout_seconds: Seconds = 1800
    protect: bool | None = None


class StackSettings(_Model):
    """The whole ``pcd-imagelib-ha`` stack config, validated."""

    lab: bool = False
    cloud: CloudSettings
    storage: StorageSettings
    hosts: list[HostSettings]
    roles: RoleSettings = Field(default_factory=RoleSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    images: list[ImageSettings] = Field(default_factory=list)
    host_access: HostAccessSettings | None = None
    # Resolved by ``parse_settings`` from cloud.password/passwordEnv and cloud.authUrl/authUrlEnv:
    # private attributes, so no config key can set them.
    _password: SecretStr | None = PrivateAttr(default=None)
    _auth_url: str = PrivateAttr(default="")

    @property
    def region(self) -> str:
        return self.cloud.region or ""

    def host_props(self) -> list[dict[str, Any]]:
        return [h.as_prop() for h in self.hosts]

    def image_protected(self, image: ImageSettings) -> bool:
        """Outside the lab images are protected unless the operator says otherwise."""
        return image.protect if image.protect is not None else not self.lab

    def cloud_access(self) -> dict[str, Any]:
        """The cloud access (keys of ``client.session.CloudAccess``), secrets in plain text.

        Only the explicit pulumi-openstack provider takes it from the program (wrapped as secrets); the
        dynamic providers read the same config themselves in ``configure()``
        (:func:`cloud_access_from_config`).
        """
        return access_dict(self.cloud, self._auth_url, self._password)


def access_dict(cloud: CloudSettings, auth_url: str, password: SecretStr | None) -> dict[str, Any]:
    secret = cloud.application_credential_secret
    return {
        "auth_url": auth_url,
        "region": cloud.region,
        "username": cloud.username,
        "password": password.get_secret_value() if password else None,
        "project_name": cloud.project_name,
        "project_domain_name": cloud.project_domain_name,
        "user_domain_name": cloud.user_domain_name,
        "application_credential_id": cloud.application_credential_id,
        "application_credential_secret": secret.get_secret_value() if secret else None,
        "ca_bundle": cloud.ca_bundle,
        "insecure": cloud.insecure,
        "timeout": cloud.timeout_seconds,
    }

