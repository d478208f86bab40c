"""report.html in a real browser: headless Chromium (Debian's ``chromium`` package,
driven by Playwright). No console error, every image loaded, no request leaves the
page, and a screenshot is saved.

.ci/run installs the browser (apt-get install -y chromium); elsewhere the test is
skipped, with the reason, only when no Chromium is installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.evaluate.test_report import binary_run  # noqa: F401  (fixture)

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                 if Path(p).exists()), shutil.which("chromium"))


def _check_in_browser(report: Path, screenshot: Path) -> dict:
    playwright = pytest.importorskip("playwright.sync_api")
    url = report.resolve().as_uri()
    errors, outside, failed = [], [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))

            def route(r):  # any request that is not the file itself or inline data
                if r.request.url == url or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            images = page.evaluate("""() => Array.from(document.images).map(i => ({
                src: i.src.slice(0, 30), ok: i.complete && i.naturalWidth > 0}))""")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "outside": outside, "failed": failed, "images": images}


@pytest.mark.slow  # a browser start: ~20 s on a busy 2-core machine
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install -y "
                    "chromium; .ci/run installs it)")
@pytest.mark.parametrize("which", ["table", "images"])
def test_report_renders_in_chromium(which, request, tmp_path):
    run = request.getfixturevalue("binary_run" if which == "table" else "digits_run")
    shot = tmp_path / f"report-{which}.png"
    seen = _check_in_browser(run.dir.evaluation / "report.html", shot)
    assert seen["errors"] == []
    assert seen["outside"] == [] and seen["failed"] == []
    assert seen["images"] and all(i["ok"] for i in seen["images"]), seen["images"]
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
