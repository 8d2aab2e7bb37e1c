"""The HTML report: one self-contained file, readable without JavaScript.

Everything is inline (CSS, and a small script that only adds conveniences), nothing is
fetched, and every piece of provider or results text is escaped: by Jinja's autoescaping,
or, in the exchanges (written in Python, see ``exchanges``), by markupsafe's ``escape`` and,
for bodies, headers and streams (element content only), by ``evidence.text``. A
Content-Security-Policy allows no script but the report's own (by its hash), so even a bug
in escaping could not run injected markup.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path

import jinja2

from conformance import files
from conformance.compare import LABELS, Change, Comparison
from conformance.gate import GateReport, Kind
from conformance.report import evidence
from conformance.report.exchanges import exchanges
from conformance.report.model import (
    ALL,
    PAIR,
    Family,
    Match,
    Report,
    Row,
    anchor,
    build,
)
from conformance.results import Results

_TEMPLATES = importlib.resources.files("conformance.report") / "templates"

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("conformance.report", "templates"),
    autoescape=True,  # provider text is data: it must never become markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


#: The templates a run's report renders (the page, and what it imports and includes).
RUN_TEMPLATES = ("report.html.j2", "_macros.html.j2", "_changes.html.j2")
_compiling: list[threading.Thread] = []


def compile_ahead() -> None:
    """Start compiling the run report's templates on a daemon thread.

    For a run with time to spare while it waits on the network: compiling takes about
    0.1 s, which ``render`` would otherwise spend after the last result. Calling it again
    does nothing.
    """
    if _compiling:
        return
    thread = threading.Thread(target=_compile_run_templates, name="report-templates", daemon=True)
    _compiling.append(thread)
    thread.start()


def _compile_run_templates() -> None:
    for name in RUN_TEMPLATES:
        _ENVIRONMENT.get_template(name)  # compiled once, then cached by the environment


def safe_url(url: str) -> str | None:
    """``url`` if it is a web address; anything else (``javascript:``...) is shown as text."""
    return url if url.startswith(("https://", "http://")) and " " not in url else None


_ENVIRONMENT.filters["text"] = evidence.text
_ENVIRONMENT.filters["header_lines"] = evidence.header_lines
_ENVIRONMENT.globals["FOLD"] = evidence.FOLD
_ENVIRONMENT.globals["exchanges"] = exchanges
_ENVIRONMENT.filters["group_label"] = evidence.group_label
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


#: The filters' form: every filter rule starts from its state and reaches what it shows or
#: hides among the elements after it. Anchored on the small form (never on the body), a
#: ``:has()`` costs nothing while the browser parses the rest of the page.
_FORM = "form.filters"


def _when(*checked: str) -> str:
    """A selector for the elements after the form while each box ``checked`` is ticked."""
    return _FORM + "".join(f":has(#{box}:checked)" for box in checked) + " ~ *"


def _unless(box: str) -> str:
    """A selector for the elements after the form while ``box`` is not ticked."""
    return f"{_FORM}:has(#{box}:not(:checked)) ~ *"


def _row_marks(report: Report, row: Row) -> list[str]:
    """The classes the filter rules look for on a behavior's row: each API it has
    (``has-aK``), and under each API choice ``K`` each target column that deviates from its
    claim (``dK-C``) and each pair of target columns that disagree (``xK-A-B``)."""
    marks = [f"has-a{report.key(api)}" for api in row.apis]
    for key, name in enumerate(report.filters):
        marks += [f"d{key}-{cell.column}" for cell in row.cells if cell.views[name].deviations]
        marks += [f"x{key}-{a}-{b}" for a, b in row.disagreeing[name]]
    return marks


def row_classes(report: Report, row: Row) -> str:
    """The filter classes of a behavior's row (see ``_row_marks``)."""
    return " ".join(_row_marks(report, row))


def family_classes(report: Report, family: Family) -> str:
    """The filter classes of a family's rows together: its label shows with any of them."""
    marks = (mark for row in family.rows for mark in _row_marks(report, row))
    return " ".join(dict.fromkeys(marks))


_ENVIRONMENT.globals["row_classes"] = row_classes
_ENVIRONMENT.globals["family_classes"] = family_classes


def _filter_css(report: Report) -> str:
    """The rules behind the CSS-only filters.

    Targets, profiles and API choices go by their index, never by name, so nothing from the
    results reaches the style sheet (which is not escaped as HTML is).
    """
    rules = [f"{_when('only-diff')} :is(tr.behavior, tr.family) {{ display: none; }}"]
    columns = [target.column for target in report.recorded]
    for key, name in enumerate(report.filters):
        api = f"api-{key}"
        rules.append(f"{_when(api)} .v{key} {{ display: flex; }}")
        if name != ALL:
            rules.append(f"{_when(api)} .apif:not(.has-a{key}) {{ display: none; }}")
            rules.append(f"{_when(api)} .case-line:not(.api-a{key}) {{ display: none; }}")
        # "Differences only": a shown target deviates from its claim, or two shown disagree;
        # a family's label shows with such a row.
        pairs = sorted({pair for row in report.rows for pair in row.disagreeing[name]})
        marks: list[tuple[tuple[str, ...], str]]
        marks = [((f"show-t{column}",), f"d{key}-{column}") for column in columns]
        marks += [((f"show-t{a}", f"show-t{b}"), f"x{key}-{a}-{b}") for a, b in pairs]
        for shown, mark in marks:
            when = _when("only-diff", api, *shown)
            rules.append(
                f"{when} tr.{mark}, {when} tbody.{mark} > tr.family {{ display: table-row; }}"
            )
    # A hidden column collapses (so the header's spans still fit); elsewhere it is gone.
    for column in columns:
        hidden = _unless(f"show-t{column}")
        rules.append(f"{hidden} col.t{column} {{ visibility: collapse; }}")
        rules.append(f"{hidden} .t{column}:not(.matrix *) {{ display: none; }}")
    for index, _ in enumerate(report.profiles):
        hidden = _unless(f"show-p{index}")
        rules.append(f"{hidden} col.p{index} {{ visibility: collapse; }}")
    return "\n".join(rules)


def render(
    results: Results,
    *,
    previous: Sequence[Results] = (),
    gate: GateReport | None = None,
    pair: tuple[str, str] = PAIR,
) -> str:
    """The report for ``results`` as one HTML document."""
    for thread in _compiling:
        thread.join()  # compiling the same templates twice at once would only cost more
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
