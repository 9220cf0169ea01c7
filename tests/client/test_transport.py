"""requests' per-request environment scan is skipped only when the environment has nothing for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from keystoneauth1 import session as ks_session

from imagelib_ha.client.transport import environment_needs_rescan, skip_environment_rescan

TRANSPORT_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC", "http_proxy", "https_proxy",
                       "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with no proxy, CA-bundle or netrc setting, and a home without a netrc file."""
    for name in TRANSPORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def test_idle_environment_turns_the_scan_off(bare_env: pytest.MonkeyPatch) -> None:
    session = ks_session.Session()
    assert environment_needs_rescan() is False
    assert skip_environment_rescan(session) is True
    assert session.verify is True
    assert session.session.trust_env is False


@pytest.mark.parametrize(("name", "value"), [
    ("https_proxy", "http://proxy.example:3128"),
    ("HTTPS_PROXY", "http://proxy.example:3128"),
    ("no_proxy", "127.0.0.1"),
])
def test_any_proxy_variable_keeps_the_scan(bare_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    bare_env.setenv(name, value)
    session = ks_session.Session()
    assert skip_environment_rescan(session) is False
    assert session.session.trust_env is True


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_an_environment_ca_bundle_is_applied_once(bare_env: pytest.MonkeyPatch, name: str) -> None:
    bare_env.setenv(name, "/etc/ssl/certs/env-ca.pem")
    session = ks_session.Session()
    assert skip_environment_rescan(session) is True
    assert (session.session.trust_env, session.verify) == (False, "/etc/ssl/certs/env-ca.pem")


def test_requests_bundle_wins_over_curls(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    bare_env.setenv("CURL_CA_BUNDLE", "/curl.pem")
    session = ks_session.Session()
    skip_environment_rescan(session)
    assert session.verify == "/requests.pem"


@pytest.mark.parametrize("verify", [False, "/configured-ca.pem"])
def test_an_explicit_verify_setting_is_kept(bare_env: pytest.MonkeyPatch, verify: bool | str) -> None:
    bare_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/env-ca.pem")
    session = ks_session.Session(verify=verify)
    assert skip_environment_rescan(session) is True
    assert session.verify == verify


def test_a_netrc_file_keeps_the_scan(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine example.test login a password b\n")
    session = ks_session.Session()
    assert skip_environment_rescan(session) is False
    assert session.session.trust_env is True


def test_an_empty_proxy_variable_is_no_setting(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("https_proxy", "")
    assert environment_needs_rescan() is False


def test_the_health_checker_skips_the_idle_scan(bare_env: pytest.MonkeyPatch) -> None:
    from imagelib_ha.client.health import HealthChecker

    session = ks_session.Session()
    HealthChecker(session, region="RegionOne", expected_store=None)
    assert session.session.trust_env is False
