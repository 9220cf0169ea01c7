"""One timed upload in a process of its own, so its peak RSS is the client's alone.

``python -m bench.upload_child project|sdk ENDPOINT FILE NAME`` reads the pre-fetched token from the
environment variable ``BENCH_TOKEN`` (never from argv, which ``ps`` shows) and prints one JSON line:
elapsed seconds (create, streamed upload and verification), the CPU seconds (user + system, every
thread) spent in that same span, image id, final status, its own peak RSS (``VmHWM``) and whether
Pulumi was imported. The span's CPU leaves out the interpreter's start-up and imports, which the
child's whole CPU time (measured by the parent) includes.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint


def _session(endpoint: str) -> ks_session.Session:
    # A fixed token: every contender uses the same one, so none pays for authentication.
    return ks_session.Session(auth=token_endpoint.Token(endpoint, os.environ["BENCH_TOKEN"]))


def project_upload(endpoint: str, path: str, name: str) -> dict[str, Any]:
    from imagelib_ha.client.failover import HostHealthBook, ImageSource, ImageSpec, create_image

    session = _session(endpoint)
    # The key only has to be unique per image here; hashing the file up front is the provider's check.
    spec = ImageSpec(key=f"bench/{name}:{uuid.uuid4().hex[:16]}", name=name, disk_format="raw",
                     container_format="bare")
    started, cpu_started = time.monotonic(), time.process_time()
    result = create_image(session, spec, ImageSource(path), [endpoint], book=HostHealthBook())
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    return {"elapsed": elapsed, "cpu": cpu, "image_id": result.image_id, "status": result.status,
            "size": result.size}


def sdk_upload(endpoint: str, path: str, name: str) -> dict[str, Any]:
    import openstack.connection

    conn = openstack.connection.Connection(session=_session(endpoint), image_endpoint_override=endpoint,
                                           region_name="RegionOne")
    started, cpu_started = time.monotonic(), time.process_time()
    image = conn.create_image(name, filename=path, disk_format="raw", container_format="bare", wait=True)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    if image is None:
        raise RuntimeError("openstacksdk create_image returned nothing")
    return {"elapsed": elapsed, "cpu": cpu, "image_id": image.id, "status": image.status, "size": image.size}


def _vm_hwm_kib() -> int:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str]) -> int:
    kind, endpoint, path, name = argv
    run = {"project": project_upload, "sdk": sdk_upload}[kind]
    out = run(endpoint, path, name)
    out["vm_hwm_kib"] = _vm_hwm_kib()
    out["pulumi_imported"] = any(m == "pulumi" or m.startswith("pulumi.") for m in sys.modules)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
