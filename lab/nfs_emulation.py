"""The one emulated piece of the lab's Cinder: the NFS *transport*.

This kernel has no NFS client (nor device-mapper, iSCSI, NBD or RBD), so Cinder's NFS volume driver and
glance_store's Cinder store cannot really mount `127.0.0.1:/export`. Everything else is real: Cinder
creates, attaches and deletes volumes as files on the "share", and each Glance host mounts the share
through os-brick/glance_store's own mount code. Only the last step is redirected:

* `mount -t nfs HOST:/PATH MNT` (and `mount.nfs HOST:/PATH MNT`) become `mount --bind /PATH MNT`, by
  helpers on the `PATH` of cinder-volume and of the Glance hosts only; any other `mount` call goes to
  the real one.
* The export is its own filesystem (an ext4 image on a loop device, mounted at `<state>/cinder/export`
  in the lab's export namespace, which cinder-volume and the Cinder-store hosts are nested in):
  glance_store trusts a mount only when `os.path.ismount()` says so, which a bind of a plain
  directory would not.
* `sudo` is a helper too: as root, oslo.concurrency never uses a root helper, but oslo.privsep starts
  its daemon as `sudo <project>-rootwrap <conf> privsep-helper ...`; the helper drops the rootwrap part
  and runs `privsep-helper` from the lab venv (the daemon runs as root already).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from lab import procs
from lab.paths import LabSetupError, lab_venv_bin
from lab.settings import LabConfig

EXPORT_IMAGE_BYTES = 16 * 1024**3  # sparse: costs only what volumes hold
REAL_MOUNT = "/usr/bin/mount"

_MOUNT = """#!/bin/sh
# Lab NFS emulation (lab/nfs_emulation.py): an NFS mount becomes a bind mount of the export's path.
nfs=
for a in "$@"; do
  case "$prev:$a" in -t:nfs|-t:nfs4) nfs=1 ;; esac
  prev=$a
done
if [ -n "$nfs" ]; then
  eval "mnt=\\${$#}"
  eval "src=\\${$(($# - 1))}"
  exec @REAL@ --bind "${src#*:}" "$mnt"
fi
exec @REAL@ "$@"
"""

_MOUNT_NFS = """#!/bin/sh
# Lab NFS emulation: `mount.nfs HOST:/PATH MNT [-o ...]` (no arguments: "is mount.nfs installed?").
[ $# -ge 2 ] || exit 0
exec @REAL@ --bind "${1#*:}" "$2"
"""

_SUDO = """#!/bin/sh
# Lab sudo stand-in: the lab runs as root; privsep asks for `sudo X-rootwrap CONF privsep-helper ...`.
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *-rootwrap) shift 2 ;;
    *) break ;;
  esac
done
PATH="@VENV_BIN@:$PATH" exec "$@"
"""


def helper_dir(cfg: LabConfig) -> Path:
    return cfg.root / "cinder" / "bin"


def export_dir(cfg: LabConfig) -> Path:
    return cfg.root / "cinder" / "export"


def share(cfg: LabConfig) -> str:
    """The share as Cinder's nfs_shares_config names it (no `-o` options: glance_store would split
    them into characters and `mount` would exit 32)."""
    return f"127.0.0.1:{export_dir(cfg)}"


def write_helpers(cfg: LabConfig) -> Path:
    """Write mount, mount.nfs and sudo helpers; returns their dir (put it first on a PATH)."""
    d = helper_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    for name, text in (("mount", _MOUNT), ("mount.nfs", _MOUNT_NFS), ("sudo", _SUDO)):
        path = d / name
        path.write_text(text.replace("@REAL@", REAL_MOUNT).replace("@VENV_BIN@", str(lab_venv_bin())))
        os.chmod(path, 0o755)  # noqa: S103 - executables, run by the lab's own processes
    return d


def path_with_helpers(cfg: LabConfig) -> str:
    return f"{helper_dir(cfg)}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def require_tools() -> None:
    missing = [t for t in ("mkfs.ext4", "losetup", "qemu-img") if shutil.which(t) is None]
    if missing:
        raise LabSetupError(
            f"the lab's Cinder needs {', '.join(missing)}: `apt-get install e2fsprogs mount qemu-utils`, "
            "or run `python -m lab setup --cinder`"
        )


class ExportNamespace:
    """The mount namespace the export filesystem lives in: a long-lived holder process owns it, and
    cinder-volume and the Cinder-store Glance hosts start inside it (each in a private namespace of
    its own nested in it).

    Mounted in the root namespace instead, the export would be copied into every mount namespace made
    on the machine meanwhile (other labs' hosts included), kept busy there after `down`, and later
    mounted twice from one image. Here it disappears with the last process of the lab that sees it.
    """

    MARKER = "lab-export-ns"

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.export = export_dir(cfg)
        self.image = cfg.root / "cinder" / "export.ext4"
        self.pid_file = cfg.root / "cinder" / "export-ns.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return procs.ours(pid, cmd_marker=f"{self.MARKER} {self.image}")

    def mounted(self) -> bool:
        """Whether the holder runs with the export mounted in its namespace."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:
            return False
        return any(line.split()[4] == str(self.export) for line in mountinfo.splitlines())

    def start(self) -> None:
        """Start the holder (creating the export filesystem the first time) unless it runs."""
        require_tools()
        if self.pid() is not None:
            return
        self.export.mkdir(parents=True, exist_ok=True)
        if not self.image.exists():
            with open(self.image, "wb") as f:
                f.truncate(EXPORT_IMAGE_BYTES)
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "lab-nfs", str(self.image)])
        proc = procs.spawn(
            ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c",
             f'{REAL_MOUNT} -o loop "$1" "$2" || exit 1; while :; do sleep 3600; done',
             self.MARKER, str(self.image), str(self.export)],
            cwd=self.cfg.root, env=dict(os.environ), log_path=self.cfg.logs_dir / "export-ns.log",
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 15
        while not self.mounted():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Cinder export {self.image} did not mount (the lab's Cinder needs root, mount "
                    f"namespaces and a free loop device); see {self.cfg.logs_dir / 'export-ns.log'}")
            time.sleep(0.05)

    def enter(self, cwd: Path) -> list[str]:
        """The argv prefix that runs a command inside the namespace, in ``cwd`` (entering a mount
        namespace would otherwise move it to `/`); nsenter execs, so the pid stays the command's."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError(
                "the lab's Cinder export namespace is not running: `python -m lab up --cinder`"
            )
        return ["nsenter", "-t", str(pid), "-m", f"--wd={cwd}", "--"]

    def stop(self) -> None:
        """Stop the holder; the export is unmounted once nothing else runs in its namespace."""
        pid = self.pid()
        if pid is not None:
            procs.stop_group(pid)


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {res.returncode}): {res.stderr.strip()[-400:]}")
