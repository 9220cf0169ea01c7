"""A lab host's machine view: one long-lived mount namespace per host that its Glance and sshd share.

A holder process owns the namespace for the host's whole life (Glance restarts, role changes and sshd
restarts do not recreate it), as a real machine outlives its services. Inside it:

- its own hostname (a UTS namespace) and ``/etc/hosts``: Cinder records each attachment under the
  attaching host's name;
- the image store bound at the region blueprint's path (or left a plain local directory by `unmount`);
  for a Cinder store, the holder is nested in the lab's export namespace (lab.nfs_emulation), where
  glance_store mounts the "NFS" share itself;
- the Glance config directory at ``/etc/glance`` (``glance-api.conf`` mode 0640 root:glance) and the
  host's live Glance log directory at ``/var/log/airctl``;
- ``/etc/passwd`` and ``/etc/group`` of the host's own, with a ``glance`` service user whose uid can be
  skewed on one host, and root's home and shell made quiet for commands run over SSH;
- a ``systemctl`` stand-in (first on sshd's ``PATH``) answering for the unit ``airctl-glance`` by
  whether the host's Glance process lives: a frozen (SIGSTOP) Glance still reads ``active``, as with
  systemd.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from lab import procs
from lab.settings import HostSpec, LabConfig

UNIT = "airctl-glance"
CONF_DIR_IN_HOST = Path("/etc/glance")
LOG_DIR_IN_HOST = Path("/var/log/airctl")
LOG_NAME = "glance.log"
GLANCE_UID = 64062  # Debian's glance uid: the same on every host unless `uid-skew` changes one
SKEWED_UID = GLANCE_UID + 1000
HOLDER_MARKER = "lab-host-ns"

_SYSTEMCTL = r"""#!/bin/sh
# The lab's systemctl: one unit, the host's Glance, active while its master process lives
# (a SIGSTOPped process still lives, so a frozen Glance reads active, as with systemd).
UNIT=@UNIT@
PIDFILE=@PIDFILE@
verb=""; unit=""; props=""; want=""
for a in "$@"; do
  if [ -n "$want" ]; then props="$props,$a"; want=""; continue; fi
  case "$a" in
    -p|--property) want=1 ;;
    --property=*) props="$props,${a#--property=}" ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$a; else unit=${a%.service}; fi ;;
  esac
done
pid=$(cat "$PIDFILE" 2>/dev/null)
state=inactive; sub=dead; main=0
if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && \
   [ "$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)" != Z ]; then
  state=active; sub=running; main=$pid
fi
known=yes; [ "$unit" = "$UNIT" ] || known=no
case "$verb" in
  is-active)
    if [ $known = no ]; then echo inactive; exit 4; fi
    echo $state; [ $state = active ] && exit 0; exit 3 ;;
  status)
    if [ $known = no ]; then echo "Unit $unit.service could not be found." >&2; exit 4; fi
    echo "* $UNIT.service - Image Library (Glance API)"
    echo "     Loaded: loaded (/etc/systemd/system/$UNIT.service; enabled; preset: enabled)"
    echo "     Active: $state ($sub)"
    [ $main != 0 ] && echo "   Main PID: $main (gunicorn)"
    [ $state = active ] && exit 0; exit 3 ;;
  show)
    load=loaded
    if [ $known = no ]; then load=not-found; state=inactive; sub=dead; main=0; fi
    for kv in LoadState=$load ActiveState=$state SubState=$sub MainPID=$main; do
      case ",$props," in ",,"|*",${kv%%=*},"*) echo "$kv" ;; esac
    done
    exit 0 ;;
  *) echo "lab systemctl: only is-active, status and show are emulated" >&2; exit 1 ;;
esac
"""


class HostNamespace:
    """One lab host's long-lived mount namespace and the files that make it look like a machine."""

    def __init__(self, cfg: LabConfig, spec: HostSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.dir = cfg.host_dir(spec.name) / "ns"

    # ---- paths (outside the namespace) ---------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def log_dir(self) -> Path:
        return self.dir / "log"

    @property
    def log_file(self) -> Path:
        """The host's Glance log (the same file is /var/log/airctl/glance.log inside the host)."""
        return self.log_dir / LOG_NAME

    @property
    def unit_pid_file(self) -> Path:
        return self.dir / f"{UNIT}.pid"

    @property
    def root_home(self) -> Path:
        return self.dir / "root-home"

    def _pid_file(self) -> Path:
        return self.dir / "holder.pid"

    # ---- the holder ----------------------------------------------------------------------------
    def holder_pid(self) -> int | None:
        try:
            pid = int(self._pid_file().read_text().strip())
        except (OSError, ValueError):
            return None
        return procs.ours(pid, cmd_marker=f"{HOLDER_MARKER} {self.dir}")

    def in_export(self) -> bool:
        """Whether the running holder was made inside the lab's Cinder export namespace."""
        return (self.dir / "in-export").exists()

    def ensure(self, store_source: Path, conf_dir: Path, *, store_path: Path,
               export_enter: list[str] | None = None) -> int:
        """Start the holder (once) and lay out the host; returns the holder's pid.

        export_enter: the argv prefix entering the Cinder export namespace, to nest the host in it."""
        pid = self.holder_pid()
        if pid is not None:
            return pid
        self._write_files()
        for target in (CONF_DIR_IN_HOST, LOG_DIR_IN_HOST, store_path):
            target.mkdir(parents=True, exist_ok=True)  # empty mount points in the machine's own tree
        conf_dir.mkdir(parents=True, exist_ok=True)
        ready = self.dir / "holder.ready"
        ready.unlink(missing_ok=True)
        (self.dir / "in-export").unlink(missing_ok=True)
        proc = procs.spawn(
            [*(export_enter or []), "unshare", "-m", "-u", "--propagation", "private", "--", "/bin/sh", "-c",
             # Written once unshare has run: every later mount and the hostname land in this host only.
             'hostname "$2" && : > "$1/holder.ready" && while :; do sleep 3600; done',
             HOLDER_MARKER, str(self.dir), self.spec.hostname],
            cwd=self.dir, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            log_path=self.dir / "holder.out",
        )
        self._wait_ready(proc.pid, ready)
        self._pid_file().write_text(str(proc.pid))
        if export_enter:
            (self.dir / "in-export").touch()
        short = self.spec.hostname.split(".")[0]
        (self.dir / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.spec.hostname} {short}\n")
        self.run_inside(
            "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/group && "
            "mount --bind \"$3\" \"$4\" && mount --bind \"$5\" \"$6\" && mount --bind \"$7\" /etc/hosts",
            str(self.dir / "passwd"), str(self.dir / "group"), str(conf_dir), str(CONF_DIR_IN_HOST),
            str(self.log_dir), str(LOG_DIR_IN_HOST), str(self.dir / "hosts"),
        )
        self.mount_store(store_source, store_path)
        return proc.pid

    def _wait_ready(self, pid: int, ready: Path) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ready.exists():
                return
            if not procs.alive(pid):
                break
            time.sleep(0.01)
        procs.stop_group(pid)
        raise RuntimeError(f"{self.spec.name}: the namespace holder did not start; see {self.dir}")

    def nsenter(self, wd: Path | None = None) -> list[str]:
        """The argv prefix that runs a command inside this host (in wd: entering a mount namespace
        otherwise leaves the command in /)."""
        pid = self.holder_pid()
        if pid is None:
            raise RuntimeError(f"{self.spec.name}: its namespace holder is not running")
        return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", f"--uts=/proc/{pid}/ns/uts",
                *([f"--wd={wd}"] if wd else []), "--"]

    def run_inside(self, script: str, *args: str) -> str:
        res = subprocess.run([*self.nsenter(), "/bin/sh", "-c", script, "lab-host", *args],
                             capture_output=True, text=True, check=False, timeout=30)
        if res.returncode != 0:
            raise RuntimeError(f"{self.spec.name}: {script!r} failed: {res.stderr.strip()}")
        return res.stdout

    def stop(self) -> None:
        pid = self.holder_pid()
        if pid is not None:
            procs.stop_group(pid)
        self._pid_file().unlink(missing_ok=True)

    # ---- the store -----------------------------------------------------------------------------
    def store_path(self) -> Path:
        """Where the file store is bound now (the blueprint's path at the last converge)."""
        try:
            return Path((self.dir / "store-path").read_text().strip())
        except OSError:
            return self.cfg.store_path

    def mount_store(self, source: Path, path: Path | None = None) -> None:
        """Bind source at path (by default where it is bound now), replacing whatever was bound there
        (and leaving a former path, when the blueprint's path changed, a plain directory)."""
        old = self.store_path()
        path = path or old
        if old != path:
            self.run_inside('while mountpoint -q "$1"; do umount -l "$1"; done', str(old))
        source.mkdir(parents=True, exist_ok=True)
        # Owned by the glance service user, as an operator prepares an NFS share for Glance: a host
        # whose glance uid differs cannot write to it.
        os.chown(source, GLANCE_UID, GLANCE_UID)
        os.chmod(source, 0o700)
        self.run_inside('mkdir -p "$2"; while mountpoint -q "$2"; do umount -l "$2"; done; '
                        'mount --bind "$1" "$2"', str(source), str(path))
        (self.dir / "store-path").write_text(str(path))

    def unmount_store(self) -> None:
        """Leave the store path a plain local directory (the fault a forgotten NFS mount causes)."""
        self.run_inside('while mountpoint -q "$1"; do umount -l "$1"; done', str(self.store_path()))

    def unmount_under(self, base: Path) -> None:
        """Unmount everything mounted below base in this host (deepest first)."""
        self.run_inside(
            "awk -v b=\"$1/\" 'index($5, b) == 1 {print $5}' /proc/self/mountinfo | sort -r | "
            "while read -r m; do umount -l \"$m\"; done", str(base))

    # ---- Glance --------------------------------------------------------------------------------
    def glance_started(self, pid: int, conf_file: Path) -> None:
        """Record the unit's main pid; give glance-api.conf the ownership real hosts give it."""
        self.unit_pid_file.write_text(str(pid))
        os.chown(conf_file, 0, GLANCE_UID)
        os.chmod(conf_file, 0o640)

    # ---- users ---------------------------------------------------------------------------------
    def set_glance_uid(self, uid: int) -> None:
        """Rewrite the host's passwd/group in place (the bind mounts keep their inodes)."""
        base = [ln for ln in Path("/etc/passwd").read_text().splitlines()
                if not ln.startswith(("glance:", "root:"))]
        passwd = [f"root:x:0:0:root:{self.root_home}:/bin/sh", *base,
                  f"glance:x:{uid}:{uid}:Glance service user:/var/lib/glance:/usr/sbin/nologin"]
        groups = [ln for ln in Path("/etc/group").read_text().splitlines() if not ln.startswith("glance:")]
        _rewrite(self.dir / "passwd", "\n".join(passwd) + "\n")
        _rewrite(self.dir / "group", "\n".join([*groups, f"glance:x:{uid}:"]) + "\n")

    def glance_uid(self) -> int:
        for line in (self.dir / "passwd").read_text().splitlines():
            if line.startswith("glance:"):
                return int(line.split(":")[2])
        raise RuntimeError(f"{self.spec.name}: no glance user in {self.dir / 'passwd'}")

    def _write_files(self) -> None:
        for d in (self.dir, self.bin_dir, self.log_dir, self.root_home):
            d.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "passwd").exists():
            self.set_glance_uid(GLANCE_UID)
        systemctl = self.bin_dir / "systemctl"
        systemctl.write_text(_SYSTEMCTL.replace("@UNIT@", UNIT).replace("@PIDFILE@", str(self.unit_pid_file)))
        systemctl.chmod(0o755)


def _rewrite(path: Path, text: str) -> None:
    with open(path, "r+" if path.exists() else "w") as f:
        f.seek(0)
        f.write(text)
        f.truncate()
