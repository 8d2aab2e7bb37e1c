"""``python -m conformance.peers``: build the tiny model, install, serve and record real peers.

Commands::

    build-model [--force]          build .peers/model/{tiny.gguf,tiny/}
    install PEER|all [--force]     install peers into their own venvs (cached)
    status                         what is built and installed, with versions
    serve PEER                     start a peer, print its base URL, run until Ctrl-C
    smoke PEER [--json FILE]       start a peer and check it with the openai SDK
    record PEER|all [-- ARGS...]   build, install, start, run `conformance run --mode record`

``--upstream PEER`` (install, serve, smoke, record) picks the peer that LiteLLM fronts.
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

from conformance.peers import builds, model, servers
from conformance.peers.progress import PeerError, Progress, log_excerpt
from conformance.peers.servers import PEERS, PROXIES, UPSTREAMS, Layout
from conformance.peers.smoke import run_smoke


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.peers",
        description="Run real third-party OpenAI-compatible servers on a locally built tiny model.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    upstream = argparse.ArgumentParser(add_help=False)
    upstream.add_argument(
        "--upstream",
        choices=UPSTREAMS,
        help=f"the peer that {', '.join(PROXIES)} fronts (default: "
        + ", ".join(f"{PEERS[name].upstream} for {name}" for name in PROXIES)
        + ")",
    )
    build = sub.add_parser("build-model", help="build the tiny model (GGUF + Hugging Face folder)")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    install = sub.add_parser("install", help="install a peer into its own venv", parents=[upstream])
    install.add_argument("peer", choices=[*PEERS, "all"])
    install.add_argument("--force", action="store_true", help="reinstall even if up to date")
    sub.add_parser("status", help="show the model, the installed peers and their versions")
    serve = sub.add_parser(
        "serve", help="start a peer and keep it running until Ctrl-C", parents=[upstream]
    )
    serve.add_argument("peer", choices=list(PEERS))
    smoke = sub.add_parser(
        "smoke", help="start a peer and smoke-test it with the openai SDK", parents=[upstream]
    )
    smoke.add_argument("peer", choices=list(PEERS))
    smoke.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    record = sub.add_parser(
        "record",
        help="record the suite against a peer",
        description="Build the model, install and start the peer, run `conformance run --mode "
        "record --target PEER --base-url URL --server-version VERSION [ARGS]`, stop the peer. "
        "ARGS are the arguments this command does not know, and all after --.",
        parents=[upstream],
    )
    record.add_argument("peer", choices=[*PEERS, "all"])
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; ``record`` passes what it does not know, and all after --, to run."""
    parser = _parser()
    head, tail = list(argv), []
    if "--" in head:
        cut = head.index("--")
        head, tail = head[:cut], head[cut + 1 :]
    args, unknown = parser.parse_known_args(head)
    args.extra = [*unknown, *tail]
    if args.extra and args.command != "record":
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    return args


def _peers(name: str, upstream: str | None) -> list[servers.Peer]:
    """The peers named on the command line ("all": every one), proxies in front of ``upstream``."""
    if name != "all":
        return [PEERS[name].with_upstream(upstream)]
    return [peer.with_upstream(upstream) if peer.upstream else peer for peer in PEERS.values()]


def _prepare(layout: Layout, peer: servers.Peer, progress: Progress) -> servers.Peer:
    """Build the model and install the peer (each skipped when already done)."""
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
    print(f"build cache: {layout.wheels}")
    print(f"  wheel:     {builds.llama_wheel(layout.wheels) or 'no llama-cpp-python wheel yet'}")
    built_server = builds.llama_server_build(layout.wheels) is not None
    print(
        f"  server:    {builds.llama_server_path(layout.wheels) if built_server else 'no llama-server yet'}"
    )
    built = "built" if model.is_built(layout.model_dir) else "not built"
    print(f"tiny model:  {layout.model_dir} ({built})")
    for peer in PEERS.values():
        state = "installed" if servers.is_installed(layout, peer) else "not installed"
        version = servers.installed_version(layout, peer)
        print(
            f"{peer.name:16} {state:14} {peer.distribution} {version or '-'}"
            f" (pinned {peer.version})"
        )


def _serve_forever(running: servers.Running, progress: Progress) -> None:
    print(running.base_url, flush=True)
    progress.say(
        f"{running.server_version} serving model {model.MODEL_NAME!r} "
        f"at {running.base_url}; Ctrl-C stops it"
    )
    key_env = running.peer.server_key_env
    if running.api_key:
        source = (
            f"${key_env}"
            if key_env and os.environ.get(key_env)
            else f"generated for this session: {running.api_key}"
        )
        progress.say(f"API key ({source}); clients read it from ${running.peer.api_key_env}")
    while True:
        for server in running.servers:
            if server.process.poll() is not None:
                raise PeerError(
                    f"peer {server.peer.name} exited with code {server.process.returncode}; "
                    + log_excerpt(server.log)
                )
        time.sleep(1.0)


def _record(layout: Layout, peer: servers.Peer, extra: Sequence[str], progress: Progress) -> int:
    with servers.serve(layout, peer, progress) as running:
        argv = servers.record_command(peer, running.base_url, running.server_version, extra)
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
    args = _parse(sys.argv[1:] if argv is None else argv)
    layout = Layout.from_env()
    progress = Progress()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.command == "build-model":
            _build_model(layout, progress, force=args.force)
            print(layout.model_dir)
        elif args.command == "install":
            for peer in _peers(args.peer, args.upstream):
                servers.install(layout, peer, progress, force=args.force)
        elif args.command == "status":
            _status(layout)
        elif args.command == "serve":
            (peer,) = _peers(args.peer, args.upstream)
            _prepare(layout, peer, progress)
            with servers.serve(layout, peer, progress) as running:
                _serve_forever(running, progress)
        elif args.command == "smoke":
            (peer,) = _peers(args.peer, args.upstream)
            _prepare(layout, peer, progress)
            return _smoke(layout, peer, args.json, progress)
        elif args.command == "record":
            # One peer after the other (they share two cores); the worst exit code wins.
            codes = [
                _record(layout, _prepare(layout, peer, progress), args.extra, progress)
                for peer in _peers(args.peer, args.upstream)
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
