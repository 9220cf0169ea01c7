"""``hostAccess``: how the host checks reach each image-library host over SSH.

Keys are named after pulumi-command's SSH connection where they overlap (``user``, ``port``,
``privateKey``, ``privateKeyPassword``, ``agentSocketPath``, ``hostKey``, ``proxy``,
``perDialTimeout``, ``dialErrorLimit``). Host keys are verified by default: ``hostKey`` (one key every
host presents) or ``knownHosts`` (a known_hosts file; default ``~/.ssh/known_hosts``). An unknown or
changed key is an error naming the host, never accepted silently.

Secrets (``privateKey``, ``privateKeyPassword``) are resolved here, in the process that runs the checks
(a provider's ``configure()``, or ``doctor``), never passed as resource inputs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imagelib_ha.settings.errors import Issue, SettingsError, config_key, issue_from_error
from imagelib_ha.settings.sections import HostAccessSettings

KEY = "hostAccess"


def _env_value(env: Mapping[str, str], name: str | None, key: str, what: str,
               issues: list[Issue]) -> str | None:
    if name is None:
        return None
    value = env.get(name)
    if not value:
        issues.append(Issue(f"{KEY}.{key}", f"names the environment variable {name}, which is not set",
                            f"export {name} with {what} (for the lab: "
                            '`eval "$(.venv/bin/python -m imagelib_ha.deploy env)"`)'))
    return value or None


def _readable_file(path: str | None, key: str, what: str, issues: list[Issue]) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        issues.append(Issue(f"{KEY}.{key}", f"{path} is not a readable file", f"give the path of {what}"))
        return None
    return path


def resolve_host_access(settings: HostAccessSettings, env: Mapping[str, str]) -> dict[str, Any]:
    """The access the probe uses (keys of ``client.host_access.HostAccess``), secrets in plain text;
    raises ``SettingsError`` naming each bad key."""
    issues: list[Issue] = []
    if settings.private_key is not None and settings.private_key_env is not None:
        issues.append(Issue(f"{KEY}.privateKey", "is set together with privateKeyEnv",
                            "keep one of privateKey and privateKeyEnv"))
    key_text = (settings.private_key.get_secret_value() if settings.private_key else None) or _env_value(
        env, settings.private_key_env, "privateKeyEnv", "the private key (PEM/OpenSSH text)", issues)
    if key_text is None and settings.agent_socket_path is None and not issues:
        issues.append(Issue(KEY, "has no private key and no agent socket",
                            "set hostAccess.privateKey (secret), privateKeyEnv or agentSocketPath"))
    passphrase = settings.private_key_password.get_secret_value() if settings.private_key_password else None
    if key_text is not None:
        issues += _key_problems(key_text, passphrase)
    if settings.host_key is not None and (settings.known_hosts or settings.known_hosts_env):
        issues.append(Issue(f"{KEY}.hostKey", "is set together with knownHosts",
                            "keep one: hostKey (one key every host presents) or a known_hosts file"))
    known: str | None = None
    if settings.host_key is None:
        if settings.known_hosts is not None:
            known = _readable_file(settings.known_hosts, "knownHosts", "a known_hosts file", issues)
        elif settings.known_hosts_env is not None:
            path = _env_value(env, settings.known_hosts_env, "knownHostsEnv", "a known_hosts path",
                              issues)
            known = path and _readable_file(path, "knownHostsEnv", "a known_hosts file", issues)
        else:
            # OpenSSH's own default: host keys are verified even when nothing is configured.
            default = str(Path(env.get("HOME") or Path.home()) / ".ssh" / "known_hosts")
            known = _readable_file(default, "knownHosts", "a known_hosts file listing every host's key "
                                   "(none is configured, so OpenSSH's default is used)", issues)
    if settings.host_key is not None:
        issues += _host_key_problems(settings.host_key)
    ssh_config = settings.ssh_config and _readable_file(settings.ssh_config, "sshConfig",
                                                        "an OpenSSH client config", issues)
    if settings.ssh_config_env is not None:
        path = _env_value(env, settings.ssh_config_env, "sshConfigEnv", "an ssh_config path",
                          issues)
        ssh_config = path and _readable_file(path, "sshConfigEnv", "an OpenSSH client config", issues)
    if issues:
        raise SettingsError(issues)
    proxy = settings.proxy
    return {
        "user": settings.user, "port": settings.port, "private_key": key_text,
        "private_key_password": passphrase, "agent_socket_path": settings.agent_socket_path,
        "host_key": settings.host_key, "known_hosts": known, "ssh_config": ssh_config,
        "proxy": ({"host": proxy.host, "port": proxy.port, "user": proxy.user or settings.user}
                  if proxy else None),
        "per_dial_timeout": settings.per_dial_timeout, "dial_error_limit": settings.dial_error_limit,
        "sudo": settings.sudo, "concurrency": settings.concurrency,
    }


def _key_problems(key_text: str, passphrase: str | None) -> list[Issue]:
    import asyncssh  # only when a key is configured

    try:
        asyncssh.import_private_key(key_text, passphrase)
    except asyncssh.KeyEncryptionError:
        return [Issue(f"{KEY}.privateKeyPassword", "does not decrypt the private key",
                      "set the key's passphrase as a secret: pulumi config set --secret --path "
                      "hostAccess.privateKeyPassword ...")]
    except (asyncssh.KeyImportError, ValueError):
        return [Issue(f"{KEY}.privateKey", "is not a private key asyncssh/OpenSSH can read (hidden: it is a "
                      "secret)", "give the whole key file's text, BEGIN and END lines included")]
    return []


def _host_key_problems(text: str) -> list[Issue]:
    import asyncssh

    try:
        asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError):
        return [Issue(f"{KEY}.hostKey", f"{text[:40]!r} is not an SSH public key",
                      "give the host key as in known_hosts: '<type> <base64>', e.g. ssh-ed25519 AAAA...")]
    return []


def host_access_from_config(
    raw: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """``pcd-imagelib-ha:hostAccess`` from stack config as the engine sends it (None when not set)."""
    import json

    value = raw.get(config_key(KEY), raw.get(KEY))
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SettingsError([Issue(KEY, "must be an object, got a plain string",
                                       "write an object in the stack file")]) from None
    try:
        settings = HostAccessSettings.model_validate(value)
    except ValidationError as exc:
        issues = [issue_from_error({**e, "loc": (KEY, *e["loc"])}) for e in exc.errors()]
        raise SettingsError(issues) from None
    return resolve_host_access(settings, os.environ if env is None else env)
