"""A headless Chromium driven over the Chrome DevTools Protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol
messages (JSON, each ended by a NUL byte) on file descriptor 3 and writes
replies and events on descriptor 4. That needs no port, no WebSocket
client and no driver binary, so the only thing the tests install is
Debian's ``chromium`` package. Playwright speaks to Chromium the same way.

A :class:`Page` records what the report must not do while it loads: every
request (to prove nothing leaves ``file:``), console errors, uncaught
exceptions and JavaScript dialogs (answered at once, so a planted
``alert`` cannot block the page; the test sees that it fired).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Flags for a quiet, isolated, offline-friendly headless browser.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)

#: The screen a report is checked at: a laptop's browser window.
SCREEN = (1280, 800)

#: Seconds one protocol call (or a page load) may take before the test fails.
TIMEOUT = 30.0


class CdpError(RuntimeError):
    """The browser answered with an error, died, or did not answer in time."""


class Chromium:
    """One browser process; close it with :meth:`close` (or use it as a context manager)."""

    def __init__(self, executable: str, user_data_dir: Path) -> None:
        """Start ``executable`` with :data:`FLAGS` and a fresh profile in ``user_data_dir``."""
        to_browser, from_us = os.pipe()
        from_browser, to_us = os.pipe()
        self.log = user_data_dir / "chromium.log"

        def wire_pipes() -> None:
            # In the child, between fork and exec: descriptors 3 and 4 are what
            # --remote-debugging-pipe reads and writes. Copy the pipe ends above
            # 10 first (close-on-exec), so moving one onto 3 or 4 cannot overwrite
            # the other; dup2 makes 3 and 4 themselves survive the exec.
            read_end = fcntl.fcntl(to_browser, fcntl.F_DUPFD_CLOEXEC, 10)
            write_end = fcntl.fcntl(to_us, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        try:
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    [executable, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    close_fds=False,  # keeps 3 and 4; Python's own descriptors are close-on-exec
                    preexec_fn=wire_pipes,
                )
        except BaseException:
            for fd in (from_us, from_browser):
                os.close(fd)
            raise
        finally:
            os.close(to_browser)
            os.close(to_us)
        self._out = from_us
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send one command and return its ``result``; events that arrive meanwhile are routed."""
        message_id = self.send(method, params, session)
        replies: dict[int, dict[str, Any]] = {}
        self.pump(lambda: message_id in replies, replies, what=method)
        reply = replies[message_id]
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def pump(
        self,
        done: Callable[[], bool],
        replies: dict[int, dict[str, Any]] | None = None,
        what: str = "",
        timeout: float = TIMEOUT,
    ) -> None:
        """Read messages until ``done()``; replies go to ``replies``, events to their page."""
        deadline = time.monotonic() + timeout
        while not done():
            message = self._receive(deadline, what)
            if "id" in message:
                if replies is not None:
                    replies[message["id"]] = message
            elif message.get("sessionId") in self._pages:
                self._pages[message["sessionId"]].on_event(message["method"], message["params"])

    def new_page(self, width: int, height: int) -> Page:
        """A new tab with a ``width`` x ``height`` viewport, recording from the start."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session, target)
        self._pages[session] = page
        page.start(width, height)
        return page

    def close(self) -> None:
        """Ask the browser to quit; kill it if it does not within a few seconds."""
        if self.process.poll() is None:
            try:
                self.send("Browser.close", None, "")
                self.process.wait(timeout=5)
            except (CdpError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> int:
        """Send one command without waiting for its reply; return its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data) :]
        except BrokenPipeError:
            raise CdpError(f"{method}: the browser has exited\n{self._log_tail()}") from None
        return self._next_id

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        """The next message, read from the pipe until its NUL terminator."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise CdpError(f"the browser did not answer in time ({what})")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise CdpError(f"the browser closed its pipe ({what})\n{self._log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class Page:
    """One tab of :class:`Chromium` and what happened in it.

    ``requests`` holds every URL the page asked for (the document included),
    ``console_errors`` console errors and browser log errors (a blocked or
    failed load shows there), ``exceptions`` uncaught exceptions and
    ``dialogs`` the messages of alert/confirm/prompt dialogs that opened.
    """

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.dialogs: list[str] = []
        self._loaded: set[str] = set()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A protocol command in this tab."""
        return self.browser.call(method, params, self.session)

    def start(self, width: int, height: int) -> None:
        """Turn on the recorders, set the viewport, and cut the page off the network."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Page.setLifecycleEventsEnabled", {"enabled": True})
        self.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait for the load event of that navigation."""
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"cannot open {url}: {result['errorText']}")
        loader = result["loaderId"]
        self.browser.pump(lambda: loader in self._loaded, what=f"loading {url}")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression; a thrown error fails the call."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """Save a PNG of the viewport, or of the whole page, to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1,
            }
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the tab."""
        self.browser.call("Target.closeTarget", {"targetId": self.target})

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        """Record one event of this tab (called by :meth:`Chromium.pump`)."""
        if method == "Page.lifecycleEvent" and params["name"] == "load":
            self._loaded.add(params["loaderId"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.console_errors.append(" ".join(_remote_text(a) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console_errors.append(params["entry"]["text"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            exception = details.get("exception", {})
            self.exceptions.append(exception.get("description") or details.get("text", ""))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params["message"])
            self.browser.send("Page.handleJavaScriptDialog", {"accept": True}, self.session)


def _remote_text(value: dict[str, Any]) -> str:
    """A console argument as text."""
    return str(value.get("value", value.get("description", value.get("type", ""))))
