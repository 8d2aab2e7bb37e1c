"""The requests and responses of a case, as the report's evidence shows them.

Written in Python rather than in the template: a replay holds thousands of exchanges, and
plain string formatting costs a fraction of the template's per-expression machinery (and of
``Markup``'s own ``%``). Every piece of recorded text goes through ``escape`` (short texts)
or ``evidence.text`` (bodies, headers and streams); none reaches an attribute.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from conformance.observation import Exchange, ResponseRecord
from conformance.report.evidence import (
    fold_stream,
    header_lines,
    request_body,
    request_group,
    response_group,
    text,
)
from conformance.report.model import Report
from conformance.results import CaseResult

#: Shown in place of the exchanges of a case that recorded none.
NONE_RECORDED = Markup('<p class="small">No exchange was recorded for this case.</p>')


def exchanges(report: Report, case: CaseResult) -> Markup:
    """Every exchange of ``case``, each its request beside its response."""
    if not case.evidence:
        return NONE_RECORDED
    return Markup("".join(exchange(report, case, item) for item in case.evidence))


def exchange(report: Report, case: CaseResult, item: Exchange) -> str:
    """One exchange as HTML: the request, then its response or the error that came instead."""
    if item.response is None:
        answer = f'<p class="line status-bad">→ {escape(item.error or "no response")}</p>'
    else:
        answer = _response(report, case, item, item.response)
    return (
        f'<div class="exchange"><div class="req">{_request(report, case, item)}</div>'
        f'<div class="resp">{answer}</div></div>'
    )


def _request(report: Report, case: CaseResult, item: Exchange) -> str:
    request = item.request
    retries = ""
    if item.retries:
        retries = (
            f' <span class="small">({item.retries} retr{"ies" if item.retries > 1 else "y"})</span>'
        )
    group = request_group(case)
    own = report.own_headers(group, request.headers)
    headers = _headers(report.headers_anchor(group), len(request.headers), own, folded=False)
    return (
        f'<p class="line"><span class="label">{escape(item.label)}</span>{escape(request.method)}'
        f" <code>{escape(request.url)}</code>{retries}</p>"
        f"<pre>{text(request_body(request.body))}</pre>{headers}"
    )


def _response(report: Report, case: CaseResult, item: Exchange, response: ResponseRecord) -> str:
    facts = f"{item.duration_s:.3f} s"
    body = ""
    if response.sse is not None:
        stream = fold_stream(response.sse)
        facts += f" · {len(response.sse)} SSE lines"
        if stream.folded:
            facts += f", {stream.folded} folded"
        body = f"<pre>{text(stream.text)}</pre>"
    elif response.body is not None:
        body = f"<pre>{text(response.body)}</pre>"
    status = "status-ok" if response.status < 400 else "status-bad"
    group = response_group(case, response)
    own = report.own_headers(group, response.headers)
    headers = _headers(report.headers_anchor(group), len(response.headers), own, folded=True)
    shape = item.shape
    found = _shape(item)
    if shape is not None and not found:  # clean: said on the status line, not a paragraph
        facts += f" · only fields of {escape(shape.type)}"
    return (
        f'<p class="line">→ <span class="{status}">{response.status}</span>'
        f" <small>{facts}</small></p>{body}{headers}{found}"
    )


def _headers(anchor: str, count: int, own: dict[str, str], *, folded: bool) -> str:
    """How many headers there were, a link to the common ones, and the exchange's own:
    inline for a request (a line or two), behind a summary for a response (often more)."""
    common = f'headers ({count}): <a href="#{anchor}">common</a>'
    if not own:
        return f'<p class="small">{common}</p>'
    lines = text(header_lines(own))
    if folded:
        return f"<details><summary>{common} + {len(own)} more</summary><pre>{lines}</pre></details>"
    return f'<p class="small">{common} + <code>{lines}</code></p>'


def _shape(item: Exchange) -> str:
    """The fields outside the SDK's response type and the values it refused; nothing for a
    reply that was not checked, or that the type took whole."""
    shape = item.shape
    if shape is None or not (shape.extensions or shape.violations):
        return ""
    kind = escape(shape.type)
    shown = (
        f'fields outside <span class="mono">{kind}</span>:'
        f' <span class="mono">{escape(", ".join(shape.extensions))}</span>'
        if shape.extensions
        else f"only fields of {kind}"
    )
    if shape.violations:
        refused = escape("; ".join(shape.violations))
        shown += f'<br><span class="status-bad">refused by {kind}:</span> {refused}'
    return f'<p class="small">{shown}</p>'
