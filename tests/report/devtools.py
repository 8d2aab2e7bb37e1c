"""A minimal client for Chromium's DevTools protocol over a pipe (``--remote-debugging-pipe``).

Enough to open a page at a given window size, run JavaScript in it, scroll, and take a
screenshot: no driver, no websocket library. Chromium reads commands from its file
descriptor 3 and writes replies and events to 4, each message JSON ending in a NUL byte.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from tests.report.conftest import FLAGS

#: Milliseconds from navigation start to the end of the load event (0 until it has ended).
_LOAD_EVENT_END = 'performance.getEntriesByType("navigation")[0].loadEventEnd'


class DevToolsError(RuntimeError):
    """The browser answered a command with an error, or not at all."""


class Browser:
    """One headless Chromium with one page ``width`` by ``height`` CSS pixels (its scripts
    allowed or not), driven through the DevTools protocol. One browser per window size: resizing a page as large as a
    report can leave Chromium busy for minutes."""

    def __init__(
        self, chromium: str, width: int, height: int, *, scripts: bool = True, timeout: float = 60
    ) -> None:
        self.timeout = timeout
        # Chromium's helper processes may still write to the profile as it is removed.
        self._profile = tempfile.TemporaryDirectory(
            prefix="chromium-profile-", ignore_cleanup_errors=True
        )
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def wire_pipes() -> None:  # runs in the child, before exec
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self._process = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                "--remote-debugging-pipe",
                "--hide-scrollbars",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,  # noqa: PLW1509 (the tests start no threads of their own)
            pass_fds=(3, 4),
        )
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        pages = self.send("Target.getTargets")["targetInfos"]
        target = next(info["targetId"] for info in pages if info["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable")
        # Without scripts the page's own never run; the protocol's evaluations still do.
        self.send("Emulation.setScriptExecutionDisabled", value=not scripts)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._profile.cleanup()

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise DevToolsError("the browser did not answer in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise DevToolsError("the browser closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result (events on the way are dropped)."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            command["sessionId"] = self._session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:  # events alone must not keep a command waiting
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
        raise DevToolsError(f"{method}: no answer in {self.timeout} s")

    def open(self, page: Path) -> None:
        """Load ``page`` and wait until it has loaded."""
        self.send("Page.navigate", url=page.resolve().as_uri())
        deadline = time.monotonic() + self.timeout
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise DevToolsError(f"{page} did not finish loading")
            time.sleep(0.1)

    def load_time(self, page: Path) -> float:
        """Open ``page`` and return the seconds from its navigation's start to the end of its
        load event, as the page's own Navigation Timing measured them."""
        self.open(page)
        # readyState turns "complete" just before the load event's handlers finish.
        deadline = time.monotonic() + self.timeout
        while not (ended := self.evaluate(_LOAD_EVENT_END)):
            if time.monotonic() > deadline:
                raise DevToolsError(f"{page} never finished its load event")
            time.sleep(0.05)
        return float(ended) / 1000

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript ``expression`` in the page (JSON-able values only)."""
        reply = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise DevToolsError(f"{expression[:200]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """Save what the window shows now as a PNG at ``path``."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
