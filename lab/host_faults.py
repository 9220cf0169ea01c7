"""Faults on a lab host seen as a machine: its service, log, config, mount, sshd and service user.

Each acts where an operator or an accident would on a real host, so the host checks over SSH meet
them as they would in the field: `service-stop` stops the Glance service without touching its role,
`log-error` appends a line as Glance logs it, `log-rotate` renames the log as logrotate does (Glance's
WatchedFileHandler reopens the new file on its next line), `conf-set` edits glance-api.conf and
restarts the service on it (the next converge renders it again, as on PCD), `unmount` leaves the
store path a plain local directory, `uid-skew` gives the host's glance user another uid.
"""

from __future__ import annotations

import configparser
import io
import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lab.host_ns import SKEWED_UID

if TYPE_CHECKING:
    from lab.host_control import HostRuntime
    from lab.machines import HostMachines
    from lab.supervisor import Supervisor

# action -> (CLI help, names of its arguments)
HOST_FAULTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "service-stop": ("stop the host's Glance service (its role and endpoint stay)", ()),
    "service-start": ("start the host's Glance service on its config as it is", ()),
    "log-error": ("append a real-looking ERROR line with TEXT to the host's Glance log", ("text",)),
    "log-rotate": ("rotate the host's Glance log (rename to .1, new empty file)", ()),
    "sshd-stop": ("stop the host's sshd", ()),
    "sshd-start": ("start the host's sshd", ()),
    "unmount": ("unmount the host's store: the store path is left a plain local directory", ()),
    "conf-set": ("set SECTION KEY VALUE in the host's glance-api.conf and restart the service",
                 ("section", "key", "value")),
    "uid-skew": ("give the host's glance user another uid/gid than the other hosts", ()),
}


class HostFaults:
    """Applies the machine-level faults to one supervisor's hosts."""

    def __init__(self, sup: Supervisor) -> None:
        if sup.machines is None:
            raise ValueError("host faults need mount namespaces (this lab runs without them)")
        self.sup = sup
        self.machines: HostMachines = sup.machines

    def apply(self, name: str, action: str, body: dict[str, Any]) -> None:
        h = self.sup.find(name)
        spec = h.spec
        if action == "service-stop":
            self.sup.stop_service(h)
        elif action == "service-start":
            self._require_role(h)
            self.sup.start_service(h)
        elif action == "log-error":
            self._log_error(h, str(body.get("text") or "lab fault"))
        elif action == "log-rotate":
            log = self.machines.ns(spec).log_file
            rotated = log.with_name(log.name + ".1")
            if rotated.exists():
                rotated.replace(log.with_name(log.name + ".2"))
            if log.exists():
                log.replace(rotated)
            log.touch()
        elif action == "sshd-stop":
            self.machines.sshd(spec).stop()
        elif action == "sshd-start":
            self.machines.sshd(spec).start()
        elif action == "unmount":
            self.machines.ns(spec).unmount_store()
        elif action == "conf-set":
            self._require_role(h)
            self._conf_set(h, str(body["section"]), str(body["key"]), str(body["value"]))
        elif action == "uid-skew":
            self.machines.ns(spec).set_glance_uid(SKEWED_UID)
        else:
            raise ValueError(f"unknown host fault {action!r}")

    def _require_role(self, h: HostRuntime) -> None:
        if not h.roles:
            raise ValueError(f"{h.spec.name} does not hold the image-library role: it has no Glance service")

    def _log_error(self, h: HostRuntime, text: str) -> None:
        pid = h.proc.pid if h.proc is not None else os.getpid()
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        line = (f"{stamp} {pid} ERROR glance.api.v2.images [None req-{uuid.uuid4()} - - - - - -] "
                f"{text}\n")
        with open(self.machines.ns(h.spec).log_file, "a") as f:
            f.write(line)

    def _conf_set(self, h: HostRuntime, section: str, key: str, value: str) -> None:
        conf_file = self.sup.glance_instance(h).conf_file
        parser = configparser.RawConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
        parser.read(conf_file)
        if section != "DEFAULT" and not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
        out = io.StringIO()
        parser.write(out)
        conf_file.write_text(out.getvalue())  # same inode: mode and owner stay
        self.sup.stop_service(h)
        self.sup.start_service(h)
