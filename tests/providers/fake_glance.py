"""A stateful Glance (Images API v2) behind requests-mock, for sequences of provider calls.

Enough of the API for the image provider: list with property filters (hidden and killed records as
Glance shows them), create with a client-chosen id (409 for an id ever used), streamed upload, JSON
patch, delete. ``calls`` records (method, path) for assertions about what a step sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests_mock

LIST_PARAMS = {"limit", "marker", "os_hidden", "visibility"}


class FakeGlance:
    def __init__(self, mock: requests_mock.Mocker, endpoint: str) -> None:
        self.endpoint = endpoint
        self.images: dict[str, dict[str, Any]] = {}
        self.used_ids: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        base = re.escape(endpoint)
        mock.get(re.compile(rf"{base}/v2/images(\?.*)?$"), json=self._list)
        mock.post(f"{endpoint}/v2/images", json=self._create)
        mock.get(re.compile(rf"{base}/v2/images/[^/?]+$"), json=self._get)
        mock.patch(re.compile(rf"{base}/v2/images/[^/?]+$"), json=self._patch)
        mock.delete(re.compile(rf"{base}/v2/images/[^/?]+$"), text=self._delete)
        mock.put(re.compile(rf"{base}/v2/images/[^/?]+/file$"), text=self._upload)

    def _note(self, request: Any) -> str:
        path = urlsplit(request.url).path
        self.calls.append((request.method, path))
        return path.rsplit("/", 1)[-1]

    def _list(self, request: Any, context: Any) -> dict[str, Any]:
        self._note(request)
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        hidden = query.get("os_hidden", "false") == "true"
        found = [r for r in self.images.values()
                 if r["status"] != "killed" and bool(r.get("os_hidden")) == hidden
                 and all(str(r.get(k)) == v for k, v in query.items() if k not in LIST_PARAMS)]
        return {"images": found}

    def _get(self, request: Any, context: Any) -> dict[str, Any] | None:
        image_id = self._note(request)
        if image_id not in self.images:
            context.status_code = 404
            return None
        return self.images[image_id]

    def _create(self, request: Any, context: Any) -> dict[str, Any] | None:
        self._note(request)
        body = request.json()
        if body["id"] in self.used_ids:
            context.status_code = 409
            return None
        self.used_ids.add(body["id"])
        record = {"visibility": "shared", "tags": [], **body, "status": "queued", "size": None,
                  "os_hash_algo": None, "os_hash_value": None}
        self.images[body["id"]] = record
        context.status_code = 201
        return record

    def _upload(self, request: Any, context: Any) -> str:
        path = urlsplit(request.url).path
        self.calls.append((request.method, path))
        image_id = path.split("/")[-2]
        data = b"".join(request.body)
        self.images[image_id].update(status="active", size=len(data), os_hash_algo="sha512",
                                     os_hash_value=hashlib.sha512(data).hexdigest())
        context.status_code = 204
        return ""

    def _patch(self, request: Any, context: Any) -> dict[str, Any]:
        image_id = self._note(request)
        record = self.images[image_id]
        for op in json.loads(request.body):
            name = op["path"].lstrip("/")
            if op["op"] == "remove":
                record.pop(name, None)
            elif op["op"] == "add" and name in record:
                context.status_code = 409
                return {}
            else:
                record[name] = op["value"]
        return record

    def _delete(self, request: Any, context: Any) -> str:
        image_id = self._note(request)
        context.status_code = 204 if self.images.pop(image_id, None) is not None else 404
        return ""

    def active(self) -> dict[str, dict[str, Any]]:
        return {i: r for i, r in self.images.items() if r["status"] == "active"}

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("POST", "PUT", "PATCH", "DELETE")]
