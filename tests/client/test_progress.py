"""Progress lines: at most one a second, with host, attempt, bytes and rate; the last bytes reported."""

from __future__ import annotations

from imagelib_ha.client.progress import MIB, TransferMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fast_transfer_reports_once_a_second_and_its_end() -> None:
    clock, lines = Clock(), []
    meter = TransferMeter(lines.append, host="http://h1:9494", attempt=2, what="upload", total=100 * MIB,
                          clock=clock)
    for step in range(1, 101):  # 1 MiB every 25 ms: 2.5 s in all
        clock.now += 0.025
        meter.update(step * MIB)
    meter.finish()
    assert len(lines) == 3, lines  # at 1 s, at 2 s, and the final figure
    assert lines[0] == "http://h1:9494: upload attempt 2: 40.0/100.0 MiB (40%) at 41.9 MB/s"
    assert lines[-1].startswith("http://h1:9494: upload attempt 2: 100.0/100.0 MiB (100%)")


def test_nothing_new_means_no_final_line() -> None:
    clock, lines = Clock(), []
    meter = TransferMeter(lines.append, host="h", attempt=0, what="read-back", clock=clock)
    clock.now += 1.5
    meter.update(3 * MIB)
    meter.finish()
    assert lines == ["h: read-back attempt 0: 3.0 MiB at 2.1 MB/s"]


def test_status_lines_are_throttled_too() -> None:
    clock, lines = Clock(), []
    meter = TransferMeter(lines.append, host="h", attempt=1, what="web-download", clock=clock)
    for _ in range(10):  # a poll every 0.3 s for 3 s: lines at 1.2 s and 2.4 s only
        clock.now += 0.3
        meter.status("importing")
    assert lines == ["h: web-download attempt 1: importing (1 s)",
                     "h: web-download attempt 1: importing (2 s)"]
