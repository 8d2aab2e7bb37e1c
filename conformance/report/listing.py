"""A plain, self-contained HTML listing of a results file: one row per case."""

from __future__ import annotations

from pathlib import Path

import jinja2

from conformance.results import Results

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("conformance.report", "templates"),
    autoescape=True,  # provider text is data: it must never become markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(results: Results) -> str:
    """The listing as an HTML document."""
    return _ENVIRONMENT.get_template("listing.html.j2").render(
        results=results, totals=results.totals()
    )


def write(results: Results, path: Path) -> None:
    """Render the listing to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results), encoding="utf-8")
