"""The host-health book: last known health of each image-library endpoint, shared across images."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable


class HostHealthBook:
    """Last known health of each endpoint, shared by every image created in this process.

    Hosts that served last come first, unknown ones next, hosts that failed last (the longest-failed
    first, as the likeliest to have recovered). So a host known bad costs later images nothing while
    any other host works. Thread-safe: the provider process runs up to four calls at once.
    """

    GOOD, UNKNOWN, BAD = 0, 1, 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float, str]] = {}

    def mark_good(self, endpoint: str) -> None:
        with self._lock:
            self._state[endpoint] = (self.GOOD, time.monotonic(), "served")

    def mark_bad(self, endpoint: str, reason: str) -> None:
        with self._lock:
            self._state[endpoint] = (self.BAD, time.monotonic(), reason)

    def is_bad(self, endpoint: str) -> bool:
        with self._lock:
            return self._state.get(endpoint, (self.UNKNOWN, 0.0, ""))[0] == self.BAD

    def order(self, endpoints: Iterable[str]) -> list[str]:
        """``endpoints`` by last known health, keeping the given order among equals."""
        with self._lock:
            snapshot = dict(self._state)
        indexed = list(enumerate(dict.fromkeys(endpoints)))

        def rank(item: tuple[int, str]) -> tuple[int, float, int]:
            position, endpoint = item
            state, when, _ = snapshot.get(endpoint, (self.UNKNOWN, 0.0, ""))
            return (state, when if state == self.BAD else 0.0, position)

        return [endpoint for _, endpoint in sorted(indexed, key=rank)]

    def forget(self) -> None:
        with self._lock:
            self._state.clear()


# One book per process: the dynamic provider object is shared by its gRPC threads, and every
# FailoverImage in a deployment benefits from what earlier ones learned.
HOST_HEALTH = HostHealthBook()
