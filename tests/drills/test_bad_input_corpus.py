"""Drill: a corpus of bad stack configs, each refused clearly and before anything is touched.

Malformed configs fail in the settings with one error naming the key, before any HTTP request. HA
prerequisite violations are well-formed: the policy pack reports them at preview and both the settings
and the health providers' ``check`` refuse them at apply, again without a request. Unknown host
references fail in the role baseline against the lab (it resolves every reference before any role is
assigned), naming the reference, with every host untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock
from cloud_config import configured
from drillkit import REGION_ONE_HOSTS, cloud_of, host
from policy_judge import judge
from shaped_mocks import ShapedMocks
from ssh_material import ssh_material_dir

from imagelib_ha.client.errors import HostNotFound
from imagelib_ha.inprocess.recording import RecordedResource, run_program
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.common import is_unknown
from imagelib_ha.providers.health import ImageLibraryHealthProvider
from imagelib_ha.providers.roles import ImageLibraryRolesProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider
from imagelib_ha.settings import SettingsError
from lab.api import Lab

SECRET = "drill-Secret-5e1"
SETTINGS_TYPE = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
HEALTH_TYPE = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
ROLES_TYPE = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
BASELINE_TYPE = "pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline"
MOUNT = "/var/opt/imagelibrary/data"

BASE: dict[str, Any] = {
    "lab": True,
    "cloud": {"authUrl": "http://127.0.0.1:5000/v3", "region": "RegionOne", "username": "admin",
              "password": SECRET, "projectName": "admin", "projectDomainName": "Default",
              "userDomainName": "Default"},
    "storage": {"backend": "nfs", "nfs": {"mountPath": MOUNT}},
    "hosts": [{"hostname": f"lab-host-{i}.lab.local"} for i in (1, 2, 3)],
    # A complete config checks its hosts over SSH (else the advisory host-checks-configured speaks).
    "hostAccess": {"privateKey": (ssh_material_dir() / "id_ed25519").read_text(),
                   "knownHosts": str(ssh_material_dir() / "known_hosts")},
    "images": [{"name": "tiny", "source": "https://images.example.com/tiny.img", "diskFormat": "raw",
                "digest": "sha256:" + "0" * 64}],
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """BASE with the value at a dotted path replaced (``...`` deletes the key)."""
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


def run_program_under_mocks(config: dict[str, Any], *, preview: bool = True) -> list[RecordedResource]:
    """The program's registrations; its dynamic resources answer as their providers would at preview."""
    return run_program(config, preview=preview, mocks=ShapedMocks(preview=preview)).resources


def provider_of(provider_class: Any) -> Any:
    """A provider as the engine hands it over: configured with BASE's cloud (check makes no request)."""
    return configured(provider_class(), BASE["cloud"])


def with_cloud(**changes: Any) -> dict[str, Any]:
    """BASE with several ``cloud`` keys changed at once (``...`` deletes one)."""
    config = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is ...:
            del config["cloud"][key]
        else:
            config["cloud"][key] = value
    return config


# (case, config, the key the error must name)
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("lab-not-boolean", changed("lab", "sometimes"), "lab"),
    ("password-missing", changed("cloud.password", ...), "cloud.password"),
    ("password-env-unset", with_cloud(password=..., passwordEnv="PCD_DRILL_UNSET_PASSWORD"),
     "cloud.passwordEnv"),
    ("auth-url-not-a-url", changed("cloud.authUrl", "keystone at port 5000"), "cloud.authUrl"),
    ("auth-url-ftp", changed("cloud.authUrl", "ftp://127.0.0.1/v3"), "cloud.authUrl"),
    ("region-wrong-type", changed("cloud.region", ["RegionOne"]), "cloud.region"),
    ("unknown-backend", changed("storage.backend", "ceph"), "storage.backend"),
    ("relative-mount-path", changed("storage.nfs.mountPath", "imagelibrary/data"), "storage.nfs.mountPath"),
    ("cinder-without-volume-type", changed("storage", {"backend": "cinder", "cinder": {}}),
     "storage.cinder.volumeType"),
    ("hosts-not-a-list", changed("hosts", "lab-host-1.lab.local"), "hosts"),
    ("hosts-empty", changed("hosts", []), "hosts"),
    ("host-without-id-or-hostname", changed("hosts.1", {"region": "RegionOne"}), "hosts[1]"),
    ("duplicate-image-names", changed("images", BASE["images"] * 2), "images[1].name"),
    ("image-source-bad-url", changed("images.0.source", "ftp://images.example.com/tiny.img"),
     "images[0].source"),
    ("poll-interval-not-a-number", changed("roles", {"pollIntervalSeconds": "fast"}),
     "roles.pollIntervalSeconds"),
    ("probe-timeout-negative", changed("health", {"probeTimeoutSeconds": -5}), "health.probeTimeoutSeconds"),
]


@pytest.fixture
def no_http() -> Iterator[requests_mock.Mocker]:
    """Every HTTP request fails the drill: requests-mock with no routes and no real HTTP."""
    with requests_mock.Mocker(real_http=False) as mock:
        yield mock


@pytest.mark.parametrize(("config", "key"), [(c, k) for _, c, k in MALFORMED],
                         ids=[n for n, _, _ in MALFORMED])
def test_malformed_config_is_refused_naming_the_key_before_any_request(
    config: dict[str, Any], key: str, no_http: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PCD_DRILL_UNSET_PASSWORD", raising=False)
    with pytest.raises(SettingsError) as caught:
        run_program_under_mocks(config, preview=True)
    error = caught.value
    assert error.keys == [f"pcd-imagelib-ha:{key}"], str(error)
    assert f"pcd-imagelib-ha:{key}" in str(error)
    assert SECRET not in str(error)
    assert no_http.call_count == 0


def settings_check(records: list[RecordedResource]) -> list[tuple[str, str]]:
    (settings,) = [r for r in records if r.type == SETTINGS_TYPE]
    result = provider_of(ImageLibrarySettingsProvider).check({}, dict(settings.inputs))
    return [(f.property, f.reason) for f in result.failures]


def health_check(records: list[RecordedResource], *, role_ids_known: bool) -> list[tuple[str, str]]:
    """The health provider's ``check`` failures for the program's health inputs.

    At preview the roles' host ids are unknown; at apply they are known (made-up ids here: ``check``
    must refuse before anything would look them up).
    """
    (health,) = [r for r in records if r.type == HEALTH_TYPE]
    inputs = dict(health.inputs)
    assert is_unknown(inputs["role_host_ids"]), inputs["role_host_ids"]  # the roles' output
    if role_ids_known:
        inputs["role_host_ids"] = [f"drill-host-id-{n}" for n in range(len(inputs["hosts"]))]
    result = provider_of(ImageLibraryHealthProvider).check({}, inputs)
    return [(f.property, f.reason) for f in result.failures]


def role_checks(records: list[RecordedResource]) -> list[tuple[str, str]]:
    """The baseline's and the roles' ``check`` failures for the program's inputs (baseline unknown)."""
    (baseline,) = [r for r in records if r.type == BASELINE_TYPE]
    (roles,) = [r for r in records if r.type == ROLES_TYPE]
    assert is_unknown(roles.inputs["baseline"]), roles.inputs["baseline"]
    failures = provider_of(ImageLibraryRoleBaselineProvider).check({}, dict(baseline.inputs)).failures
    failures += provider_of(ImageLibraryRolesProvider).check({}, dict(roles.inputs)).failures
    return [(f.property, f.reason) for f in failures]


# (case, config, policy that must report it, settings-check property that must refuse it, fragment)
HA_VIOLATIONS: list[tuple[str, dict[str, Any], str, str | None, str]] = [
    ("mixed-regions", changed("hosts.2", {"hostname": "lab-host-r2-1.lab.local", "region": "RegionTwo"}),
     "single-region", "hosts", "RegionTwo"),
    ("mismatched-mount-paths", changed("hosts.1", {"hostname": "lab-host-2.lab.local",
                                                  "mountPath": "/mnt/elsewhere"}),
     "same-mount-path", "hosts", "/mnt/elsewhere"),
    ("local-with-two-hosts", {**changed("storage", {"backend": "local", "local": {"path": MOUNT}}),
                              "hosts": BASE["hosts"][:2]},
     "shared-storage-required", "backend", "local"),
    # One host is legal but not highly available: an advisory from the pack, nothing to refuse.
    ("one-host", changed("hosts", BASE["hosts"][:1]), "minimum-hosts", None, "1"),
]


@pytest.mark.parametrize(("config", "policy", "refused", "fragment"),
                         [(c, p, r, f) for _, c, p, r, f in HA_VIOLATIONS],
                         ids=[n for n, *_ in HA_VIOLATIONS])
def test_ha_prerequisite_violation_is_reported_by_the_pack_and_refused_by_check(
    config: dict[str, Any], policy: str, refused: str | None, fragment: str, no_http: requests_mock.Mocker
) -> None:
    records = run_program_under_mocks(config, preview=True)
    found = judge(records)
    assert list(found) == [policy], found
    assert any(fragment in message for message in found[policy]), found[policy]
    failures = settings_check(records)
    if refused is None:
        assert failures == []
    else:
        assert [prop for prop, _ in failures] == [refused], failures
        assert all(SECRET not in reason for _, reason in failures)
    assert no_http.call_count == 0


@pytest.mark.parametrize("role_ids_known", [False, True], ids=["preview", "apply"])
@pytest.mark.parametrize(("config", "refused", "fragment"),
                         [(c, r, f) for _, c, _, r, f in HA_VIOLATIONS],
                         ids=[n for n, *_ in HA_VIOLATIONS])
def test_ha_prerequisite_violation_is_refused_by_the_health_check_too(
    config: dict[str, Any], refused: str | None, fragment: str, role_ids_known: bool,
    no_http: requests_mock.Mocker,
) -> None:
    records = run_program_under_mocks(config, preview=True)
    failures = health_check(records, role_ids_known=role_ids_known)
    if refused is None:
        assert failures == []
    else:
        # The same property as the settings check refuses, naming the offending value and the key to fix.
        assert [prop for prop, _ in failures] == [refused], failures
        (reason,) = [reason for _, reason in failures]
        assert fragment in reason and "pcd-imagelib-ha:" in reason, reason
        assert SECRET not in reason
    assert no_http.call_count == 0


def test_the_unchanged_base_config_passes_pack_and_check(no_http: requests_mock.Mocker) -> None:
    records = run_program_under_mocks(BASE, preview=True)
    assert judge(records) == {}
    assert settings_check(records) == []
    assert health_check(records, role_ids_known=False) == []
    assert health_check(records, role_ids_known=True) == []
    assert role_checks(records) == []
    assert no_http.call_count == 0


def test_the_base_config_outside_a_lab_with_one_host_is_refused_by_check(
    no_http: requests_mock.Mocker,
) -> None:
    config = {**changed("hosts", BASE["hosts"][:1]), "lab": False}
    config["cloud"] = {**config["cloud"], "authUrl": "https://pcd.example.com/keystone/v3"}
    records = run_program_under_mocks(config)
    assert [prop for prop, _ in settings_check(records)] == ["hosts"]
    assert [prop for prop, _ in health_check(records, role_ids_known=True)] == ["hosts"]
    assert no_http.call_count == 0


@pytest.mark.lab
@pytest.mark.parametrize("ref", ["no-such-host.lab.local", "5b0c1f4e-7d7a-4c39-9a57-0d2f4f0f9e11"])
def test_unknown_host_reference_is_a_clear_error_before_any_host_is_touched(lab: Lab, ref: str) -> None:
    status = lab.status()
    before = [(h["name"], h["roles"], h["role_status"], h["running"]) for h in status["hosts"]]
    provider = configured(ImageLibraryRoleBaselineProvider(), cloud_of(status))
    refs = [host(status, REGION_ONE_HOSTS[0])["hostname"], ref]
    checked = provider.check({}, {"region": status["region"], "hosts": refs})
    assert checked.failures == []
    with pytest.raises(HostNotFound) as caught:
        provider.create(checked.inputs)
    text = str(caught.value)
    assert f"'{ref}'" in text and "pcd-imagelib-ha:hosts" in text
    assert host(status, REGION_ONE_HOSTS[1])["hostname"] in text  # it lists the hosts it knows
    assert status["admin"]["password"] not in text
    after = [(h["name"], h["roles"], h["role_status"], h["running"]) for h in lab.status()["hosts"]]
    assert after == before
