"""Labs the benchmarks start for themselves, each in its own temp state dir, always stopped after."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from lab.api import Lab


@contextmanager
def temp_lab(hosts: int, *, label: str) -> Iterator[Lab]:
    """A lab of ``hosts`` RegionOne hosts (no RegionTwo host), every one holding the role and serving."""
    state_dir = Path(tempfile.mkdtemp(prefix=f"pcd-bench-{label}-"))
    lab = Lab(state_dir)
    try:
        lab.up(hosts=hosts, region_two_hosts=0)
        grant_all(lab, [h["name"] for h in lab.status()["hosts"]])
        yield lab
    finally:
        pg_dir: Path | None = None
        try:
            pg_dir = Path(lab.config.pg_dir)
        except Exception:  # noqa: BLE001 - no config: nothing beyond state_dir was created
            pg_dir = None
        lab.down()
        shutil.rmtree(state_dir, ignore_errors=True)
        if pg_dir is not None and not pg_dir.is_relative_to(state_dir):
            shutil.rmtree(pg_dir, ignore_errors=True)


def grant_all(lab: Lab, names: list[str]) -> None:
    # Each grant starts a Glance (seconds of CPU); side by side they overlap their waits.
    errors: list[BaseException] = []

    def grant(name: str) -> None:
        try:
            lab.grant_role(name)
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=grant, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def admin_session(status: dict[str, Any]) -> ks_session.Session:
    a = status["admin"]
    auth = v3.Password(auth_url=status["auth_url"], username=a["username"], password=a["password"],
                       project_name=a["project_name"], user_domain_name=a["user_domain_name"],
                       project_domain_name=a["project_domain_name"])
    return ks_session.Session(auth=auth)
