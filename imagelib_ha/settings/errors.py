"""How a malformed stack config is reported: one line per problem, naming the key, what and the fix.

The error is a ``pulumi.RunError``, so the Pulumi language host prints the message without a Python
traceback. No message ever echoes a secret value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pulumi

PROJECT = "pcd-imagelib-ha"
DEFAULT_MOUNT_PATH = "/var/opt/imagelibrary/data"
# The Platform9 HA page names these; field installs use pf9-glance-api and /var/log/pf9/glance-api.log.
DEFAULT_SERVICE_UNIT = "airctl-glance"
DEFAULT_LOG_PATH = "/var/log/airctl/glance.log"

# Top-level keys and the shape Pulumi delivers them in (every value arrives as a string).
OBJECT_KEYS = ("cloud", "storage", "roles", "health", "hostAccess")
ARRAY_KEYS = ("hosts", "images")
BOOLEAN_KEYS = ("lab",)
TOP_LEVEL_KEYS = BOOLEAN_KEYS + OBJECT_KEYS + ARRAY_KEYS

# Keys whose values must never be echoed in a message.
SECRET_FIELDS = frozenset({"password", "applicationCredentialSecret", "privateKey", "privateKeyPassword"})


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


def issue_from_error(error: Mapping[str, Any]) -> Issue:
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



def redact_url(value: str) -> str:
    """``value`` without URL user info or query, either of which may carry a credential."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
