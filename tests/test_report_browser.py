"""The report in a real browser: headless Chromium opens index.html, every image loads and every link
resolves, and a screenshot is kept under the test's temp dir."""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from linguamix.cli import main

TINY = """\
name: tiny
models:
  - {id: x/qwen3-0.6b, name: qwen3-0.6b, family: qwen3, size_b: 0.6}
eval: {languages: [en, es, bn, te]}
"""
# Appended to a copy of the page: once everything has loaded, record what the browser made of it.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), loaded: i.complete && i.naturalWidth > 0}));
  const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, links});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium is not installed (Debian package `chromium`; .ci/run installs it where apt works)")


def run(browser: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_opens_in_chromium_with_every_image_and_link(tmp_path):
    browser = chromium()
    (tmp_path / "tiny.yaml").write_text(TINY)
    db = tmp_path / "results.duckdb"
    assert main(["simulate", "--design", str(tmp_path / "tiny.yaml"), "--out", str(db), "--n-items", "60"]) == 0
    report = tmp_path / "report"
    assert main(["analyze", str(db), "--out", str(report), "--n-boot-median", "99", "--n-boot-regression", "49",
                 "--n-boot-cluster", "199"]) == 0

    page = (report / "index.html").read_text()
    probe = report / "_probe.html"  # beside index.html, so that relative links resolve the same way
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = run(browser, "--allow-file-access-from-files", "--virtual-time-budget=15000", "--dump-dom",
              probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the page did not finish loading in Chromium: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))

    assert len(seen["images"]) >= 6
    broken = [i["src"] for i in seen["images"] if not i["loaded"]]
    assert not broken, f"images that did not load: {broken}"
    assert len(seen["links"]) >= 10
    dead = [u for u in seen["links"] if urlparse(u).scheme != "file" or not Path(unquote(urlparse(u).path)).is_file()]
    assert not dead, f"links that do not resolve: {dead}"
    for name in ("power.csv",):  # not written without --power-effect, so not linked either
        assert not any(u.endswith(name) for u in seen["links"])

    shot = tmp_path / "report.png"
    res = run(browser, "--window-size=1280,2400", f"--screenshot={shot}", (report / "index.html").as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", res.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
