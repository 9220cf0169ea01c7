"""Fault injection on real Glance hosts: kill, freeze/thaw, restart, drain, token revocation."""

from __future__ import annotations

import time

import pytest
import requests
from labhelp import host, login

from lab.api import Lab

pytestmark = pytest.mark.lab


def healthcheck(url: str, timeout: float = 5) -> requests.Response:
    return requests.get(f"{url}/healthcheck", timeout=timeout)


def test_kill_refuses_connections_until_restart(serving_lab: Lab) -> None:
    url = host(serving_lab.status(), "lab-host-1")["url"]
    assert healthcheck(url).status_code == 200
    serving_lab.kill("lab-host-1")
    with pytest.raises(requests.ConnectionError):
        healthcheck(url)
    h = host(serving_lab.status(), "lab-host-1")
    assert not h["running"]
    # The role stays assigned: a dead Glance does not remove itself from the catalog.
    assert h["endpoint"] == url
    serving_lab.restart("lab-host-1")
    assert healthcheck(url).status_code == 200


def test_freeze_times_out_reads_until_thaw(serving_lab: Lab) -> None:
    url = host(serving_lab.status(), "lab-host-2")["url"]
    serving_lab.freeze("lab-host-2")
    assert host(serving_lab.status(), "lab-host-2")["frozen"]
    # The kernel still accepts the connection; only the read timeout fires.
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{url}/healthcheck", timeout=2)
    serving_lab.thaw("lab-host-2")
    assert healthcheck(url, timeout=10).status_code == 200


def test_restart_of_a_frozen_host_serves_again(serving_lab: Lab) -> None:
    url = host(serving_lab.status(), "lab-host-3")["url"]
    old_pid = host(serving_lab.status(), "lab-host-3")["pid"]
    serving_lab.freeze("lab-host-3")
    serving_lab.restart("lab-host-3")
    h = host(serving_lab.status(), "lab-host-3")
    assert h["pid"] != old_pid and h["running"] and not h["frozen"]
    assert healthcheck(url).status_code == 200


def test_drain_makes_healthcheck_503_but_api_still_answers(serving_lab: Lab) -> None:
    st = serving_lab.status()
    url = host(st, "lab-host-1")["url"]
    serving_lab.drain("lab-host-1")
    r = healthcheck(url)
    assert r.status_code == 503
    assert "DISABLED BY FILE" in r.text
    token = login(st).get_token()
    assert requests.get(f"{url}/v2/images", headers={"X-Auth-Token": token}, timeout=10).status_code == 200
    serving_lab.undrain("lab-host-1")
    assert healthcheck(url).status_code == 200


def test_faults_need_a_running_glance(clean_lab: Lab) -> None:
    with pytest.raises(Exception, match="does not hold the image-library role"):
        clean_lab.kill("lab-host-1")


def test_revoke_tokens_invalidates_issued_tokens_everywhere(serving_lab: Lab) -> None:
    st = serving_lab.status()
    old_admin = login(st, "admin").get_token()
    old_member = login(st, "member").get_token()
    h3 = host(st, "lab-host-3")["url"]
    resmgr_hosts = f"{st['resmgr_url']}/v1/hosts"
    assert requests.get(resmgr_hosts, headers={"X-Auth-Token": old_admin}, timeout=10).status_code == 200

    serving_lab.revoke_tokens()

    for old in (old_admin, old_member):
        assert requests.get(resmgr_hosts, headers={"X-Auth-Token": old}, timeout=10).status_code == 401
        # A Glance that has not cached this token asks Keystone and is refused too.
        r = requests.get(f"{h3}/v2/images", headers={"X-Auth-Token": old}, timeout=10)
        assert r.status_code == 401
    fresh = login(st, "admin").get_token()
    assert requests.get(resmgr_hosts, headers={"X-Auth-Token": fresh}, timeout=10).status_code == 200
    assert requests.get(f"{h3}/v2/images", headers={"X-Auth-Token": fresh}, timeout=10).status_code == 200


def test_revocation_bites_a_caching_host_after_its_token_cache_time(serving_lab: Lab) -> None:
    original = serving_lab.status()["token_cache_seconds"]
    serving_lab.set_resmgr_options(token_cache_seconds=3)
    try:
        st = serving_lab.status()
        assert st["token_cache_seconds"] == 3
        url = f"{host(st, 'lab-host-1')['url']}/v2/images"
        old = login(st, "member").get_token()
        assert requests.get(url, headers={"X-Auth-Token": old}, timeout=10).status_code == 200
        serving_lab.revoke_tokens()
        time.sleep(4)
        assert requests.get(url, headers={"X-Auth-Token": old}, timeout=10).status_code == 401
    finally:
        serving_lab.set_resmgr_options(token_cache_seconds=original)
