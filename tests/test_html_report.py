"""report.html: trafl's report Markdown as one self-contained page."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trafl.evaluation.html import write_html

PNG = Path(__file__).resolve().parents[1] / "docs" / "target" / "frontier.png"

REPORT = """# a demo <report>

Some text with **bold** and `code`,
continued on a second line.

- **trafl**: falls <below> base
- **d1**: fine

| method | pass@1 |
|---|---|
| base | 0.1 |
| <script>alert(1)</script> | 0.2 ↓ |

![the frontier](frontier.png)

![gone](missing.png)
"""


def test_every_shape_renders_and_text_is_escaped(tmp_path):
    shutil.copy(PNG, tmp_path / "frontier.png")
    page = write_html(REPORT, tmp_path, tmp_path / "report.html").read_text()
    assert "<title>a demo &lt;report&gt;</title>" in page
    assert "<h1>a demo &lt;report&gt;</h1>" in page
    assert "<p>Some text with <strong>bold</strong> and <code>code</code>, continued" in page
    assert "<li><strong>trafl</strong>: falls &lt;below&gt; base</li>" in page
    assert "<th>method</th><th>pass@1</th>" in page and "<td>0.2 ↓</td>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    data = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(data) == PNG.read_bytes()  # inlined, byte for byte
    assert "(missing figure missing.png)" in page


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="no Chromium here (Debian: apt install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    """A screenshot of the page is not blank: text, a table and the inlined figure drew."""
    shutil.copy(PNG, tmp_path / "frontier.png")
    page = write_html(REPORT, tmp_path, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1000,1400",
    ]
    subprocess.run([chromium(), *flags, page.as_uri()], capture_output=True, timeout=60)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    # a page with one letter on it has 38 colours (anti-aliasing); the figure adds hundreds
    assert len(colours) > 300
