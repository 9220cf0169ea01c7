"""The toy stack: the in-process engine running ``toy_program.py`` with journaling toy providers."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagelib_ha.inprocess import executing
from imagelib_ha.inprocess.manifest import Manifest

TOY_PROGRAM = Path(__file__).resolve().parent / "toy_program.py"
MUTATING = ("create", "update", "delete")


@dataclass
class ToyStack:
    """One toy stack in a temp dir: run ``up``/``preview``/``refresh``/``down`` and read what happened."""

    root: Path
    name: str = "toy"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def world(self) -> Path:
        return self.root / "world.json"

    def config(self, resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"journal": str(self.journal), "world": str(self.world), "resources": resources}

    def up(self, *resources: dict[str, Any]) -> executing.Deployment:
        return executing.up(self.config(list(resources)), stack=self.name, root=self.root,
                            out=io.StringIO(), program=TOY_PROGRAM)

    def preview(self, *resources: dict[str, Any], out: io.StringIO | None = None) -> list[executing.Step]:
        return executing.preview(self.config(list(resources)), stack=self.name, root=self.root,
                                 out=out or io.StringIO(), program=TOY_PROGRAM)

    def refresh(self) -> list[executing.Drift]:
        return executing.refresh(self.config([]), stack=self.name, root=self.root, out=io.StringIO())

    def down(self) -> int:
        return executing.down(self.config([]), stack=self.name, root=self.root, out=io.StringIO())

    def calls(self) -> list[dict[str, Any]]:
        """Every provider call so far, in order."""
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines()]

    def mark(self) -> int:
        return len(self.calls())

    def mutations(self, since: int = 0) -> list[dict[str, Any]]:
        """The create/update/delete calls made after ``since`` (a ``mark()``)."""
        return [c for c in self.calls()[since:] if c["call"] in MUTATING]

    def manifest(self) -> Manifest:
        return Manifest.load(executing.manifest_path(self.root, self.name), self.name)

    def live_ids(self) -> set[str]:
        """The ids that exist in the toy world right now."""
        if not self.world.exists():
            return set()
        return set(json.loads(self.world.read_text())["resources"])

    def world_edit(self, id_: str, outputs: dict[str, Any] | None) -> None:
        """Change (or, with None, delete) a resource behind the engine's back."""
        world = json.loads(self.world.read_text())
        if outputs is None:
            del world["resources"][id_]
        else:
            world["resources"][id_].update(outputs)
        self.world.write_text(json.dumps(world))


def res(name: str, **options: Any) -> dict[str, Any]:
    """One toy resource entry for the stack config (see toy_program.py for the options)."""
    return {"name": name, **options}
