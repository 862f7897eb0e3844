"""Headless Chromium for the widget tests: find it, serve a folder on 127.0.0.1, open pages."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 30_000
PAGE_TIMEOUT_MS = 20_000
ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium_path() -> str:
    """The Chromium binary (``$PEERPIGEON_CHROMIUM`` or Debian's); fails the test if absent."""
    candidates = [os.environ.get("PEERPIGEON_CHROMIUM"), "/usr/bin/chromium"]
    candidates.append(shutil.which("chromium"))
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "Chromium is not installed (looked for $PEERPIGEON_CHROMIUM, /usr/bin/chromium and "
        "'chromium' on PATH). The widget's browser test needs it: on Debian, "
        "'apt-get update && apt-get install -y chromium'.",
        pytrace=False,
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # stdlib's name
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on ``http://127.0.0.1:<free port>`` from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="widget-test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def browser_context() -> Iterator[BrowserContext]:
    """A headless Chromium (its own temporary profile), closed (and ended) on exit."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package 'playwright' is missing (the 'test' extra): pip install "
            "playwright. It drives the system Chromium; never run 'playwright install'.",
            pytrace=False,
        )
    with tempfile.TemporaryDirectory(prefix="pp-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=LAUNCH_TIMEOUT_MS,
            viewport={"width": 960, "height": 640},
        )
        try:
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            yield context
        finally:
            context.close()


def keep_screenshot(png: bytes, name: str, tmp_dir: Path) -> list[Path]:
    """Write a screenshot under the test's tmp dir and ``tests/widgets/artifacts/``."""
    paths = [tmp_dir / name]
    with contextlib.suppress(OSError):  # a read-only checkout still has the tmp copy
        ARTIFACTS.mkdir(exist_ok=True)
        paths.append(ARTIFACTS / name)
    written = []
    for path in paths:
        with contextlib.suppress(OSError):
            path.write_bytes(png)
            written.append(path)
    for path in written:
        print(f"screenshot: {path}")
    return written
