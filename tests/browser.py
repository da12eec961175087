"""A small Chrome DevTools Protocol client for headless Chromium, over ``--remote-debugging-pipe``
(no websocket library, no downloaded browser): the browser test of `vidseek serve`, its screenshot
(benchmarks/serve_screenshot.py) and the time to first frame of benchmarks/serve_load.py use it.

    with Chromium() as browser:
        browser.open("http://127.0.0.1:8000/")
        browser.wait("document.querySelectorAll('.card').length > 0")
        browser.click(".card")

CDP messages are JSON objects separated by a NUL byte; Chromium reads commands on its fd 3 and
writes answers and events on its fd 4.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) on PATH, or None."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser failed, answered a command with an error, or did not do something in time."""


class Chromium:
    """One headless Chromium with one page (tab), driven through CDP."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 860, timeout: float = 20.0):
        binary = binary or find_chromium()
        if binary is None:
            raise BrowserError("no chromium on PATH (apt-get install chromium)")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="vidseek-chromium-")
        to_browser, self._out = os.pipe()  # we write commands; chromium reads them as fd 3
        self._in, from_browser = os.pipe()  # chromium writes on fd 4; we read them

        def fds():
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        args = [binary, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--disable-extensions",
                "--disable-background-networking", f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime"):
                self.send(f"{domain}.enable", session=self.session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                             "mobile": False}, session=self.session)
        except BaseException:
            self.close()
            raise

    # ---- the protocol ------------------------------------------------------------------------------
    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                    raise BrowserError(f"the browser closed its pipe (exit {self.proc.poll()}): {err}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result (events that arrive meanwhile go to ``events``)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})
            self.events.append(answer)

    # ---- the page ----------------------------------------------------------------------------------
    def evaluate(self, expression: str, await_promise: bool = True):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": await_promise,
                                                "returnByValue": True}, session=self.session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: {details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Load ``url`` and wait until its document has loaded."""
        self.send("Page.navigate", {"url": url}, session=self.session)
        time.sleep(0.05)
        self.wait("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait(self, condition: str, timeout: float | None = None, poll: float = 0.02):
        """Wait until the JavaScript ``condition`` is truthy; returns its value."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            value = self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {condition}")
            time.sleep(poll)

    def click(self, selector: str) -> None:
        """Click the middle of the first element matching ``selector`` with the mouse, as a user does."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
                            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1}, session=self.session)

    def press(self, key: str, code: int | None = None) -> None:
        """Press and release one key (``"Enter"``, ``"Tab"``, ``"/"``) in the focused element."""
        codes = {"Enter": 13, "Tab": 9, "Escape": 27, "ArrowLeft": 37, "ArrowRight": 39, " ": 32}
        code = codes.get(key, ord(key.upper()) if len(key) == 1 else 0) if code is None else code
        text = {"Enter": "\r", " ": " "}.get(key, key if len(key) == 1 else "")
        params = {"key": key, "code": key if len(key) > 1 else f"Key{key.upper()}", "windowsVirtualKeyCode": code}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **params, **({"text": text} if text else {})},
                  session=self.session)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **params}, session=self.session)

    def screenshot(self, path: str | os.PathLike) -> Path:
        """A PNG of the page as it is shown."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    os.write(self._out, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._out, self._in):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.proc.stderr:
                self.proc.stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
