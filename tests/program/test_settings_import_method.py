"""``images[].importMethod`` and ``importTimeoutSeconds``: valid values reach the image resource,
bad ones stop the program with the key, the problem and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from program_configs import example_nfs_config, with_change

from imagelib_ha.settings import SettingsError, parse_settings


def settings_error(config: dict[str, Any]) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config, env={})
    return caught.value


def test_the_example_pulls_its_url_image_with_auto_and_the_default_bound() -> None:
    image = parse_settings(example_nfs_config(), env={}).images[0]
    assert (image.import_method, image.import_timeout_seconds) == ("auto", 1800)


def test_default_is_upload() -> None:
    config = example_nfs_config()
    del config["images"][0]["importMethod"]
    assert parse_settings(config, env={}).images[0].import_method == "upload"


def test_unknown_import_method_names_the_choices() -> None:
    error = settings_error(with_change(example_nfs_config(), "images.0.importMethod", "glance-direct"))
    assert error.keys == ["pcd-imagelib-ha:images[0].importMethod"]
    assert "'upload', 'web-download' or 'auto'" in str(error)


def test_web_download_of_a_local_file_is_refused_with_the_fix() -> None:
    config = with_change(example_nfs_config(), "images.0.source", "images/ubuntu.qcow2")
    config = with_change(config, "images.0.importMethod", "web-download")
    error = settings_error(config)
    assert error.keys == ["pcd-imagelib-ha:images[0].importMethod"]
    assert "a host can only pull a URL" in str(error) and "remove importMethod" in str(error)


def test_import_timeout_must_be_positive_seconds() -> None:
    error = settings_error(with_change(example_nfs_config(), "images.0.importTimeoutSeconds", 0))
    assert error.keys == ["pcd-imagelib-ha:images[0].importTimeoutSeconds"]
