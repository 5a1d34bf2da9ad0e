"""Real headless Firefox (Debian's firefox-esr) for end-to-end tests, driven over WebDriver BiDi.

`FirefoxPage` runs tests/support/firefox_driver.mjs (puppeteer-core, a dev dependency in package.json; no
downloaded browser or driver) and answers the few Playwright `Page` calls the browser helpers make (goto,
wait_for_selector, click, fill, set_checked, evaluate, reload) so `tests.support.browser.join` and `poll`
drive it as they drive Chromium. One FirefoxPage is one Firefox process: one person.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tests.support.browser import REPO_ROOT, require_loopback_only_namespace

FIREFOX = os.environ.get("PEERWELL_FIREFOX", "/usr/bin/firefox-esr")
DRIVER = Path(__file__).with_name("firefox_driver.mjs")
PUPPETEER = REPO_ROOT / "node_modules" / "puppeteer-core"


def require_firefox() -> None:
    """Like the Chromium tests: never skip silently when the browser or its driver is missing."""
    require_loopback_only_namespace()
    for need, what in ((FIREFOX, "Firefox (`.ci/run` installs Debian's firefox-esr)"),
                       (PUPPETEER, "puppeteer-core (run `npm ci` in the repository root)")):
        if shutil.which(str(need)) is None and not Path(need).exists():
            raise RuntimeError(f"{what} not found at {need}")


class FirefoxError(RuntimeError):
    pass


class FirefoxPage:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.errors: list[str] = []  # as tests.support.browser.new_page collects them (see `uncaught`)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[None] | None = None

    async def start(self, timeout: float = 60.0) -> FirefoxPage:
        require_firefox()
        self._ready = asyncio.get_running_loop().create_future()
        self._process = await asyncio.create_subprocess_exec(
            "node", str(DRIVER), cwd=REPO_ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PEERWELL_FIREFOX": FIREFOX}, limit=16 * 1024 * 1024)
        self._reader = asyncio.ensure_future(self._read())
        await asyncio.wait_for(self._ready, timeout)
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            event = message.get("event")
            if event == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            elif event == "pageerror":
                self.errors.append(f"Uncaught {message['text']}")
            elif event == "console-error":
                self.errors.append(message["text"])
            elif (waiter := self._waiting.pop(message.get("id"), None)) is not None and not waiter.done():
                if message["ok"]:
                    waiter.set_result(message["value"])
                else:
                    waiter.set_exception(FirefoxError(message["error"]))
        gone = FirefoxError("the Firefox driver exited")
        for waiter in [*self._waiting.values(), *([self._ready] if self._ready else [])]:
            if not waiter.done():
                waiter.set_exception(gone)

    async def _call(self, op: str, timeout: float = 60.0, **args: Any) -> Any:
        assert self._process is not None and self._process.stdin is not None, "start() first"
        request_id = next(self._ids)
        waiter = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        self._process.stdin.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
        await self._process.stdin.drain()
        return await asyncio.wait_for(waiter, timeout)

    # --- the Playwright Page calls the helpers make ----------------------------------------------------

    async def goto(self, url: str) -> None:
        await self._call("goto", url=url if "://" in url else self.base_url + url)

    async def reload(self) -> None:
        await self._call("reload")

    async def wait_for_selector(self, selector: str, timeout: float = 30000) -> None:
        await self._call("waitForSelector", timeout=timeout / 1000 + 5, selector=selector, timeout_ms=timeout)

    async def click(self, selector: str) -> None:
        await self._call("click", selector=selector)

    async def fill(self, selector: str, value: str) -> None:
        await self._call("fill", selector=selector, value=value)

    async def set_checked(self, selector: str, checked: bool) -> None:
        await self._call("setChecked", selector=selector, checked=checked)

    async def evaluate(self, script: str, arg: object = None) -> Any:
        return await self._call("evaluate", script=script, arg=arg)

    async def close(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(Exception):
            await self._call("close", timeout=15)
        with contextlib.suppress(ProcessLookupError):
            if self._process.returncode is None:
                self._process.kill()
        await self._process.wait()
        if self._reader is not None:
            await self._reader
