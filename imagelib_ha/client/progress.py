"""Progress of long uploads and imports: bytes, MB/s, host and attempt, at most once a second.

The lines go to the run's ``progress`` callable. In the in-process runner that is the terminal; in the
dynamic provider process it is stderr, which the Pulumi engine relays to ``pulumi up``'s display (see
``imagelib_ha.providers.image._progress``, which cites the engine code).
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIB = 1024 * 1024


class TransferMeter:
    """One attempt's transfer to one host: counts bytes and reports them, throttled to ``interval``.

    ``update(n)`` takes the running byte count (cheap: called for every chunk); a line is sent when
    ``interval`` has passed since the last one, and ``finish()`` sends a final line if any byte moved
    since. ``what`` names the transfer (``upload``, ``web-download``); ``total`` is the expected size
    when known.
    """

    def __init__(
        self,
        report: Callable[[str], None],
        *,
        host: str,
        attempt: int,
        what: str,
        total: int | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report = report
        self.host = host
        self.attempt = attempt
        self.what = what
        self.total = total
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_report = self.started
        self.done = 0
        self.reported = 0

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if now - self.last_report >= self.interval:
            self.last_report = now
            self.reported = done
            self.report(self.line(now))

    def status(self, text: str) -> None:
        """A throttled line about a transfer whose bytes the host does not tell (an import's status)."""
        now = self.clock()
        if now - self.last_report >= self.interval:
            self.last_report = now
            self.report(f"{self.host}: {self.what} attempt {self.attempt}: {text} "
                        f"({now - self.started:.0f} s)")

    def finish(self) -> None:
        if self.done != self.reported:
            self.reported = self.done
            self.report(self.line(self.clock()))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        size = f"{self.done / MIB:.1f}"
        if self.total:
            size += f"/{self.total / MIB:.1f} MiB ({100 * self.done / self.total:.0f}%)"
        else:
            size += " MiB"
        rate = self.done / elapsed / 1e6
        return f"{self.host}: {self.what} attempt {self.attempt}: {size} at {rate:.1f} MB/s"
