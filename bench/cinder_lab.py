"""What the lab's Cinder costs: `python -m bench.cinder_lab [--size-mib 100] [--concurrent-mib 10]`.

Measures, in one run on this machine (figures are noisy where other work shares the cores: the load
average is printed with them):
- `up` of a fresh state dir and of an initialised one, with and without `--cinder`, and the lab's
  memory (RSS) with three hosts serving;
- one image uploaded through a host and read back through another, on the Cinder store and on the
  file store of the same lab (the blueprint switched between them, hosts re-converged);
- the same image read through three hosts at once.
It uses the lab's API and plain HTTP only (no project code) and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import openstack
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from lab.api import Lab

HOSTS = ("lab-host-1", "lab-host-2", "lab-host-3")
TYPE = "image_library"


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _token(st: dict[str, Any]) -> str:
    a = st["admin"]
    auth = v3.Password(auth_url=st["auth_url"], username=a["username"], password=a["password"],
                       project_name=a["project_name"], user_domain_name=a["user_domain_name"],
                       project_domain_name=a["project_domain_name"])
    return str(ks_session.Session(auth=auth).get_token())


def _host(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in st["hosts"] if h["name"] == name)


def _serve(lab: Lab, storage: str) -> None:
    """Blueprint storage set, then every host converged on it (PUT through resmgr; reconverge if held)."""
    st = lab.status()
    token = _token(st)
    url = f"{st['resmgr_url']}/v2/blueprint/RegionOne"
    bp = requests.get(url, headers={"X-Auth-Token": token}, timeout=10).json()
    requests.put(url, json={**bp, "imageLibraryStorage": storage}, headers={"X-Auth-Token": token},
                 timeout=10).raise_for_status()
    for name in HOSTS:
        role = f"{st['resmgr_url']}/v2/hosts/{_host(st, name)['id']}/roles/image-library"
        requests.put(role, json={}, headers={"X-Auth-Token": token}, timeout=10).raise_for_status()
    deadline = time.monotonic() + 300
    while not all(_host(lab.status(), n)["role_state"] == "applied" for n in HOSTS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"roles did not apply: {lab.status()['hosts']}")
        time.sleep(0.5)


def _upload(url: str, token: str, data: bytes) -> tuple[str, float]:
    image_id = str(uuid.uuid4())
    requests.post(f"{url}/v2/images", headers={"X-Auth-Token": token}, timeout=60, json={
        "id": image_id, "name": "bench", "disk_format": "raw", "container_format": "bare"}).raise_for_status()
    t0 = time.monotonic()
    r = requests.put(f"{url}/v2/images/{image_id}/file", data=data, timeout=600,
                     headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return image_id, time.monotonic() - t0


def _read(url: str, token: str, image_id: str, expect: bytes) -> float:
    t0 = time.monotonic()
    r = requests.get(f"{url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=600)
    took = time.monotonic() - t0
    if r.status_code != 200 or r.content != expect:
        raise RuntimeError(f"read through {url}: HTTP {r.status_code}, {len(r.content)} bytes")
    return took


def _concurrent(st: dict[str, Any], token: str, image_id: str, data: bytes) -> list[float]:
    took: dict[str, float] = {}

    def one(name: str) -> None:
        took[name] = _read(_host(st, name)["url"], token, image_id, data)

    threads = [threading.Thread(target=one, args=(n,)) for n in HOSTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(took.values())


def _up_twice(cinder: bool) -> tuple[float, float, Lab]:
    lab = Lab(Path(tempfile.mkdtemp(prefix="pcd-lab-bench-cinder-")))
    t0 = time.monotonic()
    lab.up(hosts=3, region_two_hosts=0, cinder=cinder, converge_seconds=1)
    first = time.monotonic() - t0
    lab.down()
    t0 = time.monotonic()
    lab.up(cinder=cinder)
    again = time.monotonic() - t0
    return first, again, lab


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cinder_lab", description=__doc__)
    p.add_argument("--size-mib", type=int, default=100)
    p.add_argument("--concurrent-mib", type=int, default=10)
    args = p.parse_args(argv)
    big = os.urandom(args.size_mib * 1024 * 1024)
    small = os.urandom(args.concurrent_mib * 1024 * 1024)

    first, again, lab = _up_twice(cinder=False)
    try:
        _serve(lab, lab.status()["store_path"])
        print(f"without Cinder: up {first:.1f}s first, {again:.1f}s with state; "
              f"RSS with 3 hosts serving {lab.status()['rss_mib']} MiB (load {_load()})")
    finally:
        lab.purge()

    first, again, lab = _up_twice(cinder=True)
    try:
        st = lab.status()
        a = st["admin"]
        openstack.connect(auth_url=st["auth_url"], username=a["username"], password=a["password"],
                          project_name=a["project_name"], user_domain_name=a["user_domain_name"],
                          project_domain_name=a["project_domain_name"], region_name="RegionOne",
                          ).block_storage.create_type(name=TYPE, extra_specs={"multiattach": "<is> True"})
        _serve(lab, TYPE)
        st = lab.status()
        print(f"with Cinder: up {first:.1f}s first, {again:.1f}s with state; RSS with 3 hosts serving "
              f"{st['rss_mib']} MiB, of which Cinder+RabbitMQ {st['cinder'].get('rss_mib')} MiB "
              f"(load {_load()})")
        token = _token(st)
        u1, u2 = _host(st, "lab-host-1")["url"], _host(st, "lab-host-2")["url"]
        for store in ("cinder", "file"):
            if store == "file":
                _serve(lab, st["store_path"])
            image_id, up_s = _upload(u1, token, big)
            read_s = _read(u2, token, image_id, big)
            small_id, _ = _upload(u1, token, small)
            conc = _concurrent(st, token, small_id, small)
            print(f"{store} store: {args.size_mib} MiB upload {up_s:.2f}s, "
                  f"read via another host {read_s:.2f}s; "
                  f"{args.concurrent_mib} MiB read on 3 hosts at once: "
                  f"{' / '.join(f'{t:.2f}' for t in conc)} s (load {_load()})")
    finally:
        lab.purge()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
