"""A case's requests and responses as the evidence shows them, written without the template."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from conformance.observation import Exchange, ShapeCheck
from conformance.report.exchanges import NONE_RECORDED, exchanges
from conformance.report.model import build
from tests.report.factory import case, exchange, results


class Elements(HTMLParser):
    """The tags of a piece of HTML, in order, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def written(*items: Exchange) -> str:
    """The exchanges of a case whose only ones are ``items``, beside a case of the same
    target and API with one plain exchange (their common headers are the plain one's)."""
    made = case("acme", evidence=items)
    other = case("acme", stream=True, evidence=[exchange()])
    return str(exchanges(build(results([made, other])), made))


def test_request_and_response_side_by_side_with_their_own_headers_only() -> None:
    item = exchange('{"choices": []}')
    item.request.headers["content-length"] = "81"
    assert item.response is not None
    item.response.headers["x-request-id"] = "r-1"
    page = written(item)
    assert page.startswith('<div class="exchange"><div class="req">')
    assert (
        '<span class="label">probe</span>POST <code>http://127.0.0.1:9/v1/chat/completions' in page
    )
    assert '<pre>{"model":"m","messages":[{"role":"user","content":"hi"}]}</pre>' in page
    # The common headers are a link away; the exchange's own are shown, a response's folded.
    assert 'headers (2): <a href="#h0">common</a> + <code>content-length: 81</code>' in page
    assert "<summary>headers (2): " in page
    assert "+ 1 more</summary><pre>x-request-id: r-1</pre>" in page
    assert '<pre>{"choices": []}</pre>' in page  # the body as received
    assert '→ <span class="status-ok">200</span>' in page


def test_a_reply_the_sdk_types_take_whole_says_so_on_its_status_line() -> None:
    item = exchange()
    item.shape = ShapeCheck(type="ChatCompletion")
    page = written(item)
    assert "<small>0.000 s · only fields of ChatCompletion</small></p>" in page
    # No paragraph of its own: as many as for a reply that was not checked.
    assert Elements(page).tags == Elements(written(exchange())).tags


def test_fields_beyond_the_sdk_types_and_refusals_get_a_line_of_their_own() -> None:
    item = exchange()
    item.shape = ShapeCheck(
        type="ChatCompletion", extensions=["choices[].x"], violations=["id: Field required"]
    )
    page = written(item)
    assert "only fields" not in page
    assert 'fields outside <span class="mono">ChatCompletion</span>' in page
    assert "refused by ChatCompletion:</span> id: Field required" in page


def test_a_stream_is_folded_and_counted() -> None:
    sse = [f'data: {{"id":"chatcmpl-0123456789abcdef","content":"{word}"}}' for word in "ab"]
    page = written(exchange(sse=sse))
    assert "2 SSE lines, 1 folded" in page
    assert '⋯"content":"b"' in page


def test_retries_errors_and_no_exchange_at_all() -> None:
    failed = exchange()
    failed.response = None
    failed.retries = 2
    page = written(failed)
    assert "(2 retries)" in page
    assert '<p class="line status-bad">→ no response</p>' in page
    failed.retries, failed.error = 1, "connection reset"
    assert "(1 retry)" in written(failed)
    assert "→ connection reset" in written(failed)
    assert written() == NONE_RECORDED


def carrying(value: str) -> Exchange:
    """An exchange with ``value`` in every text a server or probe decides."""
    item = exchange(value)
    item.label = item.request.url = value
    item.request.headers["x-value"] = value
    item.shape = ShapeCheck(type=value, extensions=[value])
    assert item.response is not None
    item.response.headers["x-value"] = value
    return item


@given(st.text(max_size=40))
def test_recorded_text_is_shown_as_text(value: str) -> None:
    page = Elements(written(carrying(value)))
    assert page.tags == Elements(written(carrying("x"))).tags  # no markup of its own
    assert page.text.count(value) >= 6
