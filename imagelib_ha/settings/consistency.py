"""Cross-field checks: malformed combinations that pydantic's per-field rules cannot see.

Each section model validates its own fields (:mod:`imagelib_ha.settings.sections`); what only shows
when several fields are read together is judged here, once the sections validated: a cinder backend
without its volume type, a host named by both or neither of id and hostname or listed twice, images
sharing a name, a key or a resource name, a URL source that may carry a credential or is not pinned by
digest, web-download of a local file, more healthy hosts required than listed. Like the rest of
loading, these refuse only malformed config: HA prerequisites are judged by the policy pack and the
providers' ``check`` (see :mod:`imagelib_ha.settings.loading`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from imagelib_ha.names import resource_slug
from imagelib_ha.settings.errors import Issue, redact_url
from imagelib_ha.settings.sections import StackSettings, url_problem


def consistency_issues(s: StackSettings) -> list[Issue]:
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
        problem = url_problem(redact_url(image.source)) if "://" in image.source else None
        if problem:
            issues.append(
                Issue(f"images[{index}].source", problem, "use a local file path or an http(s) URL")
            )
        elif "://" in image.source and _carries_credential(image.source):
            issues.append(Issue(
                f"images[{index}].source",
                "is a URL with user info, a query or a fragment, which may carry a credential: inputs are "
                "kept in the stack's state",
                "serve the image at a URL that needs no credential (a mirror, or a local file)",
            ))
        elif "://" in image.source and image.digest is None:
            issues.append(Issue(
                f"images[{index}].digest",
                "is required for a URL source: the bytes behind a URL can change",
                "set it to sha256:<hex> of the file the URL serves (sha256sum), so a changed upstream "
                "file is an error and not a silent re-upload",
            ))
        if "://" not in image.source and image.import_method == "web-download":
            issues.append(Issue(
                f"images[{index}].importMethod",
                "is web-download, but the source is a local file: a host can only pull a URL",
                "remove importMethod (upload), or give the image's http(s) URL as its source",
            ))
    issues += _image_identity_issues(s)
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


def _carries_credential(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.username or parts.password or parts.query or parts.fragment)


def _image_identity_issues(s: StackSettings) -> list[Issue]:
    """Two images may not share an explicit key, nor resource names (names are slugged for URNs)."""
    issues: list[Issue] = []
    keys: dict[str, int] = {}
    slugs: dict[str, int] = {}
    for index, image in enumerate(s.images):
        if image.key is not None:
            if image.key in keys:
                issues.append(Issue(
                    f"images[{index}].key",
                    f"repeats the key of images[{keys[image.key]}]: one key is one image, and the two "
                    "resources would fight over it",
                    "give each image its own key, or remove the key to use the default",
                ))
            keys.setdefault(image.key, index)
        slug = resource_slug(image.name)
        if slug in slugs and s.images[slugs[slug]].name != image.name:
            issues.append(Issue(
                f"images[{index}].name",
                f"{image.name!r} and images[{slugs[slug]}].name {s.images[slugs[slug]].name!r} give the same "
                f"resource name ({slug!r})",
                "rename one of them (names differing only in spaces or punctuation collide)",
            ))
        slugs.setdefault(slug, index)
    return issues
