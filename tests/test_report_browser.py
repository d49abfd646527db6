"""The report in a real browser: headless Chromium (Debian's package) opens the synthetic report of 2 models x
(base + 2 methods) without a console error, every image decodes, and a screenshot lands next to the report.

Outside CI the test is skipped when Chromium (or the playwright package) is missing; with CI=true it must run.
"""

from __future__ import annotations

import os

import pytest
from report_fixtures import MODELS, build_inputs

from unlearning.report import plot_files, render_report
from unlearning.report.browser import SCREENSHOT_NAME, check_report, chromium_path, png_problems


def _require_browser() -> None:
    missing = []
    if chromium_path() is None:
        missing.append("chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append('playwright is not installed (pip install -e ".[test]")')
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser test: " + "; ".join(missing))
        pytest.skip("; ".join(missing))


def test_report_opens_in_headless_chromium(tmp_path):
    _require_browser()
    kwargs = build_inputs(tmp_path)
    render_report(**kwargs)
    result = check_report(kwargs["out_html"])
    assert result.problems() == []
    assert len(result.images) == len(plot_files(kwargs["plot_dir"], list(MODELS)))
    assert all(i["width"] >= 300 and i["height"] >= 100 for i in result.images), result.images
    shot = kwargs["out_html"].with_name(SCREENSHOT_NAME)
    assert result.screenshot == shot
    assert png_problems([shot]) == []


def test_a_broken_image_fails_the_check(tmp_path):
    _require_browser()
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img alt="bad plot" src="data:image/png;base64,iVBORw0KGgo="></body></html>'
    )
    result = check_report(page)
    assert result.broken_images == ["bad plot"]
    assert result.problems()
