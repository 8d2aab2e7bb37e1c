"""Compiling llama-server from the llama-cpp-python sdist, with a stand-in cmake."""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import pytest

from conformance.peers import builds
from conformance.peers.progress import PeerError, Progress

FAKE_CMAKE = textwrap.dedent(
    """\
    #!/bin/sh
    # Stands in for cmake: notes its arguments; "--build DIR" leaves a llama-server in DIR/bin.
    echo "$@" >> "$CMAKE_CALLS"
    if [ "$1" = "--build" ]; then
        mkdir -p "$2/bin"
        printf '#!/bin/sh\\n%s\\n' "$FAKE_SERVER_BODY" > "$2/bin/llama-server"
        chmod +x "$2/bin/llama-server"
    fi
    """
)


class TestLlamaServerBuild:
    @pytest.fixture
    def toolchain(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A fake cmake (and c++) first on PATH; returns the file its calls are noted in."""
        bin_dir = tmp_path / "fakebin"
        bin_dir.mkdir()
        for name, body in (("cmake", FAKE_CMAKE), ("c++", "#!/bin/sh\n")):
            (bin_dir / name).write_text(body)
            (bin_dir / name).chmod(0o755)
        calls = tmp_path / "cmake-calls"
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("CMAKE_CALLS", str(calls))
        monkeypatch.setenv(
            "FAKE_SERVER_BODY", "echo 'version: 0.5.0-dev (build 1, commit abc1234)' >&2"
        )
        return calls

    @pytest.fixture
    def quiet(self) -> Progress:
        return Progress(io.StringIO())

    @staticmethod
    def unpacked(tmp_path: Path) -> Path:
        """A work folder holding the llama.cpp sources, as if the sdist was unpacked there."""
        workdir = tmp_path / "work"
        builds.llama_server_sources(workdir).mkdir(parents=True)
        return workdir

    def test_steps_build_only_the_server_offline(self, tmp_path: Path) -> None:
        configure, build = builds.llama_server_build_steps(tmp_path)
        assert configure[:3] == ["cmake", "-S", str(builds.llama_server_sources(tmp_path))]
        assert builds.llama_server_sources(tmp_path).parts[-2:] == ("vendor", "llama.cpp")
        for flag in ("-DLLAMA_OPENSSL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DGGML_NATIVE=OFF"):
            assert flag in configure
        assert "-DBUILD_SHARED_LIBS=OFF" in configure  # the cached binary stands alone
        assert build[:2] == ["cmake", "--build"]
        assert build[build.index("--target") + 1] == "llama-server"

    def test_build_info(self) -> None:
        text = "version: 0.5.0-dev (build 1, commit 0c1e570)\nbuilt with GNU 12.2.0\n"
        assert builds.build_info(text) == {"version": "0.5.0-dev", "commit": "0c1e570"}
        assert builds.build_info("garbage") == {"version": "unknown", "commit": "unknown"}

    def test_builds_once_into_the_cache(
        self, tmp_path: Path, quiet: Progress, toolchain: Path
    ) -> None:
        cache, workdir, log = tmp_path / "cache", self.unpacked(tmp_path), tmp_path / "build.log"
        assert builds.llama_server_build(cache) is None
        binary = builds.build_llama_server(cache, workdir, log, quiet)
        assert binary == builds.llama_server_path(cache)
        assert os.access(binary, os.X_OK)
        assert builds.llama_server_build(cache) == {
            "cmake_args": list(builds.LLAMA_SERVER_CMAKE_ARGS),
            "version": "0.5.0-dev",
            "commit": "abc1234",
        }
        assert not workdir.exists()  # sources and objects are not kept
        calls = toolchain.read_text().splitlines()
        assert len(calls) == 2
        assert "$ cmake --build" in log.read_text()
        builds.build_llama_server(cache, workdir, log, quiet)  # cached: cmake does not run again
        assert toolchain.read_text().splitlines() == calls
        builds.forget_llama_server(cache)
        assert builds.llama_server_build(cache) is None

    def test_changed_flags_rebuild(
        self, tmp_path: Path, quiet: Progress, toolchain: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = tmp_path / "cache"
        builds.build_llama_server(cache, self.unpacked(tmp_path), tmp_path / "log", quiet)
        assert builds.llama_server_build(cache) is not None
        monkeypatch.setattr(builds, "LLAMA_SERVER_CMAKE_ARGS", ("-DGGML_NATIVE=ON",))
        assert builds.llama_server_build(cache) is None

    def test_broken_binary_is_not_cached(
        self, tmp_path: Path, quiet: Progress, toolchain: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = tmp_path / "cache"
        monkeypatch.setenv("FAKE_SERVER_BODY", "echo 'cannot load libgomp' >&2; exit 127")
        with pytest.raises(PeerError, match="does not run: cannot load libgomp"):
            builds.build_llama_server(cache, self.unpacked(tmp_path), tmp_path / "log", quiet)
        assert builds.llama_server_build(cache) is None
        assert not builds.llama_server_path(cache).exists()


def test_llama_wheel_lookup(tmp_path: Path) -> None:
    assert builds.llama_wheel(tmp_path) is None
    wheel = tmp_path / f"llama_cpp_python-{builds.LLAMA_VERSION}-py3-none-linux.whl"
    wheel.touch()
    (tmp_path / "llama_cpp_python-0.0.1-py3-none-linux.whl").touch()
    assert builds.llama_wheel(tmp_path) == wheel
