"""``python -m conformance.peers``: build the tiny model, install, serve and record real peers.

Commands::

    build-model [--force]          build .peers/model/{tiny.gguf,tiny/}
    install PEER|all [--force]     install peers into their own venvs (cached)
    status                         what is built and installed, with versions
    serve PEER                     start a peer, print its base URL, run until Ctrl-C
    smoke PEER [--json FILE]       start a peer and check it with the openai SDK
    record PEER|all [-- ARGS...]   build, install, start, run `conformance run --mode record`
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from conformance.peers import model, servers
from conformance.peers.servers import PEERS, Layout, PeerError, Progress
from conformance.peers.smoke import run_smoke


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.peers",
        description="Run real third-party OpenAI-compatible servers on a locally built tiny model.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-model", help="build the tiny model (GGUF + Hugging Face folder)")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    install = sub.add_parser("install", help="install a peer into its own venv")
    install.add_argument("peer", choices=[*PEERS, "all"])
    install.add_argument("--force", action="store_true", help="reinstall even if up to date")
    sub.add_parser("status", help="show the model, the installed peers and their versions")
    serve = sub.add_parser("serve", help="start a peer and keep it running until Ctrl-C")
    serve.add_argument("peer", choices=list(PEERS))
    smoke = sub.add_parser("smoke", help="start a peer and smoke-test it with the openai SDK")
    smoke.add_argument("peer", choices=list(PEERS))
    smoke.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    record = sub.add_parser(
        "record",
        help="record the suite against a peer",
        description="Build the model, install and start the peer, run `conformance run --mode "
        "record --target PEER --base-url URL --server-version VERSION [ARGS]`, stop the peer.",
    )
    record.add_argument("peer", choices=[*PEERS, "all"])
    record.add_argument("extra", nargs=argparse.REMAINDER, help="arguments after -- go to run")
    return parser


def _prepare(layout: Layout, peer_name: str, progress: Progress) -> servers.Peer:
    """Build the model and install the peer (each skipped when already done)."""
    peer = PEERS[peer_name]
    _build_model(layout, progress, force=False)
    servers.install(layout, peer, progress)
    return peer


def _build_model(layout: Layout, progress: Progress, *, force: bool) -> None:
    if not force and model.is_built(layout.model_dir):
        progress.say(f"tiny model up to date in {layout.model_dir}")
        return
    try:
        # Only building needs the optional `peers` dependencies (numpy, gguf, ...): the other
        # commands work without them.
        from conformance.peers import tinymodel  # noqa: PLC0415
    except ImportError as exc:
        raise PeerError(
            f"building the tiny model needs the peers extra ({exc}); "
            "install it with: pip install -e '.[peers]'"
        ) from exc
    with progress.step(f"building tiny model in {layout.model_dir}"):
        tinymodel.build(layout.model_dir, force=force)


def _status(layout: Layout) -> None:
    print(f"peers dir:   {layout.root}")
    print(f"wheel cache: {layout.wheels} ({servers.llama_wheel(layout) or 'no llama wheel yet'})")
    built = "built" if model.is_built(layout.model_dir) else "not built"
    print(f"tiny model:  {layout.model_dir} ({built})")
    for peer in PEERS.values():
        state = "installed" if servers.is_installed(layout, peer) else "not installed"
        version = servers.installed_version(layout, peer)
        print(
            f"{peer.name:13} {state:14} {peer.distribution} {version or '-'}"
            f" (pinned {peer.version})"
        )


def _serve_forever(running: servers.Running, progress: Progress) -> None:
    print(running.base_url, flush=True)
    progress.say(
        f"{running.server_version} serving model {model.MODEL_NAME!r} "
        f"at {running.base_url}; Ctrl-C stops it"
    )
    if running.api_key:
        source = (
            f"${servers.ENV_LITELLM_MASTER_KEY}"
            if os.environ.get(servers.ENV_LITELLM_MASTER_KEY)
            else f"generated for this session: {running.api_key}"
        )
        progress.say(f"API key ({source}); clients read it from ${running.peer.api_key_env}")
    while True:
        for server in running.servers:
            if server.process.poll() is not None:
                raise PeerError(
                    f"peer {server.peer.name} exited with code {server.process.returncode}; "
                    + servers.log_excerpt(server.log)
                )
        time.sleep(1.0)


def _suite_args(extra: Sequence[str]) -> list[str]:
    """Arguments for `conformance run`: what followed the peer, without a leading "--"."""
    return list(extra[1:] if extra and extra[0] == "--" else extra)


def _record(layout: Layout, peer: servers.Peer, extra: Sequence[str], progress: Progress) -> int:
    args = _suite_args(extra)
    with servers.serve(layout, peer, progress) as running:
        argv = servers.record_command(peer, running.base_url, running.server_version, args)
        progress.say("running: " + shlex.join(argv))
        env = {**os.environ, **running.client_env()}
        try:
            result = subprocess.run(argv, env=env, check=False)
        except FileNotFoundError as exc:
            raise PeerError(f"cannot run the suite: {exc}") from exc
        progress.say(f"`conformance run` exited with code {result.returncode}")
        return result.returncode


def _smoke(layout: Layout, peer: servers.Peer, out: Path | None, progress: Progress) -> int:
    with servers.serve(layout, peer, progress) as running:
        report = run_smoke(running.base_url, running.api_key, peer.name)
    for check in report.checks:
        mark = "ok  " if check.ok else ("FAIL" if check.required else "no  ")
        print(f"{mark} {check.name:34} {check.seconds * 1000:7.0f} ms  {check.detail[:100]}")
    text = report.to_json()
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0 if report.ok else 1


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so servers are stopped in the `finally` blocks.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    layout = Layout.from_env()
    progress = Progress()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.command == "build-model":
            _build_model(layout, progress, force=args.force)
            print(layout.model_dir)
        elif args.command == "install":
            names = list(PEERS) if args.peer == "all" else [args.peer]
            for name in names:
                servers.install(layout, PEERS[name], progress, force=args.force)
        elif args.command == "status":
            _status(layout)
        elif args.command == "serve":
            peer = _prepare(layout, args.peer, progress)
            with servers.serve(layout, peer, progress) as running:
                _serve_forever(running, progress)
        elif args.command == "smoke":
            peer = _prepare(layout, args.peer, progress)
            return _smoke(layout, peer, args.json, progress)
        elif args.command == "record":
            # One peer after the other (they share two cores); the worst exit code wins.
            names = list(PEERS) if args.peer == "all" else [args.peer]
            codes = [
                _record(layout, _prepare(layout, name, progress), args.extra, progress)
                for name in names
            ]
            return max(codes)
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
