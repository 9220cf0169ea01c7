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
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from bench.children import ChildRun, run_measured
from bench.cpu import ProcessGroupCpu
from bench.labs import admin_session
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


def bench_upload(lab: Lab, report: Report, sizes_mib: list[int], rounds: int) -> None:
    if shutil.which("curl") is None:
        raise RuntimeError("the upload benchmark compares against curl: install it (apt-get install curl)")
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
    samples: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pcd-bench-upload-") as tmp:
        header_file = Path(tmp) / "auth-header"
        header_file.write_text(f"X-Auth-Token: {token}\n")
        header_file.chmod(0o600)
        for size_mib in sizes_mib:
            path = make_file(Path(tmp), size_mib * MIB)
            size = path.stat().st_size
            per: dict[str, list[dict[str, Any]]] = {"project": [], "curl": [], "sdk": []}
            order = ["project", "curl", "sdk"]
            for rnd in range(rounds):
                for kind in order[rnd % 3:] + order[: rnd % 3]:  # rotate who goes first
                    name = f"bench-{kind}-{size_mib}-{uuid.uuid4().hex[:6]}"
                    server_before = server.seconds()
                    if kind == "curl":
                        run, image_id = run_curl(glance, path, header_file, name)
                        if run.returncode != 0:
                            raise RuntimeError(f"curl upload failed: {run.stderr[-500:]}")
                        record = glance.get(image_id)
                        elapsed, cpu = run.wall, run.cpu
                    else:
                        run, out = run_child(kind, endpoint, path, name, token)
                        image_id, elapsed, cpu = out["image_id"], out["elapsed"], out["cpu"]
                        run = replace(run, maxrss_kib=max(run.maxrss_kib, int(out["vm_hwm_kib"])))
                        record = glance.get(image_id)
                        if kind == "project" and out["pulumi_imported"]:
                            raise RuntimeError("the project's upload child imported pulumi")
                    if record.get("status") != "active" or record.get("size") != size:
                        raise RuntimeError(f"{kind} upload ended {record.get('status')} {record.get('size')}")
                    server_cpu = server.seconds() - server_before
                    glance.delete(image_id)
                    load = os.getloadavg()[0]
                    per[kind].append({"elapsed": elapsed, "mb_s": size / elapsed / 1e6,
                                      "maxrss_kib": run.maxrss_kib, "cpu_s": cpu,
                                      "child_cpu_s": run.cpu, "cpu_s_per_gib": cpu / (size / GIB),
                                      "glance_cpu_s_per_gib": server_cpu / (size / GIB), "load1": load})
                    print(f"    {size_mib} MiB {kind:7s} round {rnd + 1}: {size / elapsed / 1e6:7.1f} MB/s, "
                          f"CPU {cpu / (size / GIB):5.2f} s/GiB (Glance {server_cpu / (size / GIB):5.2f}), "
                          f"peak RSS {run.maxrss_kib / 1024:.1f} MiB, "
                          f"load {load:.2f}", flush=True)
            path.unlink()
            samples[str(size_mib)] = per
            med = {k: statistics.median(s["mb_s"] for s in v) for k, v in per.items()}
            report.add(Row("upload", f"project throughput {size_mib} MiB", med["project"], "MB/s",
                           "curl -T", med["curl"], ">= 0.95x curl", med["project"] >= 0.95 * med["curl"],
                           f"median of {rounds}"))
            report.add(Row("upload", f"openstacksdk throughput {size_mib} MiB", med["sdk"], "MB/s",
                           "curl -T", med["curl"], "(reference)", None, f"median of {rounds}"))
            cpu_med = {k: statistics.median(s["cpu_s_per_gib"] for s in v) for k, v in per.items()}
            loads = [s["load1"] for v in per.values() for s in v]
            for kind in ("project", "sdk"):
                report.add(Row("upload", f"{kind} client CPU {size_mib} MiB", cpu_med[kind], "s/GiB",
                               "curl -T", cpu_med["curl"], "(reference)", None,
                               f"median of {rounds}, user+sys; load {min(loads):.1f}-{max(loads):.1f}"))
            # With the cores saturated, throughput goes as 1 / (client + server CPU per GiB): the
            # ratio the project can reach then, whatever else it does.
            glance_med = {k: statistics.median(s["glance_cpu_s_per_gib"] for s in v) for k, v in per.items()}
            ceiling = (glance_med["curl"] + cpu_med["curl"]) / (glance_med["project"] + cpu_med["project"])
            report.add(Row("upload", f"project vs curl when CPU-bound {size_mib} MiB "
                           f"(Glance {glance_med['project']:.2f} / {glance_med['curl']:.2f} s/GiB)",
                           ceiling, "x", "measured ratio", med["project"] / med["curl"], "(reference)", None,
                           "(Glance + curl CPU) / (Glance + client CPU) per GiB"))
    small, large = str(min(sizes_mib)), str(max(sizes_mib))
    rss_small = max(s["maxrss_kib"] for s in samples[small]["project"]) * 1024
    rss_large = max(s["maxrss_kib"] for s in samples[large]["project"]) * 1024
    report.add(Row("upload", f"project client peak RSS {large} MiB", rss_large / 1e6, "MB",
                   "64 MB limit", 64.0, "<= 64 MB", rss_large <= RSS_LIMIT_BYTES,
                   "max over rounds, the child's VmHWM"))
    report.add(Row("upload", f"project client peak RSS {large} MiB vs {small} MiB", rss_large / 1e6, "MB",
                   f"peak RSS {small} MiB", rss_small / 1e6, "<= 1.05x", rss_large <= 1.05 * rss_small))
    curl_rss = max(s["maxrss_kib"] for s in samples[large]["curl"]) * 1024
    sdk_rss = max(s["maxrss_kib"] for s in samples[large]["sdk"]) * 1024
    report.add(Row("upload", f"openstacksdk client peak RSS {large} MiB", sdk_rss / 1e6, "MB",
                   "curl peak RSS", curl_rss / 1e6, "(reference)", None))
    report.details["upload"] = samples
