"""The lifecycle suite's independent checker: what is really in the region after each step.

It reads Keystone, resmgr and Glance through their public APIs with plain keystoneauth1 + requests and
imports nothing from ``imagelib_ha`` or ``components``: it is a second, separate reading of the stack
config and of the APIs, so a mistake in the project's own reading (a wrong property name, a list that
hides some statuses, a catalog lookup that picks one endpoint) cannot hide itself.

What it restates on its own (from the README and docs/contracts.md, not from the code):
* an image's identity is ``images[].key``, default ``pcd-imagelib-ha/<stack>/<name>``, carried in the
  Glance property ``pcd_imagelib_ha_key`` (alone, or followed by ``:<content digest>``);
* the health check's canary images carry ``pcd_imagelib_ha_canary``;
* the image-library role shows in resmgr v1 host records as ``pf9-glance-role`` (v2 may spell it
  ``image-library``), converged when ``role_status == ok`` and its state is ``applied``;
* ``image-cluster`` in the catalog has one endpoint per image-library host.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

PROJECT = "pcd-imagelib-ha"
KEY_PROPERTY = "pcd_imagelib_ha_key"
CANARY_PROPERTY = "pcd_imagelib_ha_canary"
ROLE_NAMES = frozenset({"pf9-glance-role", "image-library"})
GRANULAR_ROLE = "pf9-glance-role"
# Images up to this size are downloaded whole through every host and compared byte for byte.
SMALL = 1024 * 1024
TIMEOUT = 30
# The lab's servers (gunicorn) close idle keep-alive connections after a few seconds; a read that races
# that close fails with RemoteDisconnected before the server saw it, and a read is safe to send again.
# Seen once in CI: a lifecycle test lost to exactly this race on GET /v3/auth/catalog.
READ_RETRIES = 2


@dataclass(frozen=True)
class Access:
    """Who the checker logs in as (the lab's admin) and in which region it looks."""

    auth_url: str
    username: str
    password: str
    project_name: str
    region: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"


@dataclass(frozen=True)
class ExpectedImage:
    name: str
    path: Path
    identity: str
    disk_format: str
    container_format: str
    visibility: str
    properties: Mapping[str, str]
    tags: frozenset[str]


@dataclass(frozen=True)
class Snapshot:
    """What the checker saw, comparable as a whole ("nothing touched") or by part."""

    role_hosts: Mapping[str, str]  # host id -> per-role state
    endpoints: tuple[str, ...]
    images: Mapping[str, tuple[str, str, str, str]]  # id -> (name, status, key, updated_at)
    canaries: tuple[str, ...]
    blueprint: Mapping[str, Any]

    def image_id(self, identity: str) -> str:
        found = [i for i, (_, _, key, _) in self.images.items() if key_matches(key, identity)]
        assert len(found) == 1, f"{identity}: {len(found)} images carry this key: {found}"
        return found[0]


@dataclass(frozen=True)
class Observation:
    hosts: list[dict[str, Any]]
    images: list[dict[str, Any]]
    endpoints: list[str]
    blueprint: Mapping[str, Any]

    def snapshot(self) -> Snapshot:
        ours = [i for i in self.images if KEY_PROPERTY in i or CANARY_PROPERTY in i]
        return Snapshot(
            role_hosts={h["id"]: str((h.get("roles_status_details") or {}).get(GRANULAR_ROLE))
                        for h in self.hosts if ROLE_NAMES & set(h.get("roles") or [])},
            endpoints=tuple(sorted(self.endpoints)),
            images={i["id"]: (i["name"], i["status"], str(i.get(KEY_PROPERTY, "")), i["updated_at"])
                    for i in ours if KEY_PROPERTY in i},
            canaries=tuple(sorted(i["id"] for i in ours if CANARY_PROPERTY in i)),
            blueprint=self.blueprint,
        )


def key_matches(value: str, identity: str) -> bool:
    return value == identity or value.startswith(identity + ":")


def expected_images(config: Mapping[str, Any], stack: str) -> list[ExpectedImage]:
    """The images a stack config declares, with the README's defaults."""
    images = []
    for entry in config.get("images") or []:
        images.append(ExpectedImage(
            name=entry["name"], path=Path(entry["source"]),
            identity=entry.get("key") or f"{PROJECT}/{stack}/{entry['name']}",
            disk_format=entry.get("diskFormat", "raw"), container_format=entry.get("containerFormat", "bare"),
            visibility=entry.get("visibility", "private"),
            properties={str(k): str(v) for k, v in (entry.get("properties") or {}).items()},
            tags=frozenset(entry.get("tags") or []),
        ))
    return images


def file_sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Checker:
    """Asserts the region's real state against a stack config; see the module docstring."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self._session: ks_session.Session | None = None
        self._fixed_urls: dict[str, str] = {}
        self.foreign_images: frozenset[str] = frozenset()  # key/canary images present before the suite

    def with_password(self, password: str) -> Checker:
        other = Checker(Access(**{**self.access.__dict__, "password": password}))
        other.foreign_images = self.foreign_images
        return other

    # ---- plumbing -----------------------------------------------------------------------------------
    def session(self) -> ks_session.Session:
        """One login per checker (a password token costs a bcrypt round on Keystone); the catalog is
        read afresh on every call (``_urls``), so endpoints added since the login are seen."""
        if self._session is None:
            a = self.access
            auth = v3.Password(auth_url=a.auth_url, username=a.username, password=a.password,
                               project_name=a.project_name, user_domain_name=a.user_domain_name,
                               project_domain_name=a.project_domain_name)
            self._session = ks_session.Session(auth=auth, timeout=TIMEOUT)
        return self._session

    def _urls(self, sess: ks_session.Session, service_type: str) -> list[str]:
        """Public endpoint URLs of ``service_type`` in the region, from ``GET /v3/auth/catalog``:
        Keystone builds it at request time, where the token's own catalog is frozen at login."""
        catalog = self._get(sess, self.access.auth_url.rstrip("/") + "/auth/catalog")["catalog"]
        return [
            e["url"].rstrip("/")
            for service in catalog if service["type"] == service_type
            for e in service["endpoints"]
            if e["interface"] == "public" and self.access.region in (e.get("region_id"), e.get("region"))
        ]

    def _one_url(self, sess: ks_session.Session, service_type: str) -> str:
        """The control plane's endpoint of ``service_type`` (resmgr, image): fixed for a region, so
        looked up once."""
        if service_type not in self._fixed_urls:
            urls = self._urls(sess, service_type)
            assert urls, f"no {service_type} endpoint in {self.access.region}"
            self._fixed_urls[service_type] = urls[0]
        return self._fixed_urls[service_type]

    def _get(self, sess: ks_session.Session, url: str, **params: Any) -> Any:
        r = sess.get(url, params=params, raise_exc=False, connect_retries=READ_RETRIES)
        assert r.status_code == 200, f"GET {url} {params}: {r.status_code} {r.text[:300]}"
        return r.json()

    def resmgr_hosts(self, sess: ks_session.Session | None = None) -> list[dict[str, Any]]:
        sess = sess or self.session()
        return list(self._get(sess, self._one_url(sess, "resmgr") + "/v1/hosts"))

    def all_images(self, sess: ks_session.Session) -> list[dict[str, Any]]:
        """Every image record the admin can list, hidden ones too, following Glance's paging."""
        base = self._one_url(sess, "image")
        found: dict[str, dict[str, Any]] = {}
        for hidden in ("false", "true"):
            url: str | None = f"{base}/v2/images"
            params: dict[str, Any] = {"visibility": "all", "os_hidden": hidden, "limit": 200}
            while url:
                page = self._get(sess, url, **params)
                for image in page["images"]:
                    found[image["id"]] = image
                nxt = page.get("next")
                url, params = (base + nxt if nxt else None), {}
        return list(found.values())

    def images_named(self, name: str) -> list[dict[str, Any]]:
        """One request: records named ``name`` (any status; hidden ones are not looked for)."""
        sess = self.session()
        url = self._one_url(sess, "image") + "/v2/images"
        return list(self._get(sess, url, name=name, visibility="all")["images"])

    def ours(self, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Images carrying the key or the canary property (the project's records)."""
        return [i for i in images if KEY_PROPERTY in i or CANARY_PROPERTY in i]

    # ---- observations -------------------------------------------------------------------------------
    def observe(self, *, blueprint: bool) -> Observation:
        """resmgr's hosts, every image record, the image-cluster endpoints (and the region's blueprint),
        read concurrently: each call costs a token validation on the lab's busy Keystone."""
        sess = self.session()
        with ThreadPoolExecutor(max_workers=4) as pool:
            hosts = pool.submit(self.resmgr_hosts, sess)
            images = pool.submit(self.all_images, sess)
            endpoints = pool.submit(self._urls, sess, "image-cluster")
            region = self.access.region
            plan = (pool.submit(self._get, sess, self._one_url(sess, "resmgr") + f"/v2/blueprint/{region}")
                    if blueprint else None)
            return Observation(hosts=hosts.result(), images=images.result(), endpoints=endpoints.result(),
                               blueprint=copy.deepcopy(plan.result()) if plan else {})

    def snapshot(self) -> Snapshot:
        return self.observe(blueprint=True).snapshot()

    def remember_foreign_images(self) -> None:
        """Key/canary records that exist before the suite deploys anything are not its business."""
        self.foreign_images = frozenset(i["id"] for i in self.ours(self.all_images(self.session())))

    # ---- the assertions ---------------------------------------------------------------------------
    def resolve_hosts(self, config: Mapping[str, Any], hosts: list[dict[str, Any]]) -> set[str]:
        """The resmgr ids of ``config``'s hosts (given by id or by hostname)."""
        ids = set()
        for entry in config.get("hosts") or []:
            if "id" in entry:
                match = [h for h in hosts if h["id"] == entry["id"]]
            else:
                match = [h for h in hosts if (h.get("info") or {}).get("hostname") == entry["hostname"]]
            assert len(match) == 1, f"host {entry} matches {len(match)} resmgr records"
            ids.add(match[0]["id"])
        return ids

    def assert_converged(self, config: Mapping[str, Any], stack: str) -> Snapshot:
        """The region is exactly what ``config`` declares; returns what was seen."""
        sess = self.session()
        problems: list[str] = []
        seen = self.observe(blueprint=False)
        hosts, endpoints, all_images = seen.hosts, seen.endpoints, seen.images
        wanted = self.resolve_hosts(config, hosts)
        holders = {h["id"]: h for h in hosts if ROLE_NAMES & set(h.get("roles") or [])}
        if set(holders) != wanted:
            names = {h["id"]: str((h.get("info") or {}).get("hostname")) for h in hosts}
            problems.append(f"role holders {sorted(names[i] for i in holders)} != config hosts "
                            f"{sorted(names[i] for i in wanted)}")
        for host_id, h in holders.items():
            state = (h.get("roles_status_details") or {}).get(GRANULAR_ROLE)
            if h.get("role_status") != "ok" or state != "applied":
                problems.append(f"{host_id}: role_status {h.get('role_status')}, state {state}")
        if len(endpoints) != len(set(endpoints)) or len(endpoints) != len(holders):
            problems.append(f"image-cluster endpoints {endpoints} are not one per role host ({len(holders)})")
        if not config.get("images"):  # otherwise every image is downloaded through every endpoint
            for url in endpoints:
                r = sess.get(f"{url}/v2/images", params={"limit": 1}, raise_exc=False,
                                 connect_retries=READ_RETRIES)
                if r.status_code != 200:
                    problems.append(f"{url} answers {r.status_code} to an authenticated image list")

        ours = [i for i in self.ours(all_images) if i["id"] not in self.foreign_images]
        expected = expected_images(config, stack)
        accounted: set[str] = set()
        for image in expected:
            problems += self._image_problems(sess, image, all_images, ours, endpoints, accounted)
        for leftover in ours:
            if leftover["id"] not in accounted:
                kind = "canary" if CANARY_PROPERTY in leftover else "keyed"
                problems.append(f"leftover {kind} image {leftover['id']} {leftover['name']!r} "
                                f"({leftover['status']}, key {leftover.get(KEY_PROPERTY)!r})")
        assert not problems, f"stack {stack}:\n  " + "\n  ".join(problems)
        return seen.snapshot()

    def _image_problems(
        self, sess: ks_session.Session, image: ExpectedImage, all_images: list[dict[str, Any]],
        ours: list[dict[str, Any]], endpoints: list[str], accounted: set[str],
    ) -> list[str]:
        label = f"image {image.name!r}"
        by_key = [i for i in ours if key_matches(str(i.get(KEY_PROPERTY, "")), image.identity)]
        by_name = [i for i in all_images if i["name"] == image.name]
        accounted.update(i["id"] for i in by_key)
        if len(by_key) != 1:
            states = [(i["id"], i["status"]) for i in by_key]
            return [f"{label}: {len(by_key)} records carry key {image.identity!r}: {states}"]
        record = by_key[0]
        problems = []
        if [i["id"] for i in by_name] != [record["id"]]:
            problems.append(f"{label}: {len(by_name)} images have this name: {[i['id'] for i in by_name]}")
        if record["status"] != "active":
            problems.append(f"{label}: status {record['status']}")
        want = {"disk_format": image.disk_format, "container_format": image.container_format,
                "visibility": image.visibility}
        for attr, value in want.items():
            if record.get(attr) != value:
                problems.append(f"{label}: {attr} {record.get(attr)!r}, config says {value!r}")
        if set(record.get("tags") or []) != image.tags:
            have = sorted(record.get("tags") or [])
            problems.append(f"{label}: tags {have}, config says {sorted(image.tags)}")
        for prop, value in image.properties.items():
            if record.get(prop) != value:
                problems.append(f"{label}: property {prop}={record.get(prop)!r}, config says {value!r}")
        sha = file_sha512(image.path)
        size = image.path.stat().st_size
        glance_has = (record.get("os_hash_algo"), record.get("os_hash_value"), record.get("size"))
        if glance_has != ("sha512", sha, size):
            problems.append(f"{label}: Glance has {record.get('os_hash_algo')} {record.get('os_hash_value')} "
                            f"size {record.get('size')}, the file {sha[:16]}... size {size}")
        data = image.path.read_bytes() if size <= SMALL else None
        for url in endpoints:
            got = self._download(sess, url, record["id"])
            if got != (data if data is not None else sha):
                problems.append(f"{label}: the bytes read through {url} differ from the file")
        return problems

    def _download(self, sess: ks_session.Session, url: str, image_id: str) -> bytes | str:
        r = sess.get(f"{url}/v2/images/{image_id}/file", stream=True, raise_exc=False,
                     connect_retries=READ_RETRIES)
        try:
            if r.status_code != 200:
                return f"HTTP {r.status_code}"
            digest, body = hashlib.sha512(), bytearray()
            for chunk in r.iter_content(1 << 20):
                digest.update(chunk)
                if len(body) <= SMALL:
                    body += chunk
            return bytes(body) if len(body) <= SMALL else digest.hexdigest()
        finally:
            r.close()

    def assert_gone(self, config: Mapping[str, Any], stack: str, *, roles_before: set[str]) -> None:
        """After ``down``: none of the stack's images, and only the roles held before it exist."""
        sess = self.session()
        problems = []
        hosts = self.resmgr_hosts(sess)
        holders = {h["id"] for h in hosts if ROLE_NAMES & set(h.get("roles") or [])}
        if holders != roles_before:
            problems.append(f"role holders {sorted(holders)}, before the stack {sorted(roles_before)}")
        endpoints = self._urls(sess, "image-cluster")
        if len(endpoints) != len(roles_before):
            problems.append(f"image-cluster still lists {endpoints}")
        for image in self.ours(self.all_images(sess)):
            if image["id"] not in self.foreign_images:
                problems.append(f"image {image['id']} {image['name']!r} ({image['status']}) is still there")
        for wanted in expected_images(config, stack):
            named = [i["id"] for i in self.all_images(sess) if i["name"] == wanted.name]
            if named:
                problems.append(f"images named {wanted.name!r} remain: {named}")
        assert not problems, f"stack {stack} after down:\n  " + "\n  ".join(problems)

    # ---- out of band, as an operator with API access would --------------------------------------
    def delete_image(self, image_id: str) -> None:
        sess = self.session()
        r = sess.delete(f"{self._one_url(sess, 'image')}/v2/images/{image_id}", raise_exc=False)
        assert r.status_code == 204, f"out-of-band delete of {image_id}: {r.status_code} {r.text[:200]}"

    def remove_role(self, host_id: str, *, timeout: float = 60) -> None:
        """``DELETE /resmgr/v2/hosts/{id}/roles/image-library`` and wait until the role is gone."""
        sess = self.session()
        base = self._one_url(sess, "resmgr")
        deadline = time.monotonic() + timeout
        while True:
            r = sess.delete(f"{base}/v2/hosts/{host_id}/roles/image-library", json={}, raise_exc=False)
            if r.status_code in (200, 202, 204):
                break
            assert r.status_code == 409 and time.monotonic() < deadline, f"role removal: {r.status_code}"
            time.sleep(0.5)
        while any(h["id"] == host_id and ROLE_NAMES & set(h.get("roles") or []) for h in self.resmgr_hosts()):
            assert time.monotonic() < deadline, f"{host_id} still holds the role"
            time.sleep(0.3)


@dataclass
class Watch:
    """Samples the region while a deployment runs, to prove what must hold at *every* moment."""

    checker: Checker
    identities: tuple[str, ...] = ()
    interval: float = 0.05
    roles: list[frozenset[str]] = field(default_factory=list)
    images: list[dict[str, tuple[str, ...]]] = field(default_factory=list)  # identity -> active ids
    statuses: list[dict[str, str]] = field(default_factory=list)  # id -> status, keyed images
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sess = self.checker.session()
        while not self._stop.is_set():
            try:
                hosts = self.checker.resmgr_hosts(sess)
                self.roles.append(frozenset(h["id"] for h in hosts if ROLE_NAMES & set(h.get("roles") or [])))
                if self.identities:
                    imgs = [i for i in self.checker.all_images(sess) if KEY_PROPERTY in i]
                    self.statuses.append({i["id"]: i["status"] for i in imgs})
                    self.images.append({
                        ident: tuple(sorted(i["id"] for i in imgs if i["status"] == "active"
                                            and key_matches(str(i[KEY_PROPERTY]), ident)))
                        for ident in self.identities})
            except (requests.RequestException, AssertionError) as exc:
                self.errors.append(str(exc))
            self._stop.wait(self.interval)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def role_holders_seen(self) -> Iterator[frozenset[str]]:
        yield from self.roles

    def assert_role_holders_never_below(self, holders: set[str]) -> None:
        assert self.roles, f"the watch took no sample ({self.errors[-1:] or 'no error'})"
        dropped = [sorted(holders - seen) for seen in self.roles if not holders <= seen]
        assert not dropped, f"role holders were missing during the deployment: {dropped[:3]}"

    def assert_always_active(self, identity: str) -> None:
        """At every sample at least one active image carried ``identity``."""
        assert self.images, f"the watch took no sample ({self.errors[-1:] or 'no error'})"
        gaps = [i for i, sample in enumerate(self.images) if not sample[identity]]
        assert not gaps, f"{identity}: no active image in {len(gaps)} of {len(self.images)} samples"
