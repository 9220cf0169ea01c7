"""The lab agent: one long-running process serving the resmgr emulator and the lab's control API.

It owns the host supervisor (role convergence, host Glance processes, catalog endpoints), so separate
`python -m lab kill/freeze/...` invocations act through it by PID. Run: python -m lab.agent STATE_DIR
"""

from __future__ import annotations

import hmac
import json
import signal
import socketserver
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lab import glance, procs
from lab.host_faults import HOST_FAULTS, HostFaults
from lab.identity import IdentityAdmin
from lab.keystone import Keystone
from lab.postgres import Postgres
from lab.resmgr import HTTPError, ResmgrApp, StartResponse, read_json, respond
from lab.settings import REGION_ONE, LabConfig, load_config
from lab.supervisor import Supervisor

AGENT_PID_FILE = "agent.pid"


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request (a role wait must not block other calls)."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """Request logging goes to the agent's log file (stderr), one line each."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("resmgr %s\n" % (format % args))


class AgentApp:
    """Routes /_lab/ (control, needs the lab's control token) and everything else to resmgr."""

    def __init__(self, cfg: LabConfig, sup: Supervisor, resmgr: ResmgrApp) -> None:
        self.cfg = cfg
        self.sup = sup
        self.resmgr = resmgr
        self.stop = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_lab/"):
            return self.resmgr(environ, start_response)
        token = environ.get("HTTP_X_LAB_CONTROL", "")
        if not hmac.compare_digest(token, self.cfg.control_token):
            return respond(start_response, 401, {"code": 401, "message": "lab control token required"})
        try:
            body = self.control(environ["REQUEST_METHOD"], path[len("/_lab/"):], read_json(environ) or {})
            return respond(start_response, 200, body)
        except HTTPError as err:
            return respond(start_response, err.status, {"code": err.status, "message": err.message})
        except (KeyError, ValueError) as exc:
            return respond(start_response, 400, {"code": 400, "message": str(exc).strip("'\"")})
        except Exception as exc:  # noqa: BLE001 - any failure becomes a 500 naming it
            return respond(start_response, 500, {"code": 500, "message": f"{type(exc).__name__}: {exc}"})

    def control(self, method: str, path: str, body: dict[str, Any]) -> Any:
        sup = self.sup
        parts = path.split("/")
        if method == "GET" and path == "status":
            return sup.status()
        if method != "POST":
            raise HTTPError(405, "control calls are POST (except GET status)")
        if len(parts) == 3 and parts[0] == "hosts":
            name, action = parts[1], parts[2]
            if action == "grant":
                sup.assign(name, instant=True)
            elif action == "revoke":
                sup.remove(name, instant=True)
            elif action == "reconverge":
                sup.assign(name, instant=bool(body.get("instant", True)), reconverge=True)
            elif action == "fault":
                sup.set_fault(name, conflict_seconds=float(body.get("conflict_seconds") or 0),
                              flap_failed_seconds=float(body.get("flap_failed_seconds") or 0),
                              fail_message=str(body.get("fail_message") or ""),
                              deauth_error=bool(body.get("deauth_error")), clear=bool(body.get("clear")))
            elif action in ("kill", "freeze", "thaw", "restart"):
                getattr(sup, action)(name)
            elif action in ("drain", "undrain"):
                sup.drain(name, action == "drain")
            elif action == "remove":
                sup.remove_host(name)
            elif action in HOST_FAULTS:
                HostFaults(sup).apply(name, action, body)
            else:
                raise HTTPError(404, f"unknown host action {action!r}")
            return sup.status()
        if path == "hosts":
            spec = sup.add_host(str(body.get("region") or REGION_ONE))
            return {**sup.status(), "added": spec.name}
        if path == "rotate-password":
            password = str(body.get("password") or "")
            if len(password) < 12:
                raise ValueError("the new admin password must have at least 12 characters")
            sup.rotate_admin_password(password)
            return sup.status()
        if path == "storage":
            mode = body.get("mode")
            if mode not in ("shared", "local"):
                raise ValueError(f"storage mode must be 'shared' or 'local', not {mode!r}")
            sup.set_storage(mode)
            return sup.status()
        if path == "reload-cinder":
            sup.reload_cinder()
            return sup.status()
        if path == "revoke-tokens":
            sup.revoke_tokens()
            return sup.status()
        if path == "options":
            if "converge_seconds" in body:
                sup.converge_seconds = float(body["converge_seconds"])
            if "removal_404_seconds" in body:
                sup.removal_404_seconds = float(body["removal_404_seconds"])
            if "v2_roles_spelling" in body:
                if body["v2_roles_spelling"] not in ("image-library", "pf9-glance-role"):
                    raise ValueError("v2_roles_spelling must be 'image-library' or 'pf9-glance-role'")
                sup.v2_roles_spelling = body["v2_roles_spelling"]
            if "token_cache_seconds" in body:
                sup.set_token_cache(int(body["token_cache_seconds"]))
            return sup.status()
        if path == "shutdown":
            threading.Thread(target=self.stop.set, daemon=True).start()
            return {"stopping": True}
        raise HTTPError(404, f"unknown control call {path!r}")


def main(argv: list[str]) -> int:
    state_dir = Path(argv[0]).resolve()
    cfg = load_config(state_dir)
    if cfg is None:
        print(f"no lab config in {state_dir}; run `python -m lab up` first", file=sys.stderr)
        return 2
    use_namespace = glance.namespaces_supported()
    if not use_namespace:
        print("mount namespaces are not permitted here: hosts use distinct store paths instead",
              file=sys.stderr)
    identity = IdentityAdmin(cfg)
    sup = Supervisor(cfg, use_namespace=use_namespace, identity=identity)
    app = AgentApp(cfg, sup, ResmgrApp(sup, identity))
    server = make_server("127.0.0.1", cfg.resmgr_port, app, server_class=ThreadingWSGIServer,
                         handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: app.stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=sup.start_public, daemon=True).start()
    (state_dir / AGENT_PID_FILE).write_text(json.dumps({"pid": __import__("os").getpid()}))
    try:
        app.stop.wait()
    finally:
        server.shutdown()
        sup.shutdown()
    return 0


def component_pids(cfg: LabConfig) -> dict[str, int | None]:
    """Leading PIDs of the lab's long-running processes (for status and memory figures)."""
    agent = None
    try:
        agent = int(json.loads((cfg.root / AGENT_PID_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError):
        pass
    return {
        "postgres": Postgres(cfg).pid(),
        "keystone": Keystone(cfg).leader_pid(),
        "agent": procs.ours(agent, cmd_marker=f"lab.agent {cfg.root}"),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
