"""Compile llama.cpp once, into a cache that survives a fresh clone.

Two builds of the same sources: the llama-cpp-python wheel (PyPI has only its sdist) for the
``llamacpp`` peer, and llama.cpp's own ``llama-server``, from the llama.cpp sources that sdist
vendors, for the ``llamacpp-server`` peer. Both land in one cache folder (the launchers'
``Layout.wheels``: ``~/.cache/conformance/wheels`` unless CONFORMANCE_WHEEL_CACHE says otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from conformance.peers.progress import PeerError, Progress, run_logged

LLAMA_VERSION = "0.3.36"

# Flags that keep llama.cpp's build small and the wheel portable across x86-64 CPUs.
LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF "
    "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
)
# llama-server alone, from the llama.cpp sources in llama-cpp-python's sdist: CPU only, portable,
# statically linked (so the cached binary stands alone), and nothing that could reach the network
# (no OpenSSL for model downloads, no Web UI fetched from a hub at build time).
LLAMA_SERVER_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BLAS=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


def llama_wheel(cache: Path) -> Path | None:
    """Return the cached llama-cpp-python wheel of the pinned version, if built already."""
    found = sorted(cache.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    return found[-1] if found else None


def build_llama_wheel(cache: Path, log: Path, progress: Progress, python: Path) -> Path:
    """Compile llama-cpp-python into the cache once (several minutes on 2 cores), logging to log."""
    cached = llama_wheel(cache)
    if cached is not None:
        progress.say(f"reusing cached wheel {cached}")
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CMAKE_ARGS": LLAMA_CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
    }
    # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and could hand back a build made
    # with other flags (e.g. tied to another CPU type).
    argv = [
        str(python),
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "-w",
        str(cache),
        f"llama-cpp-python=={LLAMA_VERSION}",
    ]
    with progress.step(f"compiling llama-cpp-python {LLAMA_VERSION} (log: {log})", log):
        run_logged(argv, log, env)
    wheel = llama_wheel(cache)
    if wheel is None:
        raise PeerError(f"pip wheel finished but left no wheel in {cache}")
    return wheel


def llama_server_path(cache: Path) -> Path:
    """Where the compiled llama-server of the pinned sources is cached (beside the wheel)."""
    return cache / f"llama-server-{LLAMA_VERSION}"


def _llama_server_stamp(cache: Path) -> Path:
    return cache / f"llama-server-{LLAMA_VERSION}.json"


def llama_server_build(cache: Path) -> dict[str, str] | None:
    """Return the cached llama-server's build record, if one was built with today's flags."""
    try:
        record = json.loads(_llama_server_stamp(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    binary = llama_server_path(cache)
    fresh = isinstance(record, dict) and record.get("cmake_args") == list(LLAMA_SERVER_CMAKE_ARGS)
    return record if fresh and os.access(binary, os.X_OK) else None


def forget_llama_server(cache: Path) -> None:
    """Make the next `build_llama_server` compile again (install --force)."""
    _llama_server_stamp(cache).unlink(missing_ok=True)


def llama_server_sources(workdir: Path) -> Path:
    """The llama.cpp source tree vendored in an unpacked llama-cpp-python sdist."""
    return workdir / "src" / f"llama_cpp_python-{LLAMA_VERSION}" / "vendor" / "llama.cpp"


def llama_server_build_steps(workdir: Path) -> list[list[str]]:
    """The commands that compile llama-server alone from an unpacked sdist in ``workdir``."""
    build = workdir / "cmake-build"
    sources = llama_server_sources(workdir)
    jobs = str(os.cpu_count() or 2)
    return [
        ["cmake", "-S", str(sources), "-B", str(build), *LLAMA_SERVER_CMAKE_ARGS],
        ["cmake", "--build", str(build), "--target", "llama-server", "--parallel", jobs],
    ]


def build_llama_server(cache: Path, workdir: Path, log: Path, progress: Progress) -> Path:
    """Compile llama-server from llama-cpp-python's sdist into the cache, once.

    The sdist is unpacked and built in ``workdir``, which is removed afterwards; the output goes
    to ``log``.

    The sdist vendors the llama.cpp sources (with the commit they are at), so this is the
    llama.cpp that the llamacpp peer wraps. A half-finished build is resumed, and the binary
    only reaches the cache once it runs.
    """
    if llama_server_build(cache) is not None:
        progress.say(f"reusing cached {llama_server_path(cache)}")
        return llama_server_path(cache)
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise PeerError(f"building llama-server needs {tool} on PATH (and a C/C++ compiler)")
    log.parent.mkdir(parents=True, exist_ok=True)
    if not llama_server_sources(workdir).is_dir():
        sdist_dir = workdir / "sdist"
        download = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:"]
        download += ["--no-deps", "-d", str(sdist_dir), f"llama-cpp-python=={LLAMA_VERSION}"]
        with progress.step(f"downloading the llama-cpp-python {LLAMA_VERSION} sdist", log):
            run_logged(download, log)
        (sdist,) = sdist_dir.glob(f"llama_cpp_python-{LLAMA_VERSION}.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(workdir / "src", filter="data")
    with progress.step(f"compiling llama-server {LLAMA_VERSION} (log: {log})", log):
        for argv in llama_server_build_steps(workdir):
            run_logged(argv, log)
    built = workdir / "cmake-build" / "bin" / "llama-server"
    # It prints its version on stderr.
    version = subprocess.run(
        [str(built), "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=60,
    )
    if version.returncode != 0:
        raise PeerError(f"the built {built} does not run: {version.stdout.strip()[-500:]}")
    cache.mkdir(parents=True, exist_ok=True)
    # Copy under a temporary name and rename: the cache never holds half a binary.
    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as partial:
        shutil.copyfile(built, partial.name)
    os.chmod(partial.name, 0o755)
    os.replace(partial.name, llama_server_path(cache))
    record = {"cmake_args": list(LLAMA_SERVER_CMAKE_ARGS), **build_info(version.stdout)}
    _llama_server_stamp(cache).write_text(json.dumps(record), encoding="utf-8")
    shutil.rmtree(workdir)  # sources and objects: ~GB that the cached binary makes useless
    return llama_server_path(cache)


def build_info(version_output: str) -> dict[str, str]:
    """Version and commit from ``version: 0.5.0-dev (build 1, commit 0c1e570)``."""
    found = re.search(r"^version: (\S+) \(.*commit (\w+)\)", version_output, re.MULTILINE)
    version, commit = found.groups() if found else ("unknown", "unknown")
    return {"version": version, "commit": commit}
