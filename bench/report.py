"""The benchmark table: one row per figure, with its baseline, ratio, target and whether it was met."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure next to the baseline it is judged against (``met`` None = informational)."""

    bench: str
    figure_name: str
    figure: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.figure / self.baseline


@dataclass
class Report:
    """Every row of a run plus what the run was on and any notices (quick mode, skipped parts)."""

    rows: list[Row] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {format_row(row)}", flush=True)
        return row

    def table(self) -> str:
        header = ("bench", "figure", "value", "baseline", "base value", "ratio", "target", "met")
        lines = [header]
        for r in self.rows:
            lines.append((
                r.bench, r.figure_name, f"{r.figure:.3f} {r.unit}", r.baseline_name or "-",
                f"{r.baseline:.3f} {r.unit}" if r.baseline is not None else "-",
                f"{r.ratio:.3f}" if r.ratio is not None else "-", r.target or "-",
                {True: "met", False: "NOT MET", None: "-"}[r.met],
            ))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)

    def write_json(self, directory: Path, stamp: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"bench-{stamp}.json"
        payload = {
            "machine": machine(),
            "notices": self.notices,
            "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows],
            "details": self.details,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return path


def format_row(r: Row) -> str:
    base = f" vs {r.baseline_name} {r.baseline:.3f}" if r.baseline is not None else ""
    ratio = f" (ratio {r.ratio:.3f})" if r.ratio is not None else ""
    met = {True: "met", False: "NOT MET", None: ""}[r.met]
    target = r.target or "-"
    return f"[{r.bench}] {r.figure_name}: {r.figure:.3f} {r.unit}{base}{ratio}  target {target} {met}"


def machine() -> dict[str, Any]:
    import os

    return {"nproc": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "system": platform.platform(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
