"""The stack config of a pcd-imagelib-ha deployment, validated once into typed settings.

Pulumi hands stack config to the program as strings (objects and arrays as JSON). This module turns
the ``pcd-imagelib-ha:*`` keys into pydantic models and reports every malformed value as one line
naming the key the way the operator writes it (``pcd-imagelib-ha:storage.nfs.mountPath``), what is
wrong and how to fix it. The error is a ``pulumi.RunError``, so the Pulumi language host prints the
message without a Python traceback.

Only malformed config is refused here. HA prerequisites (hosts in two regions, ``local`` storage with
several hosts, differing mount paths, fewer than two hosts) are well-formed config that would make a
poor deployment: the policy pack refuses them at preview and the providers' ``check`` at apply, so that
gate is in one place per phase and both are tested.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

PROJECT = "pcd-imagelib-ha"
DEFAULT_MOUNT_PATH = "/var/opt/imagelibrary/data"
# The Platform9 HA page names these; field installs use pf9-glance-api and /var/log/pf9/glance-api.log.
DEFAULT_SERVICE_UNIT = "airctl-glance"
DEFAULT_LOG_PATH = "/var/log/airctl/glance.log"

# Top-level keys and the shape Pulumi delivers them in (every value arrives as a string).
OBJECT_KEYS = ("cloud", "storage", "roles", "health")
ARRAY_KEYS = ("hosts", "images")
BOOLEAN_KEYS = ("lab",)
TOP_LEVEL_KEYS = BOOLEAN_KEYS + OBJECT_KEYS + ARRAY_KEYS

# Keys whose values must never be echoed in a message.
SECRET_FIELDS = frozenset({"password", "applicationCredentialSecret"})


def config_key(path: str) -> str:
    """The key as the operator writes it: ``pcd-imagelib-ha:<path>``."""
    return f"{PROJECT}:{path}"


@dataclass(frozen=True)
class Issue:
    """One malformed config value: the key as the operator writes it, what is wrong, how to fix it."""

    path: str
    problem: str
    fix: str

    @property
    def key(self) -> str:
        return config_key(self.path)

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}. Fix: {self.fix}."


class SettingsError(pulumi.RunError):
    """The stack config is malformed; the message lists each problem on its own line, no traceback."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        if len(issues) == 1:
            text = f"invalid stack config: {issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in issues)
            text = f"invalid stack config ({len(issues)} problems):\n{lines}"
        super().__init__(text)

    @property
    def keys(self) -> list[str]:
        return [issue.key for issue in self.issues]


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


def _url_problem(value: str) -> str | None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"{value!r} is not a full URL with an http:// or https:// scheme"
    return None


def _http_url(value: str) -> str:
    problem = _url_problem(value)
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

    auth_url: HttpUrl | None = None
    # Environment variable holding the auth URL: the lab binds free ports, so its URL is not fixed.
    auth_url_env: Name | None = None
    region: Name
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
    # Resolved by ``parse_settings`` from cloud.password/passwordEnv and cloud.authUrl/authUrlEnv:
    # private attributes, so no config key can set them.
    _password: SecretStr | None = PrivateAttr(default=None)
    _auth_url: str = PrivateAttr(default="")

    @property
    def region(self) -> str:
        return self.cloud.region

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
        return _access_dict(self.cloud, self._auth_url, self._password)


def _access_dict(cloud: CloudSettings, auth_url: str, password: SecretStr | None) -> dict[str, Any]:
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
    }


# --- loading ---------------------------------------------------------------------------------------


def _path_of(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _shown(value: Any, path: str) -> str:
    if path.rsplit(".", 1)[-1] in SECRET_FIELDS:
        return "a value (hidden: it is a secret)"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{json.dumps(value)} ({type(value).__name__})"


_TYPE_WORDS = {
    "bool_type": ("must be true or false", "write a YAML boolean without quotes: true or false"),
    "bool_parsing": ("must be true or false", "write a YAML boolean without quotes: true or false"),
    "string_type": ("must be a string", "quote the value in the stack file"),
    "int_type": ("must be a whole number", "write a number without quotes, e.g. 2"),
    "int_from_float": ("must be a whole number", "write a number without a fraction, e.g. 2"),
    "float_type": ("must be a number of seconds", "write a number without quotes, e.g. 30"),
    "list_type": ("must be a list", "write a YAML list (one '- item' per line)"),
    "dict_type": ("must be an object", "write a YAML mapping of keys to values"),
    "model_type": ("must be an object", "write a YAML mapping of keys to values"),
    "model_attributes_type": ("must be an object", "write a YAML mapping of keys to values"),
}


def _issue_from_error(error: Mapping[str, Any]) -> Issue:
    path = _path_of(tuple(error["loc"]))
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        return Issue(path, "is required but not set", f"pulumi config set --path '{path}' <value>")
    if kind == "extra_forbidden":
        return Issue(
            path, "is not a known key", "remove it or correct its spelling (see README, config reference)"
        )
    if kind in _TYPE_WORDS:
        problem, fix = _TYPE_WORDS[kind]
        return Issue(path, f"{problem}, got {_shown(given, path)}", fix)
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return Issue(path, f"{_shown(given, path)} is not allowed", f"use one of {expected}")
    if kind in ("greater_than", "greater_than_equal"):
        limit = error.get("ctx", {})
        bound = limit.get("gt", limit.get("ge"))
        word = "greater than" if kind == "greater_than" else "at least"
        return Issue(
            path, f"must be {word} {bound}, got {_shown(given, path)}", f"use a value {word} {bound}"
        )
    fix = error.get("ctx", {}).get("fix", "correct the value (see README, config reference)")
    return Issue(path, str(error.get("msg", "is invalid")), fix)


def _decode_raw(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """Top-level values arrive as strings; objects and arrays as JSON text."""
    data: dict[str, Any] = {}
    issues: list[Issue] = []
    for name, value in raw.items():
        short = name.split(":", 1)[1] if name.startswith(f"{PROJECT}:") else name
        if ":" in short:
            continue  # another namespace's key (e.g. openstack:*): not ours to judge
        if short not in TOP_LEVEL_KEYS:
            issues.append(Issue(short, "is not a known key", "remove it or correct its spelling"))
            continue
        if isinstance(value, str) and short in OBJECT_KEYS + ARRAY_KEYS:
            try:
                value = json.loads(value)
            except ValueError:
                shape = "an object" if short in OBJECT_KEYS else "a list"
                issues.append(
                    Issue(short, f"must be {shape}, got a plain string", f"write {shape} in the stack file")
                )
                continue
        if isinstance(value, str) and short in BOOLEAN_KEYS:
            # Pulumi stores a top-level YAML boolean as the string "true"/"false".
            if value not in ("true", "false"):
                issues.append(Issue(short, f"must be true or false, got {value!r}", "write true or false"))
                continue
            value = value == "true"
        data[short] = value
    return data, issues


def _resolve_secret_sources(
    cloud: CloudSettings, env: Mapping[str, str]
) -> tuple[str, SecretStr | None, list[Issue]]:
    issues: list[Issue] = []
    auth_url = cloud.auth_url or ""
    if cloud.auth_url is None:
        if cloud.auth_url_env is None:
            issues.append(
                Issue(
                    "cloud.authUrl",
                    "is required but not set",
                    "pulumi config set --path cloud.authUrl https://<region-fqdn>/keystone/v3 "
                    "(or name an environment variable holding it in cloud.authUrlEnv)",
                )
            )
        elif not env.get(cloud.auth_url_env):
            issues.append(
                Issue(
                    "cloud.authUrlEnv",
                    f"names the environment variable {cloud.auth_url_env}, which is not set",
                    f'export {cloud.auth_url_env} (for the lab: eval "$(.venv/bin/python -m lab env)")',
                )
            )
        else:
            auth_url = env[cloud.auth_url_env]
            problem = _url_problem(auth_url)
            if problem:
                issues.append(
                    Issue("cloud.authUrlEnv", f"{cloud.auth_url_env} holds {problem}", "export the full URL")
                )

    password: SecretStr | None = None
    if cloud.application_credential_id:
        if cloud.application_credential_secret is None:
            issues.append(
                Issue(
                    "cloud.applicationCredentialSecret",
                    "is required with cloud.applicationCredentialId but not set",
                    "pulumi config set --secret --path cloud.applicationCredentialSecret <secret>",
                )
            )
        return auth_url, password, issues

    if cloud.password is not None:
        password = cloud.password
    elif cloud.password_env is not None:
        value = env.get(cloud.password_env)
        if value:
            password = SecretStr(value)
        else:
            issues.append(
                Issue(
                    "cloud.passwordEnv",
                    f"names the environment variable {cloud.password_env}, which is not set",
                    f'export {cloud.password_env} (for the lab: eval "$(.venv/bin/python -m lab env)")',
                )
            )
    else:
        issues.append(
            Issue(
                "cloud.password",
                "is not set, and neither is cloud.passwordEnv nor cloud.applicationCredentialId",
                "pulumi config set --secret --path cloud.password <password>, or set cloud.passwordEnv to "
                "the name of an environment variable that holds it",
            )
        )
    for field, path in (("username", "cloud.username"), ("project_name", "cloud.projectName")):
        if getattr(cloud, field) is None:
            issues.append(
                Issue(
                    path,
                    "is required for password authentication but not set",
                    f"pulumi config set --path {path} <value>",
                )
            )
    return auth_url, password, issues


def _consistency_issues(s: StackSettings) -> list[Issue]:
    """Malformed combinations that pydantic's per-field rules cannot see (not HA prerequisites)."""
    issues: list[Issue] = []
    if s.storage.backend == "cinder" and s.storage.cinder is None:
        issues.append(
            Issue(
                "storage.cinder.volumeType",
                "is required when storage.backend is cinder but not set",
                "pulumi config set --path storage.cinder.volumeType <volume type name>",
            )
        )
    if not s.hosts:
        issues.append(
            Issue(
                "hosts",
                "is an empty list",
                "list the image-library hosts (at least two for HA), e.g. [{hostname: host-a}]",
            )
        )
    seen: dict[str, int] = {}
    for index, host in enumerate(s.hosts):
        if (host.id is None) == (host.hostname is None):
            issues.append(
                Issue(
                    f"hosts[{index}]",
                    "must name the host by exactly one of id or hostname",
                    "keep one of the two keys",
                )
            )
            continue
        ref = host.host.lower()
        if ref in seen:
            issues.append(
                Issue(
                    f"hosts[{index}]",
                    f"repeats host {host.host!r} already listed as hosts[{seen[ref]}]",
                    "list each image-library host once",
                )
            )
        else:
            seen[ref] = index
    names: dict[str, int] = {}
    for index, image in enumerate(s.images):
        if image.name in names:
            issues.append(
                Issue(
                    f"images[{index}].name",
                    f"repeats image name {image.name!r} already used by images[{names[image.name]}]",
                    "give each image a unique name",
                )
            )
        else:
            names[image.name] = index
        problem = _url_problem(image.source) if "://" in image.source else None
        if problem:
            issues.append(
                Issue(f"images[{index}].source", problem, "use a local file path or an http(s) URL")
            )
    minimum = s.health.min_healthy_hosts
    if minimum is not None and s.hosts and minimum > len(s.hosts):
        issues.append(
            Issue(
                "health.minHealthyHosts",
                f"is {minimum}, more than the {len(s.hosts)} hosts listed",
                f"use a value between 1 and {len(s.hosts)}, or leave it unset to require all",
            )
        )
    return issues


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> StackSettings:
    """Validate stack config given as Pulumi delivers it (``{"pcd-imagelib-ha:cloud": "<json>", ...}``).

    Keys may also be given without the namespace, and values already decoded. Raises ``SettingsError``.
    """
    environ = os.environ if env is None else env
    data, issues = _decode_raw(raw)
    if issues:
        raise SettingsError(issues)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError([_issue_from_error(e) for e in exc.errors()]) from None
    auth_url, password, issues = _resolve_secret_sources(settings.cloud, environ)
    storage, storage_issues = _resolve_mount_path_env(settings.storage, environ)
    issues += storage_issues + _consistency_issues(settings)
    if issues:
        raise SettingsError(issues)
    resolved = settings.model_copy(update={"storage": storage})
    resolved._password = password
    resolved._auth_url = auth_url
    return resolved


def cloud_access_from_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``pcd-imagelib-ha:cloud`` section of stack config, resolved to cloud access.

    What the dynamic providers call in ``configure()``: ``raw`` is the config the engine sends (keys
    with their namespace, values as strings, secrets decrypted); ``*Env`` keys resolve in ``env`` (the
    provider process inherits the CLI's environment). Only the cloud section is judged here, so a
    provider never fails on a key that only the program reads. Raises ``SettingsError``.
    """
    environ = os.environ if env is None else env
    key = config_key("cloud")
    if raw.get(key) is None:
        raise SettingsError([Issue(
            "cloud", "is not in the stack config the engine sent to the provider",
            "set pcd-imagelib-ha:cloud in the stack (the providers read their credentials from it)",
        )])
    data, issues = _decode_raw({key: raw[key]})
    if issues:
        raise SettingsError(issues)
    try:
        cloud = CloudSettings.model_validate(data["cloud"])
    except ValidationError as exc:
        raise SettingsError(
            [_issue_from_error({**e, "loc": ("cloud", *e["loc"])}) for e in exc.errors()]
        ) from None
    auth_url, password, issues = _resolve_secret_sources(cloud, environ)
    if issues:
        raise SettingsError(issues)
    return _access_dict(cloud, auth_url, password)


def _resolve_mount_path_env(
    storage: StorageSettings, env: Mapping[str, str]
) -> tuple[StorageSettings, list[Issue]]:
    nfs = storage.nfs
    if nfs is None or nfs.mount_path_env is None:
        return storage, []
    value = env.get(nfs.mount_path_env)
    if not value:
        return storage, [
            Issue(
                "storage.nfs.mountPathEnv",
                f"names the environment variable {nfs.mount_path_env}, which is not set",
                f"export {nfs.mount_path_env} (for the lab: .venv/bin/python -m imagelib_ha.deploy sets it)",
            )
        ]
    if not value.startswith("/"):
        return storage, [
            Issue(
                "storage.nfs.mountPathEnv",
                f"{nfs.mount_path_env} holds the relative path {value!r}",
                f"export an absolute path, e.g. {DEFAULT_MOUNT_PATH}",
            )
        ]
    resolved = nfs.model_copy(update={"mount_path": posixpath.normpath(value)})
    return storage.model_copy(update={"nfs": resolved}), []


def _configured_keys() -> set[str]:
    """Every ``pcd-imagelib-ha:*`` key the stack sets, so a misspelt top-level key is reported too."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(pulumi.runtime.get_config_env() or {})
    return {k for k in keys if k.startswith(f"{PROJECT}:")} | {config_key(n) for n in TOP_LEVEL_KEYS}


def load_settings() -> StackSettings:
    """Read and validate this stack's ``pcd-imagelib-ha:*`` config from the running Pulumi program."""
    raw: dict[str, Any] = {}
    for key in sorted(_configured_keys()):
        value = pulumi.runtime.get_config(key)
        if value is not None:
            raw[key] = value
    settings = parse_settings(raw)
    cloud_key = config_key("cloud")
    if settings.cloud.password is not None and not pulumi.runtime.is_config_secret(cloud_key):
        pulumi.log.warn(
            f"{cloud_key}.password is stored in plain text in the stack file: set it with "
            "`pulumi config set --secret --path cloud.password ...` (or use cloud.passwordEnv)"
        )
    return settings
