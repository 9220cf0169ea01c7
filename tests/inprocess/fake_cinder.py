"""A fake Cinder volume-type API (requests-mock) for the stand-in tests, one per region.

Keeps its types in memory and journals every mutating call into the toy stack's journal, so a test
sees the stand-in's Cinder calls and the toy providers' calls in one order.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import requests_mock
from keystone_fake import token_body

AUTH_URL = "http://keystone.test/v3"
_LOCK = threading.Lock()


def endpoint(region: str) -> str:
    return f"http://cinder-{region.lower()}.test:8776/v3/p1"


class FakeCinder:
    """Volume types of each region's Cinder, behind requests-mock; mutations journaled."""

    def __init__(
        self, m: requests_mock.Mocker, journal: Path, regions: tuple[str, ...] = ("RegionOne",)
    ) -> None:
        self.journal = journal
        self.types: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in regions}
        self.next_id = 1
        catalog = [{"type": "block-storage", "id": "s1", "endpoints": [
            {"id": f"e-{r}", "interface": "public", "region_id": r, "url": endpoint(r)} for r in regions]}]
        m.post(f"{AUTH_URL}/auth/tokens", json=token_body(catalog), status_code=201,
               headers={"X-Subject-Token": "t"})
        for region in regions:
            base = re.escape(endpoint(region))
            one = base + r"/types/([^/]+)"
            m.post(endpoint(region) + "/types", json=lambda r, c, g=region: self.create(g, r, c))
            m.get(re.compile(one + "$"), json=lambda r, c, g=region: self.show(g, r, c))
            m.put(re.compile(one + "$"), json=lambda r, c, g=region: self.update(g, r, c))
            m.delete(re.compile(one + "$"), text=lambda r, c, g=region: self.delete(g, r, c))
            m.post(re.compile(one + "/extra_specs$"), json=lambda r, c, g=region: self.set_specs(g, r, c))
            m.delete(re.compile(one + "/extra_specs/([^/]+)$"),
                     text=lambda r, c, g=region: self.delete_spec(g, r, c))

    def note(self, region: str, request: Any, **details: Any) -> None:
        path = request.path.split("/v3/p1", 1)[1]
        entry = {"call": "cinder", "op": f"{request.method} {path}", "region": region, **details}
        with _LOCK, self.journal.open("a") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")

    @staticmethod
    def _id(request: Any) -> str:
        return str(re.search(r"/types/([^/]+)", request.path).group(1))  # type: ignore[union-attr]

    def _body(self, found: dict[str, Any]) -> dict[str, Any]:
        return {"volume_type": {**found, "os-volume-type-access:is_public": found["is_public"]}}

    def create(self, region: str, request: Any, context: Any) -> dict[str, Any]:
        body = request.json()["volume_type"]
        if any(t["name"] == body["name"] for t in self.types[region].values()):
            context.status_code = 409
            return {"conflictingRequest": {"message": f"Volume Type {body['name']} already exists."}}
        type_id = f"vt-{self.next_id}"
        self.next_id += 1
        found = {"id": type_id, "name": body["name"], "description": body.get("description"),
                 "is_public": body.get("os-volume-type-access:is_public", True),
                 "extra_specs": dict(body.get("extra_specs") or {})}
        self.types[region][type_id] = found
        self.note(region, request, name=body["name"], extra_specs=found["extra_specs"])
        return self._body(found)

    def show(self, region: str, request: Any, context: Any) -> dict[str, Any] | None:
        found = self.types[region].get(self._id(request))
        if found is None:
            context.status_code = 404
            return {"itemNotFound": {"message": "Volume type could not be found."}}
        return self._body(found)

    def update(self, region: str, request: Any, context: Any) -> dict[str, Any]:
        found = self.types[region][self._id(request)]
        body = request.json()["volume_type"]
        for key in ("name", "description"):
            if key in body:
                found[key] = body[key]
        self.note(region, request, changed=sorted(body))
        return self._body(found)

    def delete(self, region: str, request: Any, context: Any) -> str:
        removed = self.types[region].pop(self._id(request), None)
        context.status_code = 202 if removed else 404
        self.note(region, request)
        return ""

    def set_specs(self, region: str, request: Any, context: Any) -> dict[str, Any]:
        specs = request.json()["extra_specs"]
        self.types[region][self._id(request)]["extra_specs"].update(specs)
        self.note(region, request, extra_specs=specs)
        return {"extra_specs": specs}

    def delete_spec(self, region: str, request: Any, context: Any) -> str:
        key = request.path.rsplit("/", 1)[1]
        self.types[region][self._id(request)]["extra_specs"].pop(key, None)
        self.note(region, request)
        return ""
