"""Bad input: a corpus of malformed specs and settings, each run through the command.

Every entry must give one message naming the file and the place in it, and the exit code
that ``conformance/cli.py`` documents (4 for a usage or spec error), and never a traceback.
The spec mistakes of ``tests/spec/test_loader.py`` (checked there in-process) are part of
the corpus, run here end to end; the entries below add what only the command can show.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.cli import main
from tests._cli import conformance, replace_in
from tests.spec.test_loader import BAD_SPECS, alias_bomb, nested

EXIT_USAGE = 4
EXIT_OK = 0


@dataclass(frozen=True)
class Bad:
    """One malformed input and what the command must say about it."""

    id: str
    #: Edits to a copy of the shipped specs: (file under specs/, old text, new text).
    edits: tuple[tuple[str, str, str], ...] = ()
    #: Files to overwrite in that copy: (file under specs/, bytes).
    writes: tuple[tuple[str, bytes], ...] = ()
    #: The command; {specs} is the copy, {tmp} the working folder.
    argv: tuple[str, ...] = ("list", "--specs", "{specs}")
    env: dict[str, str] = field(default_factory=dict)
    exit: int = EXIT_USAGE
    #: Run in a subprocess stopped after this many seconds: for input that could hang.
    timeout: float | None = None
    #: What the one message says, and where: a path (under {specs} or {tmp}), with
    #: ``:LINE:`` after it when the place is a line of that file ("N" for any line).
    words: str = ""
    where: str = ""
    line: int | str | None = "N"


def _from_loader(entry: tuple[str, str, str, str, int | None]) -> Bad:
    file, old, new, words, line = entry
    # An extends cycle is reported in whichever profile of the cycle is checked first.
    where = "profiles/" if "cycle" in words else file
    return Bad(
        id=f"spec:{file}:{words[:40]}",
        edits=((file, old, new),),
        words=words,
        where=where,
        line=line if line is not None and "cycle" not in words else "N",
    )


def _under(key: str, payload: str) -> str:
    """``payload`` (YAML) as the value of ``key`` in a block mapping."""
    return f"{key}:\n" + "".join(f"  {row}\n" for row in payload.splitlines())


#: A baseline that is fine but for ``payload`` under one of its keys.
def _baseline_with(payload: str) -> bytes:
    return (
        "schema_version: 1\ntargets:\n  reference-openai: []\n" + _under("note", payload)
    ).encode()


LIVE_ONLY = "live_only: true\n"
#: A results file nested deeper than any parser should follow.
DEEP_RESULTS = ('{"schema_version": 1, "provenance": ' + "[" * 5000 + "]" * 5000 + "}").encode()
#: Commands that load a baseline before running any case.
RUN_WITH_BASELINE = (
    "run",
    "--specs",
    "{specs}",
    "--baseline",
    "{specs}/hostile-baseline.yaml",
    "--target",
    "reference-openai",
    "--behavior",
    "stop.inclusion",
)

#: Files built to hang or crash what reads them (tests/spec/test_loader.py times the read).
HOSTILE: list[Bad] = [
    Bad(
        "yaml-alias-bomb-in-a-target",
        edits=(
            ("targets/openai.yaml", "live_only: true\n", LIVE_ONLY + _under("note", alias_bomb())),
        ),
        timeout=60,
        words="holds more than 100,000 values once its aliases are expanded",
        where="targets/openai.yaml",
        line=23,
    ),
    Bad(
        "yaml-deep-nesting-in-a-target",
        edits=(
            ("targets/openai.yaml", "live_only: true\n", LIVE_ONLY + _under("note", nested(990))),
        ),
        timeout=60,
        words="the YAML nests deeper than 64 levels",
        where="targets/openai.yaml",
        line=18,
    ),
    Bad(
        "yaml-alias-bomb-in-a-baseline",
        writes=(("hostile-baseline.yaml", _baseline_with(alias_bomb())),),
        argv=RUN_WITH_BASELINE,
        timeout=60,
        words="holds more than 100,000 values once its aliases are expanded",
        where="hostile-baseline.yaml",
        line=10,
    ),
    Bad(
        "yaml-deep-nesting-in-a-baseline",
        writes=(("hostile-baseline.yaml", _baseline_with(nested(990))),),
        argv=RUN_WITH_BASELINE,
        timeout=60,
        words="the YAML nests deeper than 64 levels",
        where="hostile-baseline.yaml",
        line=5,
    ),
    Bad(
        "results-deeply-nested-report",
        writes=(("deep-results.json", DEEP_RESULTS),),
        argv=("report", "{specs}/deep-results.json", "--out", "{tmp}/out"),
        words="not a results file: Invalid JSON: recursion limit exceeded at line 1",
        where="{specs}/deep-results.json",
        line=None,
    ),
    Bad(
        "results-deeply-nested-compare",
        writes=(("deep-results.json", DEEP_RESULTS),),
        argv=("compare", "{specs}/deep-results.json", "{specs}/deep-results.json"),
        words="not a results file: Invalid JSON: recursion limit exceeded at line 1",
        where="{specs}/deep-results.json",
        line=None,
    ),
]

CORPUS: list[Bad] = [
    *(_from_loader(entry) for entry in BAD_SPECS),
    *HOSTILE,
    Bad(
        "yaml-tab-indentation",
        edits=(("targets/openai.yaml", "  chat: gpt-4o-mini", "\tchat: gpt-4o-mini"),),
        words="YAML syntax error",
        where="targets/openai.yaml",
        line=8,
    ),
    Bad(
        "target-unknown-key",
        edits=(("targets/openai.yaml", "live_only: true", "live_only: true\ntimeout: 5"),),
        words="unknown key 'timeout'; did you mean 'timeout_s'?",
        where="targets/openai.yaml",
        line=17,
    ),
    Bad(
        "target-wrong-type",
        edits=(("targets/openai.yaml", "live_only: true", "live_only: true\ntimeout_s: fast"),),
        words="timeout_s: Input should be a valid number",
        where="targets/openai.yaml",
        line=17,
    ),
    Bad(
        "target-wrong-type-list",
        edits=(("targets/openai.yaml", "apis: [chat, completions, responses]", "apis: chat"),),
        words="apis: Input should be a valid list",
        where="targets/openai.yaml",
        line=15,
    ),
    Bad(
        "target-bad-variable-reference",
        edits=(
            (
                "targets/openai.yaml",
                "live_only: true",
                "live_only: true\nheaders: {x-org: '${1ORG}'}",
            ),
        ),
        words="'${1ORG}' is not a variable reference",
        where="targets/openai.yaml",
        line=17,
    ),
    Bad(
        "empty-file",
        writes=(("targets/openai.yaml", b""),),
        words="the file is empty",
        where="targets/openai.yaml",
        line=None,
    ),
    Bad(
        "not-utf8",
        writes=(("profiles/openai.yaml", b"id: openai\ntitle: \xff\xfe\n"),),
        words="cannot read the file",
        where="profiles/openai.yaml",
        line=None,
    ),
    Bad(
        "no-specs-folder",
        argv=("list", "--specs", "{tmp}/nowhere"),
        words="no such specs folder",
        where="{tmp}/nowhere",
        line=None,
    ),
    Bad(
        "no-targets-folder",
        writes=(),
        argv=("list", "--specs", "{specs}/behaviors"),
        words="the specs folder has no 'behaviors', 'profiles' or 'targets' folder",
        where="{specs}/behaviors",
        line=None,
    ),
    Bad(
        "run-unknown-outcome",
        edits=(("profiles/fireworks.yaml", "expect: included", "expect: includd"),),
        argv=("run", "--specs", "{specs}"),
        words="'includd' is not an outcome of stop.inclusion; did you mean 'included'?",
        where="profiles/fireworks.yaml",
        line=13,
    ),
    Bad(
        "live-key-variable-unset",
        argv=("run", "--specs", "{specs}", "--mode", "live", "--target", "openai"),
        env={"OPENAI_API_KEY": ""},
        words="target openai needs $OPENAI_API_KEY set to run in live mode",
        where="targets/openai.yaml",
        line=6,
    ),
    Bad(
        "live-header-variable-unset",
        edits=(
            (
                "targets/openai.yaml",
                "live_only: true",
                "live_only: true\nheaders: {openai-organization: '${ORG_FOR_TEST}'}",
            ),
        ),
        argv=("run", "--specs", "{specs}", "--mode", "live", "--target", "openai"),
        env={"OPENAI_API_KEY": "sk-unused", "ORG_FOR_TEST": ""},
        words="target openai needs $ORG_FOR_TEST set to run in live mode",
        where="targets/openai.yaml",
        line=17,
    ),
    Bad(
        "replay-cassette-missing",
        argv=(
            "run",
            "--specs",
            "{specs}",
            "--cassettes",
            "{tmp}/none",
            "--target",
            "reference-openai",
            "--behavior",
            "stop.inclusion",
            "--",
            "-rs",
            "-k",
            "chat-nostream",
        ),
        exit=EXIT_OK,  # a skip: the case cannot run, and says how to record it
        words="; record it with: conformance run --mode record --target reference-openai --behavior stop.inclusion",
        where="{tmp}/none/reference-openai/stop.inclusion/chat-nostream.yaml",
        line=None,
    ),
    Bad(
        "report-dir-not-writable",
        argv=(
            "run",
            "--specs",
            "{specs}",
            "--report-dir",
            "{tmp}/taken",
            "--target",
            "reference-openai",
            "--behavior",
            "stop.inclusion",
        ),
        words="cannot write the results to",
        where="{tmp}/taken",
        line=None,
    ),
]


def _invoke(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    timeout: float | None = None,
) -> tuple[int, str]:
    """The command's exit code and output. ``run`` goes to a subprocess (it runs pytest),
    and so does a command given a timeout; the others call the command's entry point
    in-process, which is the same code without the interpreter's start-up, so the corpus
    stays fast."""
    if argv[0] == "run" or timeout is not None:
        completed = conformance(*argv, cwd=cwd, env=env, timeout=timeout or 300)
        return completed.returncode, completed.stdout + completed.stderr
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("bad", CORPUS, ids=[bad.id for bad in CORPUS])
def test_bad_input_gives_one_located_message_and_a_documented_exit_code(
    bad: Bad,
    specs_copy: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if bad.id == "report-dir-not-writable":
        # Root ignores permissions, so the folder is taken by a file.
        (tmp_path / "taken").write_text("a file, not a folder")
    for file, old, new in bad.edits:
        replace_in(specs_copy / file, old, new)
    for file, content in bad.writes:
        (specs_copy / file).write_bytes(content)

    def fill(text: str) -> str:
        return text.replace("{specs}", str(specs_copy)).replace("{tmp}", str(tmp_path))

    # An uncaught exception in-process fails this test as a traceback would.
    code, output = _invoke(
        [fill(arg) for arg in bad.argv], bad.env, tmp_path, monkeypatch, bad.timeout
    )
    assert "Traceback" not in output, output
    assert code == bad.exit, output
    messages = [line for line in output.splitlines() if bad.words in line]
    assert len(messages) == 1, output
    message = messages[0]
    where = fill(bad.where)
    assert where in message, message
    if bad.line is not None:
        line = r"\d+" if bad.line == "N" else str(bad.line)
        assert re.search(re.escape(where) + rf"[^:\s]*:{line}:", message), message
