"""The HTML report: one self-contained file, readable without JavaScript.

Everything is inline (CSS, and a small script that only adds conveniences), nothing is
fetched, and every piece of provider or results text goes through Jinja's autoescaping.
A Content-Security-Policy allows no script but the report's own (by its hash), so even a
bug in escaping could not run injected markup.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from conformance import files
from conformance.compare import LABELS, Change, Comparison
from conformance.gate import GateReport, Kind
from conformance.report.model import ALL, PAIR, Match, Report, anchor, build
from conformance.results import Results

_TEMPLATES = importlib.resources.files("conformance.report") / "templates"

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("conformance.report", "templates"),
    autoescape=True,  # provider text is data: it must never become markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def pretty(text: str | None) -> str:
    """A response body, indented if it is JSON, else as it came."""
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def as_json(value: Any) -> str:
    """A request body as indented JSON."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def safe_url(url: str) -> str | None:
    """``url`` if it is a web address; anything else (``javascript:``...) is shown as text."""
    return url if url.startswith(("https://", "http://")) and " " not in url else None


_ENVIRONMENT.filters["pretty"] = pretty
_ENVIRONMENT.filters["as_json"] = as_json
_ENVIRONMENT.globals["safe_url"] = safe_url
_ENVIRONMENT.globals["anchor"] = anchor
_ENVIRONMENT.globals["ALL"] = ALL
_ENVIRONMENT.globals["Match"] = Match
_ENVIRONMENT.globals["Kind"] = Kind
_ENVIRONMENT.globals["Change"] = Change
_ENVIRONMENT.globals["CHANGE_LABELS"] = LABELS
# One mark per verdict for the API/variant lines; the title attribute spells it out.
_ENVIRONMENT.globals["GLYPHS"] = {
    "pass": "✓",
    "deviation": "≠",
    "error": "!",
    "observed": "○",
    "skipped": "·",
}


def _asset(name: str) -> str:
    return (_TEMPLATES / name).read_text(encoding="utf-8")


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def _filter_css(report: Report) -> str:
    """The rules behind the CSS-only filters.

    Targets, profiles and API choices go by their index, never by name, so nothing from the
    results reaches the style sheet (which is not escaped as HTML is).
    """
    only_diff = "body:has(#only-diff:checked)"
    rules = [f"{only_diff} :is(tr.behavior, tr.family) {{ display: none; }}"]
    for key, name in enumerate(report.filters):
        chosen = f":has(#api-{key}:checked)"
        rules.append(f"body{chosen} .v{key} {{ display: flex; }}")
        if name != ALL:
            rules.append(f"body{chosen} .apif:not(.has-a{key}) {{ display: none; }}")
            rules.append(
                f"body{chosen} .matrix > tbody:not(:has(> .has-a{key})) {{ display: none; }}"
            )
            rules.append(f"body{chosen} .case-line:not(.api-a{key}) {{ display: none; }}")
        # "Differences only": a shown target deviates from its claim, or two shown disagree;
        # a family's label shows with such a row (as :has cannot nest, spelt out apart).
        shows = [
            (
                f":has(#show-t{column}:checked)",
                f"tr.behavior:has(> td.t{column}.dv{key})",
                f"tbody:has(> tr.behavior > td.t{column}.dv{key})",
            )
            for column in (target.column for target in report.recorded)
        ]
        pairs = sorted({pair for row in report.rows for pair in row.disagreeing[name]})
        shows += [
            (
                f":has(#show-t{a}:checked):has(#show-t{b}:checked)",
                f"tr.x{key}-{a}-{b}",
                f"tbody:has(> tr.x{key}-{a}-{b})",
            )
            for a, b in pairs
        ]
        for shown, row, family in shows:
            when = f"{only_diff}{chosen}{shown}"
            rules.append(f"{when} {row}, {when} {family} > tr.family {{ display: table-row; }}")
    # A hidden column collapses (so the header's spans still fit); elsewhere it is gone.
    for target in report.recorded:
        hidden = f"body:has(#show-t{target.column}:not(:checked))"
        rules.append(f"{hidden} col.t{target.column} {{ visibility: collapse; }}")
        rules.append(f"{hidden} .t{target.column}:not(.matrix *) {{ display: none; }}")
    for index, _ in enumerate(report.profiles):
        rules.append(
            f"body:has(#show-p{index}:not(:checked)) col.p{index} {{ visibility: collapse; }}"
        )
    return "\n".join(rules)


def render(
    results: Results,
    *,
    previous: Sequence[Results] = (),
    gate: GateReport | None = None,
    pair: tuple[str, str] = PAIR,
) -> str:
    """The report for ``results`` as one HTML document."""
    report = build(results, previous=previous, gate=gate, pair=pair)
    script = _asset("report.js")
    return _ENVIRONMENT.get_template("report.html.j2").render(
        report=report,
        results=results,
        totals=results.totals(),
        css=_asset("report.css") + "\n" + _filter_css(report),
        script=script,
        csp=_csp(script),
    )


def render_comparison(comparison: Comparison, old_name: str, new_name: str) -> str:
    """What changed between two runs, as one HTML document."""
    report = build(comparison.new, previous=[comparison.old])
    script = _asset("report.js")
    return _ENVIRONMENT.get_template("compare.html.j2").render(
        comparison=comparison,
        report=report,
        old_name=old_name,
        new_name=new_name,
        css=_asset("report.css"),
        script=script,
        csp=_csp(script),
    )


def write(
    results: Results,
    path: Path,
    *,
    previous: Sequence[Results] = (),
    gate: GateReport | None = None,
) -> None:
    """Render the report for ``results`` to ``path``."""
    files.write_text(path, render(results, previous=previous, gate=gate))
