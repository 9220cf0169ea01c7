"""The lifecycle suite's stack: one per module, on the session lab, its roles and images taken back at
the end whatever the scenarios left."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import runner
from harness import Lifecycle, checker_for, lab_env

from lab.api import Lab

CONVERGE_SECONDS = 1.0  # the lab's resmgr role convergence (default 4 s): the suite changes roles often


@pytest.fixture(scope="module")
def life(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    before = lab.status()
    # The scenarios assert the exact set of role holders: start from none (an earlier module's
    # fixtures take theirs back; anything left is taken back here).
    for h in before["hosts"]:
        if h["roles"]:
            lab.revoke_role(h["name"])
    previous_converge = float(before["converge_seconds"])
    lab.set_resmgr_options(converge_seconds=CONVERGE_SECONDS)
    root = tmp_path_factory.mktemp("lifecycle")
    with pytest.MonkeyPatch.context() as env:
        for key, value in lab_env(lab).items():
            env.setenv(key, value)
        checker = checker_for(lab)
        checker.remember_foreign_images()
        life = Lifecycle(checker=checker, root=root, images_dir=root / "images", env=env, lab=lab)
        try:
            yield life
        finally:
            _clean_up(lab, life)
            # Where the suite's time goes (shown with -s, and kept beside the stack's state).
            report = "\n".join(f"  {seconds:6.1f}s  {label}" for label, seconds in life.timings)
            (root / "timings.txt").write_text(report + "\n")
            (root / "ups.log").write_text("\n".join(life.printed))
            print(f"\nlifecycle steps ({sum(s for _, s in life.timings):.0f}s in up/down):\n{report}")
            lab.set_resmgr_options(converge_seconds=previous_converge)


def _clean_up(lab: Lab, life: Lifecycle) -> None:
    """Whatever a failed scenario left: the stack's resources, roles, the enrolled fourth host."""
    if runner.manifest_file(life.root, life.stack).exists() and life.current is not None:
        with contextlib.suppress(Exception):
            runner.down(life.current, stack=life.stack, root=life.root)
    life.remove_leftovers()
    for name in life.added_hosts:
        with contextlib.suppress(Exception):
            lab.remove_host(name)
