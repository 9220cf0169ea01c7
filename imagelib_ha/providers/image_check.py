"""The ``check`` of ``FailoverImage``: every input judged before anything is touched, naming the input.

Unknowns (preview) pass. Numbers may arrive as protobuf doubles (``3`` as ``3.0``). No message echoes a
URL: a URL source is refused when it carries user info or a query (either may hold a credential, and
inputs are stored in state), and that message does not repeat it.

Kept free of import-time side effects: the provider process imports this module by name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi.dynamic import CheckFailure

from imagelib_ha.client.health import CANARY_PROPERTY
from imagelib_ha.client.image_format import format_problem
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY
from imagelib_ha.client.image_source import file_sha256, is_url, parse_digest, url_credential_problem
from imagelib_ha.client.web_download import IMPORT_METHODS
from imagelib_ha.providers.common import contains_unknown, is_unknown

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
# Image attributes Glance owns or this project uses: not settable as custom properties.
RESERVED_PROPERTIES = frozenset({
    "id", "name", "status", "visibility", "tags", "disk_format", "container_format", "size",
    "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "owner", "created_at", "updated_at",
    "locations", "direct_url", "self", "file", "schema", "protected", "os_hidden", "min_disk", "min_ram",
    "stores", KEY_PROPERTY, OWNER_PROPERTY, CANARY_PROPERTY,
})


# -- facts about a local file, cached: check runs at every preview and a large image takes seconds ----

_FACTS: dict[tuple[Any, ...], Any] = {}
_FACTS_LOCK = threading.Lock()


def _cached(path: str, what: str, compute: Any) -> Any:
    stat = os.stat(path)
    cache_key = (what, os.path.abspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _FACTS_LOCK:
        if cache_key in _FACTS:
            return _FACTS[cache_key]
    value = compute()
    with _FACTS_LOCK:
        _FACTS[cache_key] = value
    return value


def cached_file_sha256(path: str) -> str:
    """:func:`file_sha256`, remembered per (path, size, mtime, inode)."""
    digest: str = _cached(path, "sha256", lambda: file_sha256(path))
    return digest


def cached_format_problem(path: str, disk_format: str) -> str | None:
    """:func:`format_problem`, remembered per (path, size, mtime, inode, disk_format)."""
    problem: str | None = _cached(path, f"format:{disk_format}", lambda: format_problem(path, disk_format))
    return problem


# -- the checks --------------------------------------------------------------------------------------


def is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def source_failures(source: Any, digest: Any, disk_format: Any) -> list[CheckFailure]:
    """The source: a readable, non-empty file whose format matches, or a credential-free pinned URL."""
    if is_unknown(source):
        return []
    if not is_str(source):
        return [CheckFailure("source", "must be a local file path or an http(s) URL")]
    if is_url(source):
        problem = url_credential_problem(source)
        if problem:
            return [CheckFailure("source", f"the URL {problem}")]
        if digest is None:
            return [CheckFailure("digest", "a URL source must be pinned: set digest to sha256:<hex digest of "
                                           "the image's bytes> (sha256sum of the file the URL serves)")]
        return []
    if not os.path.isfile(source):
        return [CheckFailure("source", f"file {source!r} does not exist or is not a regular file: give the "
                                       "path of the image file (relative to the project directory) or a URL")]
    if not os.access(source, os.R_OK):
        return [CheckFailure("source", f"file {source!r} is not readable by this user")]
    if os.path.getsize(source) == 0:
        return [CheckFailure("source", f"file {source!r} is empty: an image needs its bytes")]
    if is_unknown(disk_format) or disk_format not in DISK_FORMATS:
        return []
    try:
        problem = cached_format_problem(source, disk_format)
    except OSError as exc:
        return [CheckFailure("source", f"cannot read {source!r}: {exc.strerror}")]
    return [CheckFailure("disk_format", f"file {source!r} {problem}")] if problem else []


def digest_failures(digest: Any) -> list[CheckFailure]:
    if is_unknown(digest) or digest is None:
        return []
    if not isinstance(digest, str) or parse_digest(digest) is None:
        return [CheckFailure("digest", "must be sha256:<64 hex digits> (the sha256 of the image's bytes)")]
    return []


def choice_failures(inputs: Mapping[str, Any], key: str, allowed: Sequence[str], *, optional: bool = False
                    ) -> list[CheckFailure]:
    value = inputs.get(key)
    if is_unknown(value) or (optional and value is None):
        return []
    if value not in allowed:
        suffix = " (or null)" if optional else ""
        return [CheckFailure(key, f"must be one of {', '.join(allowed)}{suffix}")]
    return []


def property_failures(properties: Any) -> list[CheckFailure]:
    if is_unknown(properties):
        return []
    if not isinstance(properties, Mapping):
        return [CheckFailure("properties", "must be a map of property names to string values")]
    failures = []
    for name, value in properties.items():
        if name in RESERVED_PROPERTIES:
            failures.append(CheckFailure("properties", f"{name!r} is set by Glance or by this project and "
                                                       "cannot be a custom property: remove it"))
        elif not is_unknown(value) and not isinstance(value, str):
            failures.append(CheckFailure("properties", f"{name!r} must be a string (quote numbers)"))
    return failures


def tag_failures(tags: Any) -> list[CheckFailure]:
    if is_unknown(tags):
        return []
    if not isinstance(tags, list) or not all(is_unknown(t) or isinstance(t, str) for t in tags):
        return [CheckFailure("tags", "must be a list of strings")]
    return []


def timeout_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    for key in ("connect_timeout", "read_timeout", "import_timeout"):
        value = inputs.get(key)
        if is_unknown(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            failures.append(CheckFailure(key, "must be a number of seconds, more than zero"))
    return failures


def import_method_failures(method: Any, source: Any) -> list[CheckFailure]:
    if is_unknown(method):
        return []
    if method not in IMPORT_METHODS:
        return [CheckFailure("import_method", f"must be one of {', '.join(IMPORT_METHODS)}")]
    if method == "web-download" and is_str(source) and not is_url(source):
        return [CheckFailure("import_method", "web-download needs a URL source (a host cannot pull a local "
                                              "file): use upload, or give the image's URL")]
    return []


def endpoint_failures(endpoints: Any) -> list[CheckFailure]:
    if contains_unknown(endpoints) or endpoints is None:
        return []
    if isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints):
        return []
    return [CheckFailure("endpoints", "must be a list of endpoint URLs (the health resource's endpoints "
                                      "output)")]


def input_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    """Every failure of the image inputs (not the cloud access, which the provider judges)."""
    failures = []
    for key in ("region", "name", "identity"):
        value = inputs[key]
        if not is_unknown(value) and not is_str(value):
            hint = ("set it, or let the program derive <project>/<stack>/<name>" if key == "identity"
                    else "it is required")
            failures.append(CheckFailure(key, f"must be a non-empty string: {hint}"))
    failures += choice_failures(inputs, "disk_format", DISK_FORMATS)
    failures += choice_failures(inputs, "container_format", CONTAINER_FORMATS)
    failures += digest_failures(inputs["digest"])
    if not any(f.property == "digest" for f in failures):
        failures += source_failures(inputs["source"], inputs["digest"], inputs["disk_format"])
    failures += choice_failures(inputs, "visibility", VISIBILITIES, optional=True)
    failures += property_failures(inputs["properties"])
    failures += tag_failures(inputs["tags"])
    failures += timeout_failures(inputs)
    failures += import_method_failures(inputs["import_method"], inputs["source"])
    failures += endpoint_failures(inputs["endpoints"])
    return failures


def content_digest_of(source: str, digest: str | None) -> tuple[str | None, CheckFailure | None]:
    """The sha256 (hex) of the image's bytes: the pin for a URL; for a file its hash, which must equal
    the pin when one is given."""
    pinned = parse_digest(digest) if digest else None
    if is_url(source):
        return pinned, None
    try:
        actual = cached_file_sha256(source)
    except OSError as exc:
        return None, CheckFailure("source", f"cannot read {source!r}: {exc.strerror}")
    if pinned is not None and pinned != actual:
        return None, CheckFailure("digest", f"file {source!r} has sha256 {actual}, not the pinned {pinned}: "
                                            "pin the new bytes, or restore the file")
    return actual, None
