"""Bench 5: one URL image by web-download against the same image by upload, in the same run.

The lab's image server (``python -m lab.image_source``, a process of its own, so its CPU is not the
client's) serves one file; the client makes an image of its URL through one host, once with
``importMethod: web-download`` (the host pulls the URL; the client polls, then verifies by reading the
image back, since the pin is sha256 and Glance hashes sha512) and once by upload (the client
downloads the URL and streams it to the host). Each run is a child process
(``bench.web_download_child``) that counts its own socket bytes and CPU.

Targets: bytes the client sent, 0 image bytes (the figure holds the API requests, so the target is
< 1 MiB); client CPU < 5% of the upload's. Wall times are reported without a target: the lab runs the
host and the client on the same cores, and Glance passes the data twice (to staging, then the store).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.children import run_measured
from bench.labs import admin_session
from bench.report import Report, Row
from bench.upload import GIB, MIB, ROOT, Glance, make_file
from lab.api import Lab

METHODS = ("web-download", "upload")
API_BYTES_LIMIT = 1 * MIB


def _serve(state_dir: Path, root: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-m", "lab.image_source", "--state-dir", str(state_dir),
                             "--root", str(root)], stdout=subprocess.PIPE, cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError("the lab's image server did not start")
    return proc, int(line)


def _one(method: str, endpoint: str, url: str, sha256: str, token: str) -> dict[str, Any]:
    name = f"bench-{method}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "BENCH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    run = run_measured([sys.executable, "-m", "bench.web_download_child", method, endpoint, url, sha256,
                        name], env=env, cwd=str(ROOT), timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"{method} failed ({run.returncode}): {run.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    expected = ["importing", "imported", "created"] if method == "web-download" else ["created"]
    if out["status"] != "active" or out["outcomes"] != expected:
        raise RuntimeError(f"{method} ended {out['status']} after {out['outcomes']}")
    out["maxrss_kib"] = run.maxrss_kib
    return out


def bench_web_download(lab: Lab, report: Report, size_mib: int, rounds: int) -> None:
    status = lab.status()
    endpoint = next(h["endpoint"] for h in status["hosts"] if h["endpoint"])
    token = admin_session(status).get_token()
    assert token
    glance = Glance(endpoint, token)
    glance.warm()
    per: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory(prefix="pcd-bench-web-") as tmp:
        path = make_file(Path(tmp), size_mib * MIB)
        sha256 = _sha256(path)
        server, port = _serve(Path(status["state_dir"]), Path(tmp))
        url = f"http://127.0.0.1:{port}/{path.name}"
        try:
            for rnd in range(rounds):
                for method in METHODS if rnd % 2 == 0 else METHODS[::-1]:
                    out = _one(method, endpoint, url, sha256, token)
                    glance.delete(out["image_id"])
                    per[method].append(out)
                    print(f"    {size_mib} MiB {method:12s} round {rnd + 1}: {out['elapsed']:6.1f} s, "
                          f"CPU {out['cpu']:.2f} s ({out['cpu_until_imported']:.2f} s until imported), "
                          f"sent {out['sent'] / MIB:.2f} MiB, received {out['received'] / MIB:.1f} MiB",
                          flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    med = {m: {k: statistics.median(o[k] for o in per[m])
               for k in ("elapsed", "cpu", "cpu_until_imported", "sent", "received")} for m in METHODS}
    web, up = med["web-download"], med["upload"]
    label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib / 1024:g} GiB"
    report.add(Row("web-download", f"client bytes sent, {label} URL image", web["sent"] / 1e6, "MB",
                   "upload's", up["sent"] / 1e6, "0 image bytes (< 1 MiB: API requests only)",
                   web["sent"] < API_BYTES_LIMIT, f"median of {rounds}; socket bytes, every request"))
    report.add(Row("web-download", f"client CPU, {label} URL image", web["cpu"], "s", "upload's", up["cpu"],
                   "< 5% of upload's", web["cpu"] < 0.05 * up["cpu"],
                   f"median of {rounds}; includes the sha256 read-back verifying the pin"))
    report.add(Row("web-download", f"client CPU until the host's import finished, {label}",
                   web["cpu_until_imported"], "s", "upload's", up["cpu"], "(reference)", None,
                   "the rest is the read-back (the pin is sha256, Glance hashes sha512)"))
    report.add(Row("web-download", f"client bytes received, {label} URL image", web["received"] / 1e6, "MB",
                   "upload's", up["received"] / 1e6, "(reference)", None, "the read-back"))
    report.add(Row("web-download", f"wall time, {label} URL image", web["elapsed"], "s", "upload's",
                   up["elapsed"], "(reference)", None,
                   f"median of {rounds}; the same cores run client and host; Glance passes the data twice"))
    report.details["web-download"] = {"size_mib": size_mib, "per": per,
                                      "cpu_s_per_gib": {m: med[m]["cpu"] / (size_mib * MIB / GIB)
                                                        for m in METHODS}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()
