"""Where the cloud section's credentials come from: the stack config, a clouds.yaml entry, the environment.

``cloud`` may give everything itself, name a clouds.yaml entry (``cloud.cloud``) that fills the keys it
leaves unset, and name environment variables (``authUrlEnv``, ``passwordEnv``) for values kept out of
the stack file. Resolved the same way for the program (``parse_settings``) and for the providers
(``cloud_access_from_config``, in their ``configure()``), each in its own process and environment;
the other sections never take part, so a provider never fails on a key only the program reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from imagelib_ha.settings.errors import Issue
from imagelib_ha.settings.sections import CloudSettings, url_problem


def resolve_secret_sources(
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
            problem = url_problem(auth_url)
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


# clouds.yaml auth keys and the cloud settings they fill.
_CLOUDS_YAML_AUTH = {
    "auth_url": "auth_url",
    "username": "username",
    "password": "password",
    "project_name": "project_name",
    "project_domain_name": "project_domain_name",
    "user_domain_name": "user_domain_name",
    "application_credential_id": "application_credential_id",
    "application_credential_secret": "application_credential_secret",
}
_SECRET_SETTINGS = frozenset({"password", "application_credential_secret"})


def from_clouds_yaml(cloud: CloudSettings) -> tuple[CloudSettings, list[Issue]]:
    """``cloud`` with every key it leaves unset filled from its clouds.yaml entry (``cloud.cloud``).

    openstacksdk's own loader reads the entry, so clouds.yaml, secure.yaml and their usual locations
    (``OS_CLIENT_CONFIG_FILE``, ``~/.config/openstack``, ``/etc/openstack``) work as with the
    ``openstack`` client. Keys set in the stack config win.
    """
    issues: list[Issue] = []
    if cloud.cloud is None:
        if cloud.region is None:
            issues.append(Issue("cloud.region", "is required but not set",
                                "pulumi config set --path cloud.region <region name>"))
        return cloud, issues
    # Imported here: only this path needs openstacksdk's config loader.
    from openstack.config import OpenStackConfig
    from openstack.config.exceptions import OpenStackConfigException

    try:
        entry = OpenStackConfig().get_one(cloud=cloud.cloud, region_name=cloud.region)
    except OpenStackConfigException as exc:
        return cloud, [Issue("cloud.cloud", f"names the clouds.yaml entry {cloud.cloud!r}: {exc}",
                             "check the entry name and the clouds.yaml location (OS_CLIENT_CONFIG_FILE)")]
    explicit = cloud.model_fields_set
    fill: dict[str, Any] = {}
    for auth_key, field in _CLOUDS_YAML_AUTH.items():
        value = (entry.auth or {}).get(auth_key)
        if value and field not in explicit:
            fill[field] = SecretStr(str(value)) if field in _SECRET_SETTINGS else str(value)
    if "region" not in explicit and entry.region_name:
        fill["region"] = entry.region_name
    cacert = entry.config.get("cacert")
    if "ca_bundle" not in explicit and cacert:
        fill["ca_bundle"] = str(cacert)
    if "insecure" not in explicit and entry.config.get("verify") is False:
        fill["insecure"] = True
    resolved = cloud.model_copy(update=fill)
    if resolved.region is None:
        issues.append(Issue("cloud.region", f"is set neither here nor in clouds.yaml entry {cloud.cloud!r}",
                            "pulumi config set --path cloud.region <region name>"))
    return resolved, issues
