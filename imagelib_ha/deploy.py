"""``python -m imagelib_ha.deploy up|preview|refresh|down|env [--stack NAME]``: what ``make up``,
``make preview``, ``make refresh`` and ``make down`` run (``make up STACK=lab-cinder`` passes the stack).

``--stack`` (default ``lab``) picks the stack file ``Pulumi.<stack>.yaml``; a stack whose storage
backend is ``cinder`` starts the lab with Cinder (``python -m lab up --cinder``). ``up`` starts the
embedded lab if it is not running, exports its address and password, then runs ``pulumi up --yes`` on
the stack with a local file backend and a passphrase secrets provider.
Where the Pulumi CLI is not installed, it says so once and runs the same program with the same dynamic
providers in this process (``imagelib_ha.inprocess.executing``), recording what it creates in a
manifest. ``preview`` (``pulumi preview --diff``) and ``refresh`` (``pulumi refresh --yes``) need a
running lab and fall back the same way. ``down`` destroys the stack (or deletes what the manifest
records), then stops the lab.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml

from imagelib_ha.inprocess import executing

REPO = Path(__file__).resolve().parents[1]
STACK = "lab"  # the default stack
# The lab stack's passphrase protects only lab passwords that change with every lab: a fixed default
# keeps `make up` to one command. Real stacks must set their own PULUMI_CONFIG_PASSPHRASE.
LAB_PASSPHRASE = "pcd-imagelib-ha-lab"  # noqa: S105 - a lab default, documented above
INSTALL_URL = "https://www.pulumi.com/docs/install/"
GENERATED_IMAGES = ".lab-images/"


class DeployError(RuntimeError):
    """A deployment step failed; the message says which and what to do."""


def stack_file_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The ``config:`` block of ``Pulumi.<stack>.yaml`` as the program would receive it."""
    path = (root or REPO) / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise DeployError(f"no stack file {path.name}: create it (see Pulumi.example.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, Any] = dict(data.get("config") or {})
    encrypted = [key for key, value in config.items() if _holds_secure(value)]
    if encrypted:
        raise DeployError(
            f"{path.name} holds values encrypted by the Pulumi CLI ({', '.join(encrypted)}), which only "
            "the CLI can decrypt: install it, or give the secret through an environment variable "
            "(cloud.passwordEnv)"
        )
    return config


def _holds_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return "secure" in value or any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def write_generated_images(config: dict[str, Any], root: Path | None = None) -> list[Path]:
    """Create the lab's small image files (deterministic bytes) where the stack config names them."""
    written = []
    for index, image in enumerate(config.get("pcd-imagelib-ha:images") or []):
        source = str(image.get("source", ""))
        if not source.startswith(GENERATED_IMAGES):
            continue
        path = (root or REPO) / source
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (1 + index) * 1024 * 1024 + 17  # not block-aligned, so a truncated copy shows
        block = hashlib.sha256(source.encode()).digest()
        with path.open("wb") as out:
            remaining = size
            while remaining > 0:
                block = hashlib.sha256(block).digest()
                chunk = (block * 128)[:remaining]
                out.write(chunk)
                remaining -= len(chunk)
        written.append(path)
    return written


def needs_cinder(config: dict[str, Any]) -> bool:
    """Whether the stack stores images in Cinder, so the lab must run Cinder."""
    storage = config.get("pcd-imagelib-ha:storage") or {}
    return isinstance(storage, dict) and storage.get("backend") == "cinder"


def lab_environment(start: bool, *, cinder: bool = False) -> dict[str, str]:
    """The lab's address, admin login and store path as environment variables; starts it if asked,
    with Cinder when ``cinder`` (a running lab without Cinder gets it added, as ``python -m lab up
    --cinder`` does; without ``start`` that is an error)."""
    from lab.api import Lab  # the operator tool drives the lab; the client never imports it

    lab = Lab()
    options: dict[str, Any] = {"cinder": True} if cinder else {}
    if not lab.agent_alive():
        if not start:
            raise DeployError(f"the lab in {lab.state_dir} is not running: run `make up` first")
        extra = " with Cinder (about a minute)" if cinder else " (first start takes about half a minute)"
        print(f"starting the lab in {lab.state_dir}{extra}...", flush=True)
        lab.up(**options)
    status = lab.status()
    if cinder and not (status.get("cinder") or {}).get("enabled"):
        if not start:
            raise DeployError(
                f"the lab in {lab.state_dir} runs without Cinder, which this stack's storage needs: "
                "`make up STACK=<this stack>` adds it"
            )
        print(f"adding Cinder to the running lab in {lab.state_dir}...", flush=True)
        lab.up(**options)
        status = lab.status()
    env = dict(lab.env())
    if status.get("store_path"):
        env["PCD_LAB_STORE_PATH"] = str(status["store_path"])
    return env


def stop_lab() -> None:
    from lab.api import Lab

    lab = Lab()
    if lab.agent_alive() or lab.state_dir.exists():
        print(f"stopping the lab in {lab.state_dir}", flush=True)
        lab.down()


def _run(cmd: list[str], env: dict[str, str], *, check: bool = True) -> int:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    code = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode
    if check and code != 0:
        raise DeployError(f"`{' '.join(cmd)}` failed with exit code {code}")
    return code


def _pulumi_env(lab_env: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **lab_env}
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", LAB_PASSPHRASE)
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    return env


def _pulumi_select_stack(pulumi_bin: str, env: dict[str, str], stack: str) -> None:
    state = REPO / ".pulumi-state"
    state.mkdir(exist_ok=True)
    _run([pulumi_bin, "login", f"file://{state}"], env)
    if _run([pulumi_bin, "stack", "select", stack], env, check=False) != 0:
        _run([pulumi_bin, "stack", "init", stack, "--secrets-provider", "passphrase"], env)


def notice_without_cli(stack: str = STACK) -> str:
    return (
        "notice: the Pulumi CLI was not found on PATH (install it: "
        f"{INSTALL_URL}). Running the same program with the same dynamic providers in this process "
        "instead, with the engine's preview, diff and order of steps. What differs: no policy run; state "
        f"is kept in the manifest .inprocess/{stack}.json, not in a Pulumi backend."
    )


def _lab_stack(stack: str, *, start: bool) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The stack's config (its image files written), the lab's environment, and the Pulumi CLI.

    The stack file is read first: a missing file or a Cinder stack decides how the lab starts.
    """
    config = stack_file_config(stack)
    lab_env = lab_environment(start=start, cinder=needs_cinder(config))
    os.environ.update(lab_env)
    write_generated_images(config)
    return config, lab_env, shutil.which("pulumi")


def up(stack: str = STACK) -> None:
    config, lab_env, pulumi_bin = _lab_stack(stack, start=True)
    if pulumi_bin:
        env = _pulumi_env(lab_env)
        _pulumi_select_stack(pulumi_bin, env, stack)
        _run([pulumi_bin, "up", "--yes", "--stack", stack], env)
        return
    print(notice_without_cli(stack), flush=True)
    executing.up(config, stack=stack, root=REPO)


def preview(stack: str = STACK) -> None:
    """What ``up`` would do to the stack; touches nothing."""
    config, lab_env, pulumi_bin = _lab_stack(stack, start=False)
    if pulumi_bin:
        env = _pulumi_env(lab_env)
        _pulumi_select_stack(pulumi_bin, env, stack)
        _run([pulumi_bin, "preview", "--diff", "--stack", stack], env)
        return
    print(notice_without_cli(stack).replace("Running the same program", "Previewing the same program"),
          flush=True)
    executing.preview(config, stack=stack, root=REPO)


def refresh(stack: str = STACK) -> None:
    """Read every resource of the stack, show the drift and record what is live."""
    config = stack_file_config(stack)
    lab_env = lab_environment(start=False, cinder=needs_cinder(config))
    os.environ.update(lab_env)
    pulumi_bin = shutil.which("pulumi")
    if pulumi_bin and (REPO / ".pulumi-state").exists():
        env = _pulumi_env(lab_env)
        _pulumi_select_stack(pulumi_bin, env, stack)
        _run([pulumi_bin, "refresh", "--yes", "--stack", stack], env)
        return
    executing.refresh(config, stack=stack, root=REPO)


def down(stack: str = STACK) -> None:
    pulumi_bin = shutil.which("pulumi")
    manifest = executing.manifest_path(REPO, stack)
    config = stack_file_config(stack)
    cinder = needs_cinder(config)
    if pulumi_bin and (REPO / ".pulumi-state").exists():
        env = _pulumi_env(lab_environment(start=True, cinder=cinder))
        _pulumi_select_stack(pulumi_bin, env, stack)
        _run([pulumi_bin, "destroy", "--yes", "--stack", stack], env)
    elif manifest.exists():
        if not pulumi_bin:
            print(
                notice_without_cli(stack).replace("Running the same program", "Deleting what it created"),
                flush=True,
            )
        os.environ.update(lab_environment(start=True, cinder=cinder))
        executing.down(config, stack=stack, root=REPO)
    else:
        print("nothing deployed: no Pulumi state and no in-process manifest", flush=True)
    stop_lab()


def print_env(stack: str = STACK) -> None:
    cinder = needs_cinder(stack_file_config(stack))
    for key, value in sorted(lab_environment(start=False, cinder=cinder).items()):
        print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagelib_ha.deploy", description=__doc__.splitlines()[0])
    commands = {"up": up, "preview": preview, "refresh": refresh, "down": down, "env": print_env}
    parser.add_argument("command", choices=tuple(commands))
    parser.add_argument("--stack", default=STACK,
                        help="the stack (Pulumi.<stack>.yaml); a Cinder stack starts the lab with Cinder")
    parser.add_argument("--traceback", action="store_true", help="show the Python traceback of a failure")
    args = parser.parse_args(argv)
    try:
        commands[args.command](args.stack)
    except Exception as exc:  # the operator gets the message; --traceback shows the rest
        if args.traceback:
            raise
        kind = "" if isinstance(exc, DeployError | pulumi.RunError) else f"{type(exc).__name__}: "
        print(f"error: {kind}{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
