"""The lifecycle scenarios' vocabulary: a deployed stack, stack configs built from the lab stack file,
and one ``deploy`` that runs ``up``, asserts the real state with the independent checker, then
``preview`` (which must show only ``same``)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import runner
import yaml
from checker import Access, Checker, Snapshot, Watch
from runner import Deployment, Step

from lab.api import Lab

REPO = Path(__file__).resolve().parents[2]
PREFIX = "pcd-imagelib-ha:"
# The lab stack's three hosts; the lab's fourth RegionOne host is enrolled by the add-host scenario.
HOSTNAMES = ("lab-host-1.lab.local", "lab-host-2.lab.local", "lab-host-3.lab.local")
IMAGE_A, IMAGE_B = "lc-alpha", "lc-bravo"


def write_image(path: Path, size: int, seed: str) -> Path:
    """``size`` deterministic bytes derived from ``seed`` (not block-aligned, so truncation shows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = b"".join(hashlib.sha512(f"{seed}:{i}".encode()).digest() for i in range(64))
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


def base_config(images_dir: Path) -> dict[str, Any]:
    """Pulumi.lab.yaml (auth URL, password and mount path from the lab's environment variables),
    with two tiny images of this suite's own and fast role polling."""
    stack_file = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text())["config"]
    config: dict[str, Any] = {k.removeprefix(PREFIX): v for k, v in stack_file.items()}
    config["hosts"] = [{"hostname": h} for h in HOSTNAMES]
    config["roles"] = {"pollIntervalSeconds": 1, "convergeTimeoutSeconds": 120}
    # A short deadline: a scenario that leaves hosts unhealthy fails in half a minute, not two.
    config["health"] = {"probeTimeoutSeconds": 5, "deadlineSeconds": 30}
    config["images"] = [
        {"name": IMAGE_A, "source": str(write_image(images_dir / "v1" / f"{IMAGE_A}.raw", 4099, "alpha")),
         "diskFormat": "raw", "containerFormat": "bare", "properties": {"purpose": "lifecycle"},
         "tags": ["lifecycle"]},
        {"name": IMAGE_B, "source": str(write_image(images_dir / "v1" / f"{IMAGE_B}.raw", 6151, "bravo")),
         "tags": ["lifecycle"]},
    ]
    return config


def lab_env(lab: Lab) -> dict[str, str]:
    """What `make up` exports for the lab stack: address, admin password, store path."""
    return {**lab.env(), "PCD_LAB_STORE_PATH": str(lab.status()["store_path"])}


def checker_for(lab: Lab) -> Checker:
    """A checker logged in as the lab's admin (with the password the lab holds now)."""
    st = lab.status()
    admin = st["admin"]
    return Checker(Access(auth_url=st["auth_url"], username=admin["username"], password=admin["password"],
                          project_name=admin["project_name"], region=st["region"],
                          user_domain_name=admin["user_domain_name"],
                          project_domain_name=admin["project_domain_name"]))


def image_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in config["images"] if i["name"] == name)


def changed(config: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(config)


def move_file(source: str, folder: Path) -> str:
    """The same bytes under another folder: what an operator does when reorganising images."""
    target = folder / Path(source).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return str(target)


def ops(steps: Iterable[Step], type_: str, name: str | None = None) -> list[str]:
    """The ops on resources of ``type_`` (and, for images, whose resource name holds ``name``)."""
    return sorted(s.op for s in steps if s.type == type_ and (name is None or name in s.name))


def changes(steps: Iterable[Step]) -> Counter[tuple[str, str]]:
    """(short type, op) of every step that is not ``same``."""
    return Counter((s.type.rsplit(":", 1)[-1], s.op) for s in steps if s.op != "same")


@dataclass
class Lifecycle:
    """One stack deployed through the scenarios of a module, and what it last converged to."""

    checker: Checker
    root: Path
    images_dir: Path
    lab: Lab
    env: pytest.MonkeyPatch  # the lab stack's environment variables, for the module
    stack: str = "lifecycle"
    added_hosts: list[str] = field(default_factory=list)  # enrolled in the lab by a scenario
    current: dict[str, Any] | None = None
    dirty: bool = False  # a step failed before the checker confirmed the region: repair first
    timings: list[tuple[str, float]] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)  # what each up printed, for the module's log

    def up(self, config: dict[str, Any], label: str = "up") -> Deployment:
        started = time.monotonic()
        self.dirty = True
        try:
            deployment = runner.up(config, stack=self.stack, root=self.root)
            self.printed.append(f"== {label}\n{deployment.printed}")
            return deployment
        except Exception as exc:
            notes = "\n".join(getattr(exc, "__notes__", []))
            self.printed.append(f"== {label} FAILED: {type(exc).__name__}: {exc}\n{notes}")
            raise
        finally:
            self.timings.append((label, round(time.monotonic() - started, 1)))

    def converged(self, config: dict[str, Any]) -> Snapshot:
        started = time.monotonic()
        try:
            seen = self.checker.assert_converged(config, self.stack)
        finally:
            self.timings.append(("  checker", round(time.monotonic() - started, 1)))
        self.current, self.dirty = config, False
        return seen

    def preview(self, config: dict[str, Any]) -> list[Step]:
        return runner.preview(config, stack=self.stack, root=self.root)

    def refresh(self, config: dict[str, Any]) -> list[runner.Drift]:
        return runner.refresh(config, stack=self.stack, root=self.root)

    def down(self, config: dict[str, Any]) -> int:
        self.dirty = True
        return runner.down(config, stack=self.stack, root=self.root)

    def assert_preview_all_same(self, config: dict[str, Any]) -> None:
        steps = self.preview(config)
        assert steps, "preview listed no resources"
        assert not changes(steps), f"preview right after up wants changes: {changes(steps)}"

    def deploy(self, config: dict[str, Any], label: str = "up") -> tuple[Deployment, Snapshot]:
        """``up``, the checker on the real state, then ``preview`` showing only ``same``."""
        deployment = self.up(config, label)
        seen = self.converged(config)
        self.assert_preview_all_same(config)
        return deployment, seen

    def repair(self) -> None:
        """After a failed scenario, converge on the last good config so the next starts clean: an
        ``up``, and when even that does not converge, a rebuild from nothing (the stack's resources,
        images and roles removed, its state forgotten) so one defect does not fail every later
        scenario for the same reason."""
        assert self.current is not None
        try:
            self.up(self.current, "repair")
            self.converged(self.current)
        except Exception:  # noqa: BLE001 - the failed scenario already reported the cause
            self.rebuild(self.current)

    def rebuild(self, config: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            self.down(config)
        self.remove_leftovers()
        self.up(config, "rebuild")
        self.converged(config)

    def remove_leftovers(self) -> None:
        """Every trace of this stack, through the APIs and the lab's own tooling."""
        runner.manifest_file(self.root, self.stack).unlink(missing_ok=True)
        for image in self.checker.ours(self.checker.all_images(self.checker.session())):
            if image["id"] not in self.checker.foreign_images:
                with contextlib.suppress(AssertionError):
                    self.checker.delete_image(image["id"])
        for h in self.lab.status()["hosts"]:
            if h["roles"]:
                self.lab.revoke_role(h["name"])

    def start(self) -> dict[str, Any]:
        """The config the next scenario changes, the region converged on it (deployed first when
        this scenario runs alone)."""
        if self.current is None:
            config = base_config(self.images_dir)
            self.up(config, "first up")
            self.converged(config)
        elif self.dirty:
            self.repair()
        assert self.current is not None
        return changed(self.current)

    def rotate_password(self) -> None:
        """The lab admin's password changes in Keystone; the operator exports the new one."""
        self.lab.rotate_password()
        for key, value in lab_env(self.lab).items():
            self.env.setenv(key, value)
        foreign = self.checker.foreign_images
        self.checker = checker_for(self.lab)
        self.checker.foreign_images = foreign

    @contextlib.contextmanager
    def returning_to(self, config: dict[str, Any]) -> Iterator[None]:
        """For a scenario that changes something later scenarios rely on (an image's name) and
        changes it back at its end: if it fails on the way, the next scenario's repair goes back."""
        try:
            yield
        except BaseException:
            self.current, self.dirty = changed(config), True
            raise

    def watch(self, *identities: str) -> Watch:
        return Watch(self.checker, identities=identities)

    def identity(self, name: str) -> str:
        return f"pcd-imagelib-ha/{self.stack}/{name}"
