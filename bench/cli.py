"""Run the benchmarks in order, each lab started in its own temp state dir and stopped after."""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.labs import temp_lab
from bench.report import Report, machine

RESULTS = Path(__file__).resolve().parent / "results"
BENCHES = ("upload", "failover", "web-download", "health", "host-checks", "program")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller images (50 MiB/200 MiB instead of 200 MiB/1 GiB, a 50 MiB URL image "
                             "instead of 1 GiB), still 3 rounds (the order rotates: each upload contender "
                             "goes first once)")
    parser.add_argument("--only", action="append", choices=BENCHES, help="run only these (repeatable)")
    args = parser.parse_args(argv)
    chosen = args.only or list(BENCHES)
    report = Report()
    sizes = [50, 200] if args.quick else [200, 1024]
    rounds = 3
    failover_mib = 50 if args.quick else 200
    web_mib = 50 if args.quick else 1024
    m = machine()
    print(f"machine: {m['nproc']} cores, {m['machine']}, Python {m['python']}, load average "
          f"{m['loadavg']} (other processes on the machine weigh on every figure)", flush=True)
    if args.quick:
        report.notices.append(f"QUICK run: upload sizes {sizes[0]} MiB/{sizes[1]} MiB instead of "
                              f"200 MiB/1 GiB, {rounds} rounds, failover image {failover_mib} MiB, "
                              f"URL image {web_mib} MiB instead of 1 GiB")
        print(report.notices[-1], flush=True)
    failed: list[str] = []

    def attempt(name: str, run: Callable[[], None]) -> None:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            run()
        except Exception:  # noqa: BLE001 - one broken bench must not hide the others' figures
            failed.append(name)
            report.notices.append(f"{name} failed: {traceback.format_exc(limit=5)}")
            traceback.print_exc()
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)

    if {"upload", "failover", "web-download"} & set(chosen):
        from bench.failover_cost import bench_failover
        from bench.upload import bench_upload
        from bench.web_download import bench_web_download

        def three_hosts() -> None:
            with temp_lab(3, label="upload") as lab, tempfile.TemporaryDirectory(prefix="pcd-bench-") as tmp:
                if "upload" in chosen:
                    attempt("upload throughput and memory", lambda: bench_upload(lab, report, sizes, rounds))
                if "failover" in chosen:
                    attempt("failover cost", lambda: bench_failover(lab, report, failover_mib, Path(tmp)))
                if "web-download" in chosen:
                    attempt("URL image: web-download vs upload",
                            lambda: bench_web_download(lab, report, web_mib, rounds=2))

        attempt("lab of 3 hosts", three_hosts)
    if {"health", "host-checks"} & set(chosen):
        from bench.health_scale import bench_health
        from bench.host_checks import bench_host_checks

        def eight_hosts() -> None:
            with temp_lab(8, label="health") as lab:
                if "health" in chosen:
                    attempt("health validation scale", lambda: bench_health(lab, report))
                if "host-checks" in chosen:
                    attempt("host checks over SSH (3 and 8 hosts)", lambda: bench_host_checks(lab, report))

        attempt("lab of 8 hosts", eight_hosts)
    if "program" in chosen:
        from bench.program_overhead import bench_program

        attempt("program overhead", lambda: bench_program(report))

    print()
    print(report.table())
    for notice in report.notices:
        print(f"note: {notice}")
    print(f"load average at the end: {machine()['loadavg']}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = report.write_json(RESULTS, stamp)
    print(f"results: {path}")
    return 1 if failed else 0
