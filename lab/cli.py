"""The lab's command line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

from lab.api import Lab
from lab.control import LabError
from lab.host_faults import HOST_FAULTS
from lab.paths import LabSetupError

HOST_ACTIONS = {
    "kill": "SIGKILL the host's Glance process group (connections are then refused)",
    "freeze": "SIGSTOP the host's Glance (connections accepted, nothing answers)",
    "thaw": "SIGCONT a frozen host's Glance",
    "restart": "stop and start the host's Glance (also after kill or freeze)",
    "drain": "make the host's /healthcheck answer 503 (its disable file)",
    "undrain": "remove the host's healthcheck disable file",
    "grant-role": "give the host the image-library role at once (no convergence delay; for fixtures)",
    "revoke-role": "take the role away at once",
    "reconverge": "converge the host's role again: Glance config re-rendered from the blueprint, restart",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab", description="The embedded PCD-like lab on 127.0.0.1.")
    p.add_argument("--state-dir", help="lab state dir (default $PCD_LAB_STATE_DIR or .lab/ in the checkout)")
    sub = p.add_subparsers(dest="cmd", required=True)
    setup = sub.add_parser("setup",
                           help="install what the lab needs (PostgreSQL server) and check the lab venv")
    setup.add_argument("--cinder", action="store_true",
                       help="also RabbitMQ and qemu-utils (for `up --cinder`)")
    up = sub.add_parser("up", help="start the lab (creating its state the first time)")
    up.add_argument("--cinder", action="store_true",
                    help="also run Cinder (api, scheduler, volume; RabbitMQ) for Glance's Cinder store; "
                         "kept for this state dir; added to a running lab")
    up.add_argument("--hosts", type=int, help="image-library hosts in RegionOne (default 3)")
    up.add_argument("--region-two-hosts", type=int, help="hosts in RegionTwo (default 1)")
    up.add_argument("--token-cache-seconds", type=int,
                    help="how long Glance trusts a validated token (keystonemiddleware token_cache_time)")
    up.add_argument("--converge-seconds", type=float, help="resmgr role convergence time (default 4)")
    up.add_argument("--removal-404-seconds", type=float,
                    help="how long per-host resmgr GETs answer 404 after the last role goes (default 5)")
    up.add_argument("--v2-roles-spelling", choices=["image-library", "pf9-glance-role"])
    sub.add_parser("down", help="stop every lab process")
    sub.add_parser("purge", help="down, then delete the state dir (keys, databases, images) and port claims")
    st = sub.add_parser("status", help="processes, ports, roles and endpoints")
    st.add_argument("--json", action="store_true")
    sub.add_parser("env", help="print OS_* exports for the lab's admin")
    for action, text in HOST_ACTIONS.items():
        sub.add_parser(action, help=text).add_argument("host", help="host name, id or hostname")
    for action, (text, arg_names) in HOST_FAULTS.items():
        fp = sub.add_parser(action, help=text)
        fp.add_argument("host", help="host name, id or hostname")
        for arg in arg_names:
            fp.add_argument(arg)
    add = sub.add_parser("add-host", help="enrol one more host (no role) while the lab runs")
    add.add_argument("--region", default="RegionOne", choices=["RegionOne", "RegionTwo"])
    sub.add_parser("remove-host", help="take a host without a role out of the lab").add_argument("host")
    rot = sub.add_parser("rotate-password",
                         help="give the admin user a new Keystone password (kept in lab.json; see `env`)")
    rot.add_argument("--password", help="the new password (default: a random one)")
    sub.add_parser("revoke-tokens", help="invalidate every token issued so far to admin and member")
    sub.add_parser("cinder-freeze", help="SIGSTOP cinder-api (connections accepted, nothing answers)")
    sub.add_parser("cinder-thaw", help="SIGCONT a frozen cinder-api")
    sto = sub.add_parser("storage", help="rebind serving hosts to the shared dir or their own dirs")
    sto.add_argument("mode", choices=["shared", "local"])
    fault = sub.add_parser("fault", help="resmgr faults for one host")
    fault.add_argument("host")
    g = fault.add_mutually_exclusive_group(required=True)
    g.add_argument("--conflict-seconds", type=float, help="answer 409 RoleUpdateConflict for S seconds")
    g.add_argument(
        "--flap-failed", type=float, metavar="S", help="flap through `failed` for S s while converging",
    )
    g.add_argument("--fail", metavar="MESSAGE", help="fail the role for good with this message")
    g.add_argument("--deauth-error", action="store_true",
                   help="the next role removal stops in deauth-error; role writes answer 409 until --clear")
    g.add_argument("--clear", action="store_true", help="clear this host's faults")
    rm = sub.add_parser("resmgr", help="tune the running lab (resmgr emulator, Glance token cache)")
    rm.add_argument("--converge-seconds", type=float)
    rm.add_argument("--removal-404-seconds", type=float)
    rm.add_argument("--v2-roles-spelling", choices=["image-library", "pf9-glance-role"])
    rm.add_argument("--token-cache-seconds", type=int,
                    help="Glance token cache time (restarts serving hosts)")
    return p


def print_status(st: dict[str, Any]) -> None:
    state = "running" if st["running"] else "NOT running"
    ns = "yes" if st["namespaces"] else "NO"
    print(f"lab {st['state_dir']}: {state}  (storage {st['storage']}, namespaces {ns}, "
          f"RSS {st['rss_mib']} MiB)")
    print(f"  keystone      {st['auth_url']}  pid {st['pids']['keystone']}")
    print(f"  resmgr        {st['resmgr_url']}  agent pid {st['pids']['agent']}")
    print(f"  public glance {st['public_glance_url']}  pid {st['pids']['public_glance']}")
    pg = f"127.0.0.1:{st['ports']['postgres']}  pid {st['pids']['postgres']}  ({st['pg_dir']})"
    print(f"  postgres      {pg}")
    print(f"  store path    {st['store_path']}  shared dir {st['shared_dir']}")
    for h in st["hosts"]:
        flags = [f for f in ("frozen", "drained") if h.get(f)]
        print(f"  {h['name']:<15} {h['region']:<10} {h['url']:<24} pid {h['pid'] or '-':<8} "
              f"{'up' if h['running'] else 'down':<5}{(' ' + ','.join(flags)) if flags else ''} "
              f"roles {h['roles'] or '-'} {h['role_status'] or ''}/{h['role_state'] or '-'} "
              f"ssh {h.get('ssh_port') or '-'}{'' if h.get('sshd_running', True) else ' (down)'} "
              f"endpoint {h['endpoint'] or '-'}{('  ' + h['message']) if h.get('message') else ''}")
    _print_cinder(st.get("cinder") or {})
    print(f"  logs          {st['logs_dir']}")


def _print_cinder(c: dict[str, Any]) -> None:
    if not c.get("enabled"):
        return
    procs = "  ".join(f"{k} {v or '-'}" for k, v in c["pids"].items())
    print(f"  cinder        {c['api_url']}  {'running' if c['running'] else 'NOT running'}  ({procs})"
          f"  RSS {c.get('rss_mib', 0)} MiB")
    print(f"    export      {c['export']} {'(mounted)' if c['export_mounted'] else '(NOT mounted)'}")
    if c.get("error"):
        print(f"    volumes     unknown: {c['error']}")
    for v in c.get("volumes", []):
        print(f"    volume      {v['id']} {v['status']:<10} {v['size']} GiB type {v['volume_type']} "
              f"image {v['image_id'] or '-'} attached to {','.join(v['attached_hosts']) or '-'}")
    for a in c.get("attachments", []):
        print(f"    attachment  {a['id']} volume {a['volume_id']} {a['status']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lab = Lab(args.state_dir)
    try:
        if args.cmd == "setup":
            lab.setup(cinder=args.cinder)
            extra = ", RabbitMQ, qemu-utils and Cinder" if args.cinder else ""
            print(f"lab setup: PostgreSQL server{extra} and the lab virtualenv are present")
        elif args.cmd == "up":
            t0 = time.monotonic()
            st = lab.up(
                args.hosts, region_two_hosts=args.region_two_hosts,
                token_cache_seconds=args.token_cache_seconds, converge_seconds=args.converge_seconds,
                removal_404_seconds=args.removal_404_seconds, v2_roles_spelling=args.v2_roles_spelling,
                cinder=args.cinder,
            )
            phases = ", ".join(f"{k} {v}s" for k, v in st.get("up_timings", {}).items())
            print(f"lab up in {time.monotonic() - t0:.1f}s ({phases or 'already running'})")
            print_status(st)
            if not st["namespaces"]:
                print("NOTE: mount namespaces are not permitted here: hosts use distinct store paths, so "
                      "`storage local` cannot hide data from other hosts", file=sys.stderr)
        elif args.cmd == "down":
            lab.down()
            print("lab down")
        elif args.cmd == "purge":
            lab.purge()
            print(f"lab purged: {lab.state_dir}")
        elif args.cmd == "status":
            st = lab.status()
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                print_status(st)
        elif args.cmd == "env":
            for k, v in lab.env().items():
                print(f"export {k}={shlex.quote(v)}")
        elif args.cmd in HOST_ACTIONS:
            method = args.cmd.replace("-", "_")
            getattr(lab, method)(args.host)
            print(f"{args.cmd} {args.host}: done")
        elif args.cmd in HOST_FAULTS:
            lab.host_fault(args.host, args.cmd, *(getattr(args, n) for n in HOST_FAULTS[args.cmd][1]))
            print(f"{args.cmd} {args.host}: done")
        elif args.cmd == "add-host":
            print(f"added {lab.add_host(args.region)} in {args.region}")
        elif args.cmd == "remove-host":
            lab.remove_host(args.host)
            print(f"removed {args.host}")
        elif args.cmd == "rotate-password":
            lab.rotate_password(args.password)
            print("rotated the admin password: export it again with `eval \"$(python -m lab env)\"`")
        elif args.cmd in ("cinder-freeze", "cinder-thaw"):
            lab.cinder_freeze() if args.cmd == "cinder-freeze" else lab.cinder_thaw()
            print(f"{args.cmd}: done")
        elif args.cmd == "revoke-tokens":
            lab.revoke_tokens()
            print("revoked every token issued so far to admin and member")
        elif args.cmd == "storage":
            lab.set_storage(args.mode)
            print(f"storage {args.mode}")
        elif args.cmd == "fault":
            if args.clear:
                lab.clear_fault(args.host)
            else:
                lab.set_fault(args.host, conflict_seconds=args.conflict_seconds or 0,
                              flap_failed_seconds=args.flap_failed or 0, fail_message=args.fail or "",
                              deauth_error=args.deauth_error)
            print(f"fault {args.host}: set")
        elif args.cmd == "resmgr":
            lab.set_resmgr_options(converge_seconds=args.converge_seconds,
                                   removal_404_seconds=args.removal_404_seconds,
                                   v2_roles_spelling=args.v2_roles_spelling,
                                   token_cache_seconds=args.token_cache_seconds)
            print("resmgr options set")
    except (LabError, LabSetupError, KeyError) as exc:
        print(f"lab: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 1
    return 0
