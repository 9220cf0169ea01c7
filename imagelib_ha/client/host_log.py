"""Errors in a host's Glance log since a cursor: what counts, what is quoted, what is hidden.

The cursor is the log file's inode and a byte offset. Lines before it never count again; nor do
lines from before the service's last (re)start (a converge restarts Glance, which logs errors while
starting): the cursor keeps the service's main pid, and a new pid resets it. When the log
was rotated (renamed, a new file created, as logrotate does) the rest of the old file is read through
its inode and then the new file from its start, so a rotation loses no error. The host side of this
(the shell in ``host_probe``) prints only the ERROR and CRITICAL lines, at most ``MAX_LOG_BYTES``; this
module turns them into a bounded, redacted finding.

Errors are counted as *messages*, not lines: oslo.log writes a logged exception's traceback as more
lines with the same time, pid, level and logger as the message, but without its ``[request context]``
(measured: one client hang-up mid-upload is 2 messages and 64 lines on Glance 33). Those lines belong to
the message before them, so a traceback counts once, and is discounted with its message.

Messages carrying the request id of one of this project's own aborted uploads (a failover that hung up
mid-upload makes Glance log errors for it) are discounted: they do not condemn a healthy host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LOG_BYTES = 64 * 1024  # ERROR/CRITICAL bytes read per host and check
QUOTED_LINES = 3
QUOTE_WIDTH = 200

# oslo.log's context format: "<date> <time> <pid> <LEVEL> <logger> [<global req> <req-id> ...] message"
_LINE = re.compile(r"^(?P<header>\S+ \S+ \d+ (?P<level>ERROR|CRITICAL) (?P<logger>\S+)) (?P<rest>.*)$")
_REQUEST_IDS = re.compile(r"req-[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
_SECRETS = [
    # key=value / key: value pairs whose key says secret
    (re.compile(r"(?i)\b([\w-]*(?:password|passwd|secret|token|api_key|apikey|credential)[\w-]*)"
                r"(\s*[=:]\s*)(['\"]?)[^\s'\",;]+"), r"\1\2\3***"),
    # user:password@ in URLs
    (re.compile(r"(://[^/\s:@]+):[^@\s/]+@"), r"\1:***@"),
    # Fernet tokens and other long opaque strings
    (re.compile(r"\bgAAAA[\w-]{20,}"), "***"),
    # (request ids are kept: they are what an operator greps the log for)
    (re.compile(r"\b(?!req-)[A-Za-z0-9+/_-]{40,}={0,2}"), "***"),
]


@dataclass(frozen=True)
class LogCursor:
    """Where the last check stopped reading: the log file's inode and the offset in it, and the
    service's main pid then (0: unknown). A new pid means the service (re)started since: what it
    logged while starting (a converge restarts it) is start-up noise, not a fault of the running host."""

    inode: int
    offset: int
    pid: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"inode": self.inode, "offset": self.offset, "pid": self.pid}


@dataclass(frozen=True)
class LogErrors:
    """The ERROR/CRITICAL messages since the cursor that count, quoted redacted and bounded."""

    errors: int
    critical: int
    discounted: int  # messages of this project's own aborted requests
    quoted: tuple[str, ...]
    truncated: bool
    baseline: bool  # no cursor yet: the check only set one, nothing was read

    @property
    def count(self) -> int:
        return self.errors + self.critical


def redact(line: str) -> str:
    """``line`` with anything that looks secret replaced by ``***``, cut to ``QUOTE_WIDTH``."""
    for pattern, repl in _SECRETS:
        line = pattern.sub(repl, line)
    return line if len(line) <= QUOTE_WIDTH else line[:QUOTE_WIDTH - 1] + "…"


def classify(lines: Iterable[str], *, own_request_ids: frozenset[str] = frozenset(),
             truncated: bool = False) -> LogErrors:
    """Count and quote the ERROR/CRITICAL messages; those of this project's aborted requests do not count."""
    errors = critical = discounted = 0
    quoted: list[str] = []
    header = None  # the current message's "<date> <time> <pid> <LEVEL> <logger>"
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        if match["header"] == header and not match["rest"].startswith("["):
            continue  # a line of the traceback of the message before: counted (or not) with it
        header = match["header"]
        if own_request_ids and set(_REQUEST_IDS.findall(match["rest"])) & own_request_ids:
            discounted += 1
            continue
        if match["level"] == "CRITICAL":
            critical += 1
        else:
            errors += 1
        if len(quoted) < QUOTED_LINES:
            quoted.append(redact(line.strip()))
    return LogErrors(errors, critical, discounted, tuple(quoted), truncated, baseline=False)
