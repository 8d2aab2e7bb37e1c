"""The bounds of one exchange: a reply body read within a deadline and a size cap.

A server may send forever, or one byte a second; the body of every response passes through
a BoundedStream, which stops it there and keeps its first bytes as evidence.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Iterable, Iterator

import httpx2


class Exceeded(Exception):
    """A reply went past one of the target's bounds (time, bytes, events)."""

    def __init__(self, reason: str, response: httpx2.Response) -> None:
        super().__init__(reason)
        self.response = response


class BoundedStream(httpx2.SyncByteStream):
    """``response``'s body, stopped past ``max_bytes`` or ``deadline`` (a monotonic time),
    its first ``head`` bytes kept as evidence."""

    def __init__(
        self,
        response: httpx2.Response,
        max_bytes: int,
        deadline: float,
        timeout_s: float,
        *,
        head: int,
    ) -> None:
        self.response = response
        self.inner = typing.cast(Iterable[bytes], response.stream)
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.keep = head
        self.head = b""
        self.received = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.received += len(chunk)
            if len(self.head) < self.keep:
                self.head += chunk[: self.keep - len(self.head)]
            if self.received > self.max_bytes:
                raise Exceeded(
                    f"the reply exceeded max_reply_bytes ({self.max_bytes} bytes)",
                    self.response,
                )
            if time.monotonic() > self.deadline:
                raise Exceeded(
                    f"the exchange exceeded timeout_s ({self.timeout_s:g} s) with "
                    f"{self.received} bytes received",
                    self.response,
                )
            yield chunk

    def close(self) -> None:
        """Close the wrapped stream."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
