"""What one SSH command finds on an image-library host: unit, log errors, Glance's store config, mount.

One POSIX shell script per host gathers everything in one round trip, printing sections this module
parses. It reads on the host, never sends back more than it must:

* the unit's state with ``systemctl show`` (the configured unit; the other known name when the
  configured one does not exist: ``airctl-glance`` on the HA page, ``pf9-glance-api`` on recent hosts);
* ERROR/CRITICAL lines of the log since the cursor (inode + offset; through a rotation), at most
  ``MAX_LOG_BYTES``;
* the files the running service really reads: its command line's ``--config-file``/``--config-dir``,
  else ``$OS_GLANCE_CONFIG_DIR`` from its environment, else ``/etc/glance/glance-api.conf``; of them
  only the store keys (``STORE_KEYS``) leave the host, never a password;
* the store path: a mount point or not, its source, whether the Glance service user can write it
  (tested as that user: ``runuser``, not as root), and that user's uid/gid.
"""

from __future__ import annotations

import configparser
import io
from dataclasses import dataclass

from imagelib_ha.client.host_log import MAX_LOG_BYTES, LogCursor

KNOWN_UNITS = ("airctl-glance", "pf9-glance-api")
# Keys that say which store Glance uses and where; every other key (passwords!) stays on the host.
STORE_KEYS = (
    "enabled_backends", "default_backend", "default_store", "stores", "filesystem_store_datadir",
    "filesystem_store_datadirs", "cinder_volume_type", "cinder_catalog_info", "cinder_os_region_name",
    "cinder_mount_point_base",
)

# $1 unit  $2 other unit  $3 log path  $4 cursor inode ("" = none)  $5 cursor offset
# $6 store path ("" = none)  $7 max log bytes
SCRIPT = r"""
unit=$1; alt=$2; log=$3; inode=$4; offset=$5; store=$6; max=$7
show() { systemctl show -p LoadState -p ActiveState -p SubState -p MainPID "$1" 2>/dev/null; }
one=$(show "$unit"); echo "@@unit $unit"; echo "$one"
two=""; if [ -n "$alt" ]; then two=$(show "$alt"); echo "@@unit $alt"; echo "$two"; fi
echo "@@log"
cur=$(stat -c %i "$log" 2>/dev/null); size=$(stat -c %s "$log" 2>/dev/null)
echo "cursor ${cur:-none} ${size:-0}"
errors() { grep -a -E '^[^ ]+ [^ ]+ [0-9]+ (ERROR|CRITICAL) '; }
if [ -n "$cur" ] && [ -n "$inode" ]; then
  { if [ "$inode" != "$cur" ]; then
      for f in "$log".1 "$log".0 "$log"-*; do
        if [ -f "$f" ] && [ "$(stat -c %i "$f")" = "$inode" ]; then tail -c +$((offset + 1)) "$f"; break; fi
      done
      head -c "$size" "$log"
    elif [ "$size" -lt "$offset" ]; then head -c "$size" "$log"
    else tail -c +$((offset + 1)) "$log" | head -c $((size - offset)); fi
  } | errors | head -c "$max"
fi
echo "@@config"
pid=$(printf '%s\n%s\n' "$one" "$two" | sed -n 's/^MainPID=//p' | grep -v '^0$' | head -n 1)
files=""
if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
  set -- $(tr '\0' ' ' < "/proc/$pid/cmdline")
  while [ $# -gt 0 ]; do
    case "$1" in
      --config-file) files="$files $2"; shift ;;
      --config-file=*) files="$files ${1#--config-file=}" ;;
      --config-dir) files="$files $(ls "$2"/*.conf 2>/dev/null | sort)"; shift ;;
      --config-dir=*) d=${1#--config-dir=}; files="$files $(ls "$d"/*.conf 2>/dev/null | sort)" ;;
    esac
    shift
  done
  if [ -z "$files" ]; then
    d=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's/^OS_GLANCE_CONFIG_DIR=//p')
    [ -n "$d" ] && files="$d/glance-api.conf"
  fi
fi
[ -z "$files" ] && files=/etc/glance/glance-api.conf
for f in $files; do
  echo "@@file $f $(stat -c '%a %U %G' "$f" 2>/dev/null || echo missing)"
  [ -r "$f" ] && awk -v keys="@KEYS@" '
    BEGIN { n = split(keys, k, " "); for (i = 1; i <= n; i++) want[k[i]] = 1 }
    /^[ \t]*\[/ { print; next }
    { line = $0; sub(/^[ \t]+/, "", line); split(line, kv, "="); key = kv[1]; gsub(/[ \t]+$/, "", key);
      if (key in want) print line }' "$f"
done
echo "@@mount"
if [ -n "$store" ]; then
  echo "source $(findmnt -n -o SOURCE --mountpoint "$store" 2>/dev/null || echo none)"
  # As the Glance service user, not as root (root may write anywhere, even on a root-squashed share).
  if [ "$(id -u)" = 0 ]; then as_glance="runuser -u glance --"; else as_glance="sudo -n -u glance"; fi
  $as_glance test -w "$store" 2>/dev/null && echo "writable yes" || echo "writable no"
  echo "ids $(id -u glance 2>/dev/null || echo none) $(id -g glance 2>/dev/null || echo none)"
fi
echo "@@end"
""".replace("@KEYS@", " ".join(STORE_KEYS))


@dataclass(frozen=True)
class UnitState:
    """One unit as ``systemctl show`` reports it."""

    name: str
    load_state: str
    active_state: str
    main_pid: int


@dataclass(frozen=True)
class ConfigFile:
    """A config file the service reads: its mode/owner and its store keys only."""

    path: str
    mode: str | None  # octal, None when missing
    owner: str | None
    group: str | None
    store_keys: dict[str, dict[str, str]]


@dataclass(frozen=True)
class MountFacts:
    source: str | None  # None: the store path is not a mount point
    writable_by_glance: bool
    glance_uid: str | None
    glance_gid: str | None


@dataclass(frozen=True)
class HostFacts:
    """Everything one host's check command found."""

    units: tuple[UnitState, ...]
    log_cursor: LogCursor | None  # None: the log file does not exist
    log_lines: tuple[str, ...]
    log_truncated: bool
    config_files: tuple[ConfigFile, ...]
    mount: MountFacts | None  # None when no store path is checked (Cinder)
    complete: bool = True  # the command printed its end marker

    def effective_store_config(self) -> dict[str, dict[str, str]]:
        """Store keys as oslo.config would see them: later files override earlier ones."""
        merged: dict[str, dict[str, str]] = {}
        for f in self.config_files:
            for section, keys in f.store_keys.items():
                merged.setdefault(section, {}).update(keys)
        return merged


def script_args(unit: str, log_path: str, cursor: LogCursor | None, store_path: str | None) -> list[str]:
    alt = next((u for u in KNOWN_UNITS if u != unit), "") if unit in KNOWN_UNITS else KNOWN_UNITS[0]
    return [unit, alt, log_path, str(cursor.inode) if cursor else "", str(cursor.offset) if cursor else "0",
            store_path or "", str(MAX_LOG_BYTES)]


def parse(output: str) -> HostFacts:
    sections: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith("@@"):
            sections.append((line[2:], []))
        elif sections:
            sections[-1][1].append(line)
    units: list[UnitState] = []
    cursor: LogCursor | None = None
    log_lines: list[str] = []
    files: list[ConfigFile] = []
    mount: MountFacts | None = None
    complete = False
    for head, body in sections:
        kind, _, rest = head.partition(" ")
        if kind == "unit":
            props = dict(line.split("=", 1) for line in body if "=" in line)
            units.append(UnitState(rest, props.get("LoadState", "not-found"),
                                   props.get("ActiveState", "unknown"), int(props.get("MainPID") or 0)))
        elif kind == "log":
            for line in body:
                if line.startswith("cursor "):
                    _, inode, size = line.split()
                    cursor = None if inode == "none" else LogCursor(int(inode), int(size))
                else:
                    log_lines.append(line)
        elif kind == "file":
            path, _, stat = rest.partition(" ")
            parts = stat.split()
            known = parts != ["missing"] and len(parts) == 3
            mode, owner, group = (parts[0], parts[1], parts[2]) if known else (None, None, None)
            files.append(ConfigFile(path, mode, owner, group, _store_keys(body)))
        elif kind == "mount":
            facts = dict(line.split(" ", 1) for line in body if " " in line)
            if facts:
                ids = facts.get("ids", "none none").split()
                source = facts.get("source", "none")
                mount = MountFacts(None if source == "none" else source, facts.get("writable") == "yes",
                                   None if ids[0] == "none" else ids[0], None if ids[1] == "none" else ids[1])
        elif kind == "end":
            complete = True
    return HostFacts(tuple(units), cursor, tuple(log_lines), len("\n".join(log_lines)) >= MAX_LOG_BYTES - 1,
                     tuple(files), mount, complete)


def _store_keys(lines: list[str]) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_file(io.StringIO("\n".join(lines)))
    except configparser.Error:
        return {}
    out: dict[str, dict[str, str]] = {}
    for section in ["DEFAULT", *parser.sections()]:
        items = parser.defaults() if section == "DEFAULT" else {
            k: v for k, v in parser.items(section, raw=True) if k not in parser.defaults()}
        keys = {k: v for k, v in items.items() if k in STORE_KEYS}
        if keys:
            out[section] = keys
    return out
