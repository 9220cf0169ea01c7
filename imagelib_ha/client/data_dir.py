"""The one rule for a file store's data dir, used by the role check and the health check alike.

A host's Glance file store must keep its images in the shared mount path itself
(``filesystem_store_datadir = <mount path>``): the blueprint's ``imageLibraryStorage`` is that path,
and Glance records each image's absolute location under it, so any other layout on one host (a
subdirectory included) gives that host locations the other hosts do not share.
"""

from __future__ import annotations

import posixpath


def same_data_dir(actual: str | None, mount_path: str) -> bool:
    """Whether a host's reported data dir is the mount path (trailing slashes and ``..`` normalised)."""
    if not actual:
        return False
    return posixpath.normpath(str(actual)) == posixpath.normpath(mount_path)
