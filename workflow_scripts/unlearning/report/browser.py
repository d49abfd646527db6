"""Checks of a rendered report in a real browser: headless Chromium (Debian's ``chromium``, driven through the
``playwright`` package of the test extra; no browser is downloaded) must load it without a console error or a
request that leaves the file, every image must decode, and a full-page screenshot is saved next to the report.
Also a check that PNG files are real, large enough and not blank. Used by the tests; callable on any report::

    from unlearning.report.browser import check_report
    check_report("results/report/report.html")   # writes results/report/report_screenshot.png
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOT_NAME = "report_screenshot.png"
MIN_PNG_BYTES = 2_000
MIN_PNG_SIDE = 100


def chromium_path() -> str | None:
    """The Chromium executable (``$CHROMIUM`` or ``chromium`` / ``chromium-browser`` on ``PATH``), or None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class BrowserCheck:
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[str]:
        return [i["alt"] or i["src"][:40] for i in self.images if not (i["decoded"] and i["width"] > 0)]

    def problems(self) -> list[str]:
        return (
            [f"console: {e}" for e in self.console_errors]
            + [f"request outside the file: {u}" for u in self.outside_requests]
            + [f"image does not decode: {a}" for a in self.broken_images]
        )


_IMAGES_JS = """async () => Promise.all(Array.from(document.images).map(async (img) => {
  let decoded = true;
  try { await img.decode(); } catch (e) { decoded = false; }
  return {alt: img.alt, src: img.getAttribute('src') || '', decoded: decoded,
          width: img.naturalWidth, height: img.naturalHeight};
}))"""


def check_report(
    html: str | os.PathLike, screenshot: str | os.PathLike | None = None, width: int = 1400
) -> BrowserCheck:
    """Open ``html`` in headless Chromium with a fresh profile and return what it saw; the full-page screenshot
    goes to ``screenshot`` (default: :data:`SCREENSHOT_NAME` next to the report). Raises RuntimeError when Chromium
    is not installed."""
    from playwright.sync_api import sync_playwright

    html = Path(html).resolve()
    shot = Path(screenshot) if screenshot else html.with_name(SCREENSHOT_NAME)
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium not found: apt-get install chromium (or set $CHROMIUM)")
    result = BrowserCheck(screenshot=shot)
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": 1000},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: result.console_errors.append(str(e)))
            page.on(
                "request",
                lambda r: None if r.url.startswith(("data:", html.as_uri())) else result.outside_requests.append(r.url),
            )
            page.goto(html.as_uri(), wait_until="load")
            result.images = page.evaluate(_IMAGES_JS)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    return result


def png_problems(paths: Iterable[str | os.PathLike]) -> list[str]:
    """What is wrong with each PNG: not a PNG, too small (bytes or pixels), or blank (a single colour)."""
    from PIL import Image

    problems = []
    for path in map(Path, paths):
        if not path.is_file() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            problems.append(f"{path}: not a PNG file")
            continue
        if path.stat().st_size < MIN_PNG_BYTES:
            problems.append(f"{path}: only {path.stat().st_size} bytes")
        with Image.open(path) as img:
            if min(img.size) < MIN_PNG_SIDE:
                problems.append(f"{path}: only {img.size[0]}x{img.size[1]} pixels")
            extrema = img.convert("L").getextrema()
            if extrema[0] == extrema[1]:
                problems.append(f"{path}: blank (a single colour)")
    return problems
