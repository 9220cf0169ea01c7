"""Host checks without hosts: parsing the check command's output, the store rule, log errors, majority."""

from __future__ import annotations

from imagelib_ha.client.health_report import ExpectedStore
from imagelib_ha.client.host_checks import _outside_majority, store_config_problem
from imagelib_ha.client.host_log import classify, redact
from imagelib_ha.client.host_probe import parse

FILE = ExpectedStore("file", "/var/opt/imagelibrary/data")
ERROR_LINE = ("2026-11-30 10:00:00.000 4242 ERROR glance.api.v2.images "
              "[None req-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 - - - - - -] boom password=hunter2")
OUTPUT = f"""@@unit pf9-glance-api
LoadState=not-found
ActiveState=inactive
SubState=dead
MainPID=0
@@unit airctl-glance
LoadState=loaded
ActiveState=active
SubState=running
MainPID=4242
@@log
cursor 77 1200
{ERROR_LINE}
@@config
@@file /etc/glance/glance-api.conf 640 root glance
[DEFAULT]
enabled_backends = file:file
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = /var/opt/imagelibrary/data
@@file /etc/glance/glance-api.conf.d/90-override.conf 644 root root
[file]
filesystem_store_datadir = /srv/elsewhere
@@mount
source 10.0.0.5:/export/images
writable yes
ids 64062 64062
@@end
"""


def test_parse_reads_every_section_and_later_files_override_earlier_ones() -> None:
    facts = parse(OUTPUT)
    assert facts.complete
    assert [(u.name, u.load_state, u.active_state, u.main_pid) for u in facts.units] == [
        ("pf9-glance-api", "not-found", "inactive", 0), ("airctl-glance", "loaded", "active", 4242)]
    assert facts.log_cursor is not None and (facts.log_cursor.inode, facts.log_cursor.offset) == (77, 1200)
    assert len(facts.log_lines) == 1
    assert [c.mode for c in facts.config_files] == ["640", "644"]
    assert facts.effective_store_config()["file"]["filesystem_store_datadir"] == "/srv/elsewhere"
    assert facts.mount is not None and facts.mount.source == "10.0.0.5:/export/images"
    assert facts.mount.writable_by_glance and facts.mount.glance_uid == "64062"
    assert store_config_problem(facts.effective_store_config(), FILE) == (
        "filesystem_store_datadir is '/srv/elsewhere', expected '/var/opt/imagelibrary/data'")


def test_output_cut_short_is_incomplete() -> None:
    assert not parse(OUTPUT.split("@@mount")[0]).complete


def test_store_rule_multi_store_legacy_and_cinder() -> None:
    multi = {"DEFAULT": {"enabled_backends": "fast:file, cheap:cinder"},
             "glance_store": {"default_backend": "cheap"}, "cheap": {"cinder_volume_type": "ssd"}}
    assert store_config_problem(multi, ExpectedStore("cinder", volume_type="ssd")) is None
    assert store_config_problem(multi, ExpectedStore("cinder", volume_type="hdd")) == (
        "cinder_volume_type is 'ssd', expected 'hdd'")
    assert "type 'cinder', expected 'file'" in str(store_config_problem(multi, FILE))
    legacy = {"glance_store": {"default_store": "file",
                               "filesystem_store_datadir": "/var/opt/imagelibrary/data/"}}
    assert store_config_problem(legacy, FILE) is None
    missing = {"DEFAULT": {"enabled_backends": "file:file"}, "glance_store": {"default_backend": "nope"}}
    assert "not one of enabled_backends" in str(store_config_problem(missing, FILE))


def test_log_errors_redacted_bounded_and_own_requests_discounted() -> None:
    own = "req-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    lines = [
        f"2026-11-30 10:00:00.000 1 ERROR glance.api.v2.image_data "
        f"[{own} req-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee - - - - -] "
        "Failed to upload image data due to internal error",
        "2026-11-30 10:00:01.000 1 ERROR keystonemiddleware.auth_token [-] "
        "auth to http://glance:s3cr3t@ks/v3 failed, password=hunter2 "
        "token gAAAAABlongfernettokenvalue0123456789abcdef",
        "2026-11-30 10:00:02.000 1 CRITICAL glance [-] Unhandled error",
        "2026-11-30 10:00:03.000 1 WARNING glance.x [-] not counted",
    ]
    errs = classify(lines, own_request_ids=frozenset({own}))
    assert (errs.errors, errs.critical, errs.discounted) == (1, 1, 1)
    text = " ".join(errs.quoted)
    for secret in ("hunter2", "s3cr3t", "gAAAAABlongfernet"):
        assert secret not in text
    assert len(redact("word " * 100)) == 200
    assert classify(lines).count == 3


def _traceback(header: str, frames: int) -> list[str]:
    """The lines oslo.log adds after a logged exception: the message's header, no request context."""
    lines = [f"{header} Traceback (most recent call last):"]
    for i in range(frames):
        lines += [f'{header}   File "/srv/glance/x{i}.py", line {i}, in f{i}', f"{header}     g{i}()"]
    return [*lines, f"{header} webob.request.DisconnectionError: The client disconnected", f"{header} "]


def test_a_traceback_counts_once_with_its_message_and_is_discounted_with_it() -> None:
    own = "req-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    at = "2026-11-30 10:00:00.994 42 ERROR glance.common.wsgi"
    hung_up = [f"{at} [None {own} u p - - default default] Caught error: The client disconnected",
               *_traceback(at, 30)]
    # Another message, same second, same logger, its own context: a second error, not a traceback line.
    disk_full = f"{at} [None req-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee u p - - - -] Caught error: disk full"
    other = [disk_full, *_traceback(at, 2)]
    assert classify(hung_up, own_request_ids=frozenset({own})).count == 0
    assert classify(hung_up, own_request_ids=frozenset({own})).discounted == 1
    assert classify(hung_up).count == 1
    errs = classify(hung_up + other, own_request_ids=frozenset({own}))
    assert (errs.errors, errs.discounted) == (1, 1)
    assert errs.quoted == (disk_full,)  # the message, its request id kept for grepping the log
    # A traceback whose message was before the cursor (or cut by the read bound) counts on its own.
    assert classify(_traceback(at, 1)).count == 1


def test_hosts_outside_the_majority_are_flagged_and_a_tie_flags_all() -> None:
    assert _outside_majority({"a": "1", "b": "1", "c": "2"}) == ["c"]
    assert _outside_majority({"a": "1", "b": "1"}) == []
    assert _outside_majority({"a": "1", "b": "2"}) == ["a", "b"]
