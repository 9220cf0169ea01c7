"""Bench 1: upload throughput and client memory through one lab host.

Three contenders push the same file to the same host with the same pre-fetched token, in alternating
order: the project's image creation (create + streamed upload + verification, ``bench.upload_child``
in a process that does not import Pulumi), ``curl -T`` to ``PUT /v2/images/{id}/file`` of a record
made beforehand, and openstacksdk's ``create_image`` pinned to the host (``image_endpoint_override``).

Fairness: before anything is timed, the host validates the shared token once (Glance asks Keystone
about a token it has not seen, ~0.3 s, then caches the answer), so no contender pays for that; the
order rotates every round so each goes first equally often, and figures are medians. Besides
throughput, each contender's CPU seconds per GiB (user + system) is recorded: the project's and
openstacksdk's over the timed span inside the child (no interpreter start-up), curl's for its whole
process.

Targets against floors measured in the same run (the machine's speed swings from day to day):

* throughput >= 0.95x curl's with the client (and curl) on one core and the lab on the other
  (:mod:`bench.pinning`): whether the client keeps up with a server it does not share cores with.
  The unpinned figures are reported beside them;
* client CPU per GiB <= 1.15x the floor: ``sha512sum``'s CPU per GiB on the same file (the hash the
  client must compute) plus curl's (the cheapest way to send the bytes);
* peak RSS <= 64 MB, and flat from the smaller size to the larger.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from bench.children import ChildRun, run_measured
from bench.cpu import ProcessGroupCpu
from bench.labs import admin_session
from bench.pinning import can_pin, client_pinned, lab_pinned
from bench.report import Report, Row
from lab.api import Lab

MIB = 1024 * 1024
GIB = 1024 * MIB
ROOT = Path(__file__).resolve().parents[1]
RSS_LIMIT_BYTES = 64 * 1000 * 1000


def make_file(directory: Path, size: int) -> Path:
    path = directory / f"bench-{size // MIB}MiB.raw"
    block = os.urandom(4 * MIB)  # repeated blocks: random enough to defeat any compression in transit
    with path.open("wb") as handle:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            handle.write(chunk)
            written += len(chunk)
    return path


class Glance:
    """Plain HTTP calls the curl contender needs (record creation, status, cleanup) with the token."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.headers = {"X-Auth-Token": token}

    def create(self, name: str) -> str:
        r = requests.post(f"{self.endpoint}/v2/images", headers=self.headers, timeout=30,
                          json={"name": name, "disk_format": "raw", "container_format": "bare"})
        r.raise_for_status()
        return str(r.json()["id"])

    def get(self, image_id: str) -> dict[str, Any]:
        r = requests.get(f"{self.endpoint}/v2/images/{image_id}", headers=self.headers, timeout=30)
        r.raise_for_status()
        return dict(r.json())

    def warm(self) -> None:
        """One authenticated request, so the host has validated and cached the token before timing."""
        r = requests.get(f"{self.endpoint}/v2/images", headers=self.headers, params={"limit": "1"},
                         timeout=30)
        r.raise_for_status()

    def delete(self, image_id: str) -> None:
        requests.delete(f"{self.endpoint}/v2/images/{image_id}", headers=self.headers, timeout=60)


def run_curl(glance: Glance, path: Path, header_file: Path, name: str) -> tuple[ChildRun, str]:
    image_id = glance.create(name)
    run = run_measured([
        "curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(path), "-H", f"@{header_file}",
        "-H", "Content-Type: application/octet-stream", f"{glance.endpoint}/v2/images/{image_id}/file",
    ])
    return run, image_id


def run_child(kind: str, endpoint: str, path: Path, name: str, token: str) -> tuple[ChildRun, dict[str, Any]]:
    env = {**os.environ, "BENCH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    run = run_measured([sys.executable, "-m", "bench.upload_child", kind, endpoint, str(path), name],
                       env=env, cwd=str(ROOT))
    if run.returncode != 0:
        raise RuntimeError(f"{kind} upload failed ({run.returncode}): {run.stderr[-2000:]}")
    return run, json.loads(run.stdout.strip().splitlines()[-1])


KINDS = ("project", "curl", "sdk")


def one_upload(kind: str, glance: Glance, path: Path, header_file: Path, size_mib: int, token: str,
               server: ProcessGroupCpu) -> dict[str, Any]:
    """One timed upload by ``kind``; the image is checked active with every byte, then deleted."""
    size = path.stat().st_size
    name = f"bench-{kind}-{size_mib}-{uuid.uuid4().hex[:6]}"
    server_before = server.seconds()
    if kind == "curl":
        run, image_id = run_curl(glance, path, header_file, name)
        if run.returncode != 0:
            raise RuntimeError(f"curl upload failed: {run.stderr[-500:]}")
        elapsed, cpu = run.wall, run.cpu
    else:
        run, out = run_child(kind, glance.endpoint, path, name, token)
        image_id, elapsed, cpu = out["image_id"], out["elapsed"], out["cpu"]
        run = replace(run, maxrss_kib=max(run.maxrss_kib, int(out["vm_hwm_kib"])))
        if kind == "project" and out["pulumi_imported"]:
            raise RuntimeError("the project's upload child imported pulumi")
    record = glance.get(image_id)
    if record.get("status") != "active" or record.get("size") != size:
        raise RuntimeError(f"{kind} upload ended {record.get('status')} {record.get('size')}")
    server_cpu = server.seconds() - server_before
    glance.delete(image_id)
    return {"elapsed": elapsed, "mb_s": size / elapsed / 1e6, "maxrss_kib": run.maxrss_kib, "cpu_s": cpu,
            "child_cpu_s": run.cpu, "cpu_s_per_gib": cpu / (size / GIB),
            "glance_cpu_s_per_gib": server_cpu / (size / GIB), "load1": os.getloadavg()[0]}


def sha512sum_cpu_per_gib(path: Path) -> float:
    """The floor of the hash the client must compute: ``sha512sum``'s CPU per GiB on the same file."""
    run = run_measured(["sha512sum", str(path)])
    if run.returncode != 0:
        raise RuntimeError(f"sha512sum failed: {run.stderr[-300:]}")
    return run.cpu / (path.stat().st_size / GIB)


def bench_upload(lab: Lab, report: Report, sizes_mib: list[int], rounds: int) -> None:
    for tool in ("curl", "sha512sum"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the upload benchmark needs {tool} (apt-get install curl coreutils)")
    status = lab.status()
    host = next(h for h in status["hosts"] if h["endpoint"])
    endpoint = host["endpoint"]
    token = admin_session(status).get_token()
    assert token
    glance = Glance(endpoint, token)
    glance.warm()
    # The host's Glance (master and workers): its CPU per GiB tells whether the two cores, not the
    # server, limit the upload, and what ratio that leaves the client.
    server = ProcessGroupCpu([host["pid"]])
    modes = ("pinned", "unpinned") if can_pin() else ("unpinned",)
    if "pinned" not in modes:
        report.notices.append("upload: fewer than two usable cores: no pinned run, the throughput target "
                              "is judged unpinned")
    main = modes[0]
    samples: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pcd-bench-upload-") as tmp:
        header_file = Path(tmp) / "auth-header"
        header_file.write_text(f"X-Auth-Token: {token}\n")
        header_file.chmod(0o600)
        for size_mib in sizes_mib:
            path = make_file(Path(tmp), size_mib * MIB)
            per: dict[str, dict[str, list[dict[str, Any]]]] = {}
            floors: dict[str, list[float]] = {}
            for mode in modes:
                per[mode] = {k: [] for k in KINDS}
                floors[mode] = []
                pinning = (lab_pinned(status), client_pinned()) if mode == "pinned" else ()
                with ExitStack() as stack:
                    for ctx in pinning:
                        stack.enter_context(ctx)
                    for rnd in range(rounds):
                        for kind in KINDS[rnd % 3:] + KINDS[: rnd % 3]:  # rotate who goes first
                            s = one_upload(kind, glance, path, header_file, size_mib, token, server)
                            per[mode][kind].append(s)
                            print(f"    {size_mib} MiB {mode:8s} {kind:7s} round {rnd + 1}: "
                                  f"{s['mb_s']:7.1f} MB/s, CPU {s['cpu_s_per_gib']:5.2f} s/GiB "
                                  f"(Glance {s['glance_cpu_s_per_gib']:5.2f}), peak RSS "
                                  f"{s['maxrss_kib'] / 1024:.1f} MiB, load {s['load1']:.2f}", flush=True)
                        floors[mode].append(sha512sum_cpu_per_gib(path))
            path.unlink()
            samples[str(size_mib)] = {"uploads": per, "sha512sum_cpu_s_per_gib": floors}
            _rows(report, size_mib, per, floors, modes, rounds)
    _rss_rows(report, samples, sizes_mib, main)
    report.details["upload"] = samples


def _median(values: list[dict[str, Any]], key: str) -> float:
    return statistics.median(v[key] for v in values)


def _rows(report: Report, size_mib: int, per: dict[str, dict[str, list[dict[str, Any]]]],
          floors: dict[str, list[float]], modes: tuple[str, ...], rounds: int) -> None:
    main = modes[0]
    for mode in modes:
        mb_s = {k: _median(v, "mb_s") for k, v in per[mode].items()}
        judged = mode == main
        report.add(Row("upload", f"project throughput {size_mib} MiB, {mode}", mb_s["project"], "MB/s",
                       f"curl -T, {mode}", mb_s["curl"], ">= 0.95x curl" if judged else "(reference)",
                       mb_s["project"] >= 0.95 * mb_s["curl"] if judged else None, f"median of {rounds}"))
    mb_s = {k: _median(v, "mb_s") for k, v in per[main].items()}
    report.add(Row("upload", f"openstacksdk throughput {size_mib} MiB, {main}", mb_s["sdk"], "MB/s",
                   f"curl -T, {main}", mb_s["curl"], "(reference)", None, f"median of {rounds}"))
    cpu = {k: _median(v, "cpu_s_per_gib") for k, v in per[main].items()}
    sha = statistics.median(floors[main])
    loads = [s["load1"] for v in per[main].values() for s in v]
    report.add(Row("upload", f"project client CPU {size_mib} MiB, {main}", cpu["project"], "s/GiB",
                   f"floor: sha512sum {sha:.2f} + curl {cpu['curl']:.2f}", sha + cpu["curl"],
                   "<= 1.15x floor", cpu["project"] <= 1.15 * (sha + cpu["curl"]),
                   f"medians of {rounds}, user+sys; load {min(loads):.1f}-{max(loads):.1f}"))
    report.add(Row("upload", f"openstacksdk client CPU {size_mib} MiB, {main}", cpu["sdk"], "s/GiB",
                   "curl -T", cpu["curl"], "(reference)", None, f"median of {rounds}"))
    # Unpinned, with the cores saturated, throughput goes as 1 / (client + server CPU per GiB): the
    # ratio the project can reach then, whatever else it does.
    last = modes[-1]
    cpu = {k: _median(v, "cpu_s_per_gib") for k, v in per[last].items()}
    glance = {k: _median(v, "glance_cpu_s_per_gib") for k, v in per[last].items()}
    mb_s = {k: _median(v, "mb_s") for k, v in per[last].items()}
    ceiling = (glance["curl"] + cpu["curl"]) / (glance["project"] + cpu["project"])
    report.add(Row("upload", f"project vs curl when CPU-bound {size_mib} MiB, {last} "
                   f"(Glance {glance['project']:.2f} / {glance['curl']:.2f} s/GiB)",
                   ceiling, "x", "measured ratio", mb_s["project"] / mb_s["curl"], "(reference)", None,
                   "(Glance + curl CPU) / (Glance + client CPU) per GiB"))


def _rss_rows(report: Report, samples: dict[str, Any], sizes_mib: list[int], main: str) -> None:
    small, large = str(min(sizes_mib)), str(max(sizes_mib))

    def peak(size: str, kind: str) -> float:
        uploads = samples[size]["uploads"]
        return max(s["maxrss_kib"] for mode in uploads for s in uploads[mode][kind]) * 1024

    rss_small, rss_large = peak(small, "project"), peak(large, "project")
    report.add(Row("upload", f"project client peak RSS {large} MiB", rss_large / 1e6, "MB",
                   "64 MB limit", 64.0, "<= 64 MB", rss_large <= RSS_LIMIT_BYTES,
                   "max over rounds and modes, the child's VmHWM"))
    report.add(Row("upload", f"project client peak RSS {large} MiB vs {small} MiB", rss_large / 1e6, "MB",
                   f"peak RSS {small} MiB", rss_small / 1e6, "<= 1.05x", rss_large <= 1.05 * rss_small))
    report.add(Row("upload", f"openstacksdk client peak RSS {large} MiB", peak(large, "sdk") / 1e6, "MB",
                   "curl peak RSS", peak(large, "curl") / 1e6, "(reference)", None))
