"""Which images a host may pull: only a pinned URL without a credential; everything else uploads."""

from __future__ import annotations

import pytest

from imagelib_ha.client.image_source import ImageSource
from imagelib_ha.client.web_download import ImportPolicy, create_image_by_method, why_upload

PIN = "ab" * 32


@pytest.mark.parametrize("method", ["web-download", "auto"])
@pytest.mark.parametrize(
    ("location", "pin", "reason"),
    [
        ("/images/a.raw", PIN, "local file"),
        ("https://user:pw@mirror.test/a.raw", PIN, "carries a credential"),
        ("https://mirror.test/a.raw?sig=abc", PIN, "carries a credential"),
        ("https://mirror.test/a.raw", None, "not pinned"),
    ],
)
def test_anything_but_a_pinned_plain_url_is_uploaded(method: str, location: str, pin: str | None,
                                                     reason: str) -> None:
    why = why_upload(method, ImageSource(location, expected_sha256=pin))
    assert why is not None and reason in why
    assert "pw" not in why and "sig" not in why


def test_a_pinned_plain_url_may_be_pulled_unless_upload_is_asked_for() -> None:
    source = ImageSource("https://mirror.test/a.raw", expected_sha256=PIN)
    assert why_upload("web-download", source) is None
    assert why_upload("auto", source) is None
    assert why_upload("upload", source) == "importMethod is upload"


def test_an_unknown_method_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="not one of upload, web-download, auto"):
        create_image_by_method(None, None, ImageSource("https://mirror.test/a.raw"), [],  # type: ignore[arg-type]
                               policy=ImportPolicy("ftp"))
