"""The stack config of a pcd-imagelib-ha deployment, validated once into typed settings.

``sections`` holds the models, ``loading`` turns the config Pulumi delivers into them (the cloud
credentials through ``cloud_credentials``), ``consistency`` judges what only shows across fields,
``errors`` says what is wrong and how to fix it. Import from here.
"""

from imagelib_ha.settings.errors import (
    DEFAULT_LOG_PATH,
    DEFAULT_MOUNT_PATH,
    DEFAULT_SERVICE_UNIT,
    PROJECT,
    Issue,
    SettingsError,
    config_key,
)
from imagelib_ha.settings.host_access import host_access_from_config, resolve_host_access
from imagelib_ha.settings.loading import cloud_access_from_config, load_settings, parse_settings
from imagelib_ha.settings.sections import (
    CinderSettings,
    CloudSettings,
    HealthSettings,
    HostAccessSettings,
    HostSettings,
    ImageSettings,
    LocalSettings,
    NfsSettings,
    RoleSettings,
    StackSettings,
    StorageSettings,
)

__all__ = [
    "DEFAULT_LOG_PATH",
    "DEFAULT_MOUNT_PATH",
    "DEFAULT_SERVICE_UNIT",
    "PROJECT",
    "CinderSettings",
    "CloudSettings",
    "HealthSettings",
    "HostAccessSettings",
    "HostSettings",
    "ImageSettings",
    "Issue",
    "LocalSettings",
    "NfsSettings",
    "RoleSettings",
    "SettingsError",
    "StackSettings",
    "StorageSettings",
    "cloud_access_from_config",
    "config_key",
    "host_access_from_config",
    "load_settings",
    "parse_settings",
    "resolve_host_access",
]
