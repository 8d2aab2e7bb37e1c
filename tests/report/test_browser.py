"""The report as a person sees it: rendered by headless Chromium.

A harness page loads the report in a frame and measures it from outside, so the report
itself runs unchanged, under its own Content-Security-Policy.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from conformance import results as results_io
from conformance.report import html as report_html
from conformance.verdict import Verdict
from tests.conftest import REPO
from tests.report.conftest import browse, dump_dom
from tests.report.factory import case, exchange, results

HARNESS = """<!doctype html><html><head><meta charset="utf-8"><title>harness</title></head>
<body><pre id="out">pending</pre>
<iframe id="report" src="REPORT" style="width:1400px;height:2000px"></iframe>
<script>
window.addEventListener("load", function () {
  var out = {};
  try {
    var frame = document.getElementById("report");
    var d = frame.contentDocument, w = frame.contentWindow;
    function shown(node) {
      if (!node) { return false; }
      var box = node.getBoundingClientRect(), style = w.getComputedStyle(node);
      return box.width > 0 && box.height > 0 && style.display !== "none" &&
        style.visibility !== "hidden";
    }
    function rows() {
      return Array.from(d.querySelectorAll("tr.behavior")).filter(shown).map(function (tr) {
        return tr.querySelector(".bid").textContent;
      });
    }
    out.title = d.title;
    out.text = d.body.innerText;
    out.matrix = shown(d.querySelector("#matrix table.matrix"));
    out.diff = shown(d.querySelector("#diff")) && shown(d.querySelector("#diff .diffrow"));
    out.headers = Array.from(d.querySelectorAll("table.matrix thead th")).filter(shown)
      .map(function (th) { return (th.querySelector(".colname") || th).textContent.trim(); });
    out.images = d.querySelectorAll("img").length;
    out.handlers = d.querySelectorAll("[onerror], [onload], [onclick]").length;
    out.scripts = d.querySelectorAll("script").length;
    out.rows = rows();
    var api = d.querySelector("input[name=api]:not([id=api-all])");
    if (api) { api.checked = true; out.api = api.id; out.rowsForApi = rows(); api.checked = false; }
    d.getElementById("api-all").checked = true;
    var box = d.querySelector(".filters input[type=checkbox][id^=show-t]");
    if (box) {
      var column = "." + box.id.replace("show-", "");
      out.columnBefore = shown(d.querySelector("td" + column));
      box.checked = false;
      out.columnAfter = shown(d.querySelector("td" + column));
      box.checked = true;
    }
    var hidden = d.querySelector(".filters input[id^=show-p-]:not(:checked)");
    if (hidden) {
      var profile = "th.pcol." + hidden.id.replace("show-", "");
      out.profileToggled = hidden.id.replace("show-p-", "");
      out.profileBefore = shown(d.querySelector(profile));
      hidden.checked = true;
      out.profileAfter = shown(d.querySelector(profile));
      hidden.checked = false;
    }
    out.profilesShown = Array.from(d.querySelectorAll(".filters input[id^=show-p-]:checked"))
      .map(function (box) { return box.id.replace("show-p-", ""); });
    d.getElementById("only-diff").checked = true;
    out.rowsDiffering = rows();
  } catch (e) { out.error = String(e); }
  document.getElementById("out").textContent = JSON.stringify(out);
});
</script></body></html>
"""


def inspect(chromium: str, report: Path) -> dict[str, Any]:
    """What the harness measured in ``report``."""
    harness = report.with_name(f"harness-{report.stem}.html")
    harness.write_text(HARNESS.replace("REPORT", report.name), encoding="utf-8")
    dom = dump_dom(chromium, harness, ["--allow-file-access-from-files"])
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    assert "error" not in measured, measured.get("error")
    return measured


def test_matrix_and_diff_view_are_visible(chromium: str, replayed: Path) -> None:
    measured = inspect(chromium, replayed / "index.html")
    data = results_io.load(replayed / "results.json")
    assert measured["matrix"], "the matrix is not visible"
    assert measured["diff"], "the OpenAI-vs-Fireworks view is not visible"
    headers = measured["headers"]
    # The pair and the claimed profiles show; the other documented ones are a click away.
    assert {"openai", "fireworks", "fireworks-2026-11"} <= set(measured["profilesShown"])
    for profile in data.profiles:
        assert (profile in headers) == (profile in measured["profilesShown"]), profile
    assert measured["profileToggled"] not in measured["profilesShown"]
    assert not measured["profileBefore"]
    assert measured["profileAfter"]
    recorded = {c.target for c in data.cases if c.verdict is not Verdict.SKIPPED}
    for target in recorded:
        assert target in headers
    for target in data.targets:  # the unrecorded ones are named, not drawn as columns
        assert target in measured["text"]
    assert "not recorded" in measured["text"]
    assert set(measured["rows"]) == set(data.behaviors)
    # The CSS filters work without the script: an API hides the rows it has no case for...
    with_api = {c.behavior for c in data.cases if c.api == measured["api"].removeprefix("api-")}
    assert set(measured["rowsForApi"]) == with_api
    # ...a target's checkbox hides its column.
    assert measured["columnBefore"]
    assert not measured["columnAfter"]
    assert set(measured["rowsDiffering"]) <= set(measured["rows"])


def test_screenshot_of_the_default_replay(chromium: str, replayed: Path) -> None:
    shot = REPO / "reports" / "report-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    completed = browse(
        chromium,
        (replayed / "index.html").resolve().as_uri(),
        f"--screenshot={shot}",
        "--window-size=1400,2000",
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000  # a blank page compresses to a few kilobytes


EVIL_SCRIPT = "<script>document.title='pwned by script'</script>"
EVIL_IMAGE = "<img src=x onerror=\"document.title='pwned by onerror'\">"


def _hostile_results() -> results_io.Results:
    """Provider text with markup in every place a provider or results file controls."""
    evil = f"{EVIL_SCRIPT} {EVIL_IMAGE}"
    cases = [
        case(
            "hostile",
            observed="included",
            summary=f"summary {evil}",
            evidence=[exchange(f'{{"content": "{EVIL_IMAGE}"}} {EVIL_SCRIPT}')],
            server_version=f"server {evil}",
        ),
        case(
            "hostile",
            observed="omitted",
            stream=True,
            evidence=[exchange(sse=[f"data: {evil}", "", "data: [DONE]"])],
        ),
        case("hostile", "stream.usage", None, stream=True, summary=f"error {evil}"),
    ]
    made = results(
        cases, titles={"hostile": f"title {evil}"}, server_versions={"hostile": f"v {evil}"}
    )
    made.cases[0].evidence[0].response.headers["x-evil"] = evil  # type: ignore[union-attr]
    made.profiles["openai"].expectations["stop.inclusion"].note = f"note {evil}"
    made.profiles["openai"].expectations["stop.inclusion"].source = "javascript:alert(1)"
    return made


@pytest.mark.parametrize("policy", ["with-csp", "without-csp"])
def test_provider_markup_is_shown_as_text_and_never_runs(
    chromium: str, tmp_path: Path, policy: str
) -> None:
    page = report_html.render(_hostile_results())
    if policy == "without-csp":
        # Escaping alone must hold: take the policy away and nothing may run still.
        page, removed = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
        assert removed == 1
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    measured = inspect(chromium, report)
    assert measured["title"].startswith("OpenAI-compatibility report")
    assert "pwned" not in measured["title"]
    assert measured["images"] == 0
    assert measured["handlers"] == 0
    assert measured["scripts"] == 1  # the report's own
    assert f"summary {EVIL_SCRIPT} {EVIL_IMAGE}" in measured["text"]
    assert f"title {EVIL_SCRIPT}" in measured["text"]
