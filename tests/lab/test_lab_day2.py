"""Day-2 changes the lab can make while it runs: a host joins or leaves the region, the admin password
rotates. The lifecycle suite relies on both."""

from __future__ import annotations

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from labhelp import host, login, token_of

from lab.api import Lab
from lab.control import LabError

pytestmark = pytest.mark.lab


def resmgr_ids(st: dict[str, object]) -> set[str]:
    r = requests.get(f"{st['resmgr_url']}/v1/hosts", headers={"X-Auth-Token": token_of(st)}, timeout=15)
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()}


def test_add_host_enrols_one_without_role_and_remove_host_takes_it_out(clean_lab: Lab) -> None:
    region_one = [h["name"] for h in clean_lab.status()["hosts"] if h["region"] == "RegionOne"]
    name = clean_lab.add_host()
    try:
        st = clean_lab.status()
        added = host(st, name)
        assert name == f"lab-host-{len(region_one) + 1}"
        assert (added["region"], added["roles"], added["hostname"]) == ("RegionOne", [], f"{name}.lab.local")
        assert added["id"] in resmgr_ids(st)
        clean_lab.grant_role(name)
        with pytest.raises(LabError, match="revoke its role first"):
            clean_lab.remove_host(name)
        clean_lab.revoke_role(name)
    finally:
        clean_lab.remove_host(name)
    st = clean_lab.status()
    assert name not in {h["name"] for h in st["hosts"]}
    assert added["id"] not in resmgr_ids(st)
    assert name not in {h.name for h in clean_lab.config.hosts}, "lab.json still lists the host"


def test_rotate_password_changes_keystone_and_what_env_exports(clean_lab: Lab) -> None:
    before = clean_lab.status()
    new = clean_lab.rotate_password()
    after = clean_lab.status()
    assert after["admin"]["password"] == new == clean_lab.env()["PCD_LAB_PASSWORD"]
    assert new != before["admin"]["password"]
    # At once: a login right after the change is not caught by the revocation of older tokens.
    token = token_of(after)
    r = requests.get(f"{after['auth_url']}/auth/catalog", headers={"X-Auth-Token": token}, timeout=15)
    assert r.status_code == 200, r.text
    with pytest.raises(ks_exc.Unauthorized):
        login(before).get_token()
