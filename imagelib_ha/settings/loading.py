"""Loading the stack config: decode Pulumi's strings, validate the sections, resolve ``*Env`` keys.

Pulumi hands stack config to the program as strings (objects and arrays as JSON). This module turns
the ``pcd-imagelib-ha:*`` keys into the models of ``sections`` and reports every malformed value as one
line naming the key the way the operator writes it (``pcd-imagelib-ha:storage.nfs.mountPath``).
Where the cloud credentials come from is :mod:`~imagelib_ha.settings.cloud_credentials`; the checks that
read several fields together are :mod:`~imagelib_ha.settings.consistency`.

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
from typing import Any

import pulumi
from pydantic import ValidationError

from imagelib_ha.settings.cloud_credentials import from_clouds_yaml, resolve_secret_sources
from imagelib_ha.settings.consistency import consistency_issues
from imagelib_ha.settings.errors import (
    ARRAY_KEYS,
    BOOLEAN_KEYS,
    DEFAULT_MOUNT_PATH,
    OBJECT_KEYS,
    PROJECT,
    TOP_LEVEL_KEYS,
    Issue,
    SettingsError,
    config_key,
    issue_from_error,
)
from imagelib_ha.settings.host_access import resolve_host_access
from imagelib_ha.settings.sections import (
    CloudSettings,
    StackSettings,
    StorageSettings,
    access_dict,
)


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
        raise SettingsError([issue_from_error(e) for e in exc.errors()]) from None
    cloud, issues = from_clouds_yaml(settings.cloud)
    settings = settings.model_copy(update={"cloud": cloud})
    auth_url, password, secret_issues = resolve_secret_sources(cloud, environ)
    storage, storage_issues = _resolve_mount_path_env(settings.storage, environ)
    issues += secret_issues + storage_issues + consistency_issues(settings)
    if settings.host_access is not None:
        # Checked here too, so a bad key or known_hosts file stops the program before any request.
        try:
            resolve_host_access(settings.host_access, environ)
        except SettingsError as exc:
            issues += exc.issues
    if not settings.lab and auth_url.startswith("http://"):
        issues.append(Issue(
            "cloud.authUrl",
            "is a plain http:// URL: the password and every token would cross the network unencrypted",
            "use the region's https:// Keystone URL (only a lab, pcd-imagelib-ha:lab: true, may use http)",
        ))
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
            [issue_from_error({**e, "loc": ("cloud", *e["loc"])}) for e in exc.errors()]
        ) from None
    cloud, issues = from_clouds_yaml(cloud)
    auth_url, password, secret_issues = resolve_secret_sources(cloud, environ)
    issues += secret_issues
    if issues:
        raise SettingsError(issues)
    return access_dict(cloud, auth_url, password)


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
