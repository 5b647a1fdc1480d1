"""One self-contained ``report.html`` from a report trafl wrote in Markdown.

The reports (``trafl demo``'s report.md, ``trafl compare``'s report.md) are written once, as
Markdown lines of a small fixed set of shapes: ``#`` headings, ``- `` bullets, pipe tables,
``![alt](file.png)`` images and paragraphs, with ``**bold**`` and ```code``` inline. This
renders exactly those shapes (not Markdown at large) to HTML, with every image inlined as a
data URI, so the file can be mailed or opened anywhere. Text is escaped; nothing from an
eval.json is interpreted as HTML.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""

IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")


def inline(text: str) -> str:
    """Escaped text with ``**bold**`` and ```code``` rendered."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def image(alt: str, src: str, folder: Path) -> str:
    """An <img> with the PNG inlined; a missing file says so instead of breaking the page."""
    path = folder / src
    if not path.is_file():
        return f"<p><em>(missing figure {html.escape(src)})</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(rows: list[str]) -> str:
    """A pipe table (header, separator, body) as <table>."""
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    head = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in cells[2:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def blocks(lines: list[str]) -> list[list[str]]:
    """Consecutive lines of one shape, split at blank lines and shape changes."""
    out: list[list[str]] = []
    kind = None
    for line in lines:
        shape = (
            None
            if not line.strip()
            else "table"
            if line.startswith("|")
            else "list"
            if line.startswith("- ")
            else "line"
            if line.startswith("#") or IMAGE.match(line.strip())
            else "text"
        )
        if shape is None:
            kind = None
            continue
        if shape != kind or shape == "line":
            out.append([])
        out[-1].append(line)
        kind = shape
    return out


def render(block: list[str], folder: Path) -> str:
    first = block[0]
    if first.startswith("|"):
        return table(block)
    if first.startswith("- "):
        return "<ul>" + "".join(f"<li>{inline(x[2:])}</li>" for x in block) + "</ul>"
    if first.startswith("#"):
        level = min(len(first) - len(first.lstrip("#")), 4)
        return f"<h{level}>{inline(first.lstrip('#').strip())}</h{level}>"
    match = IMAGE.match(first.strip())
    if match:
        return image(match["alt"], match["src"], folder)
    return f"<p>{inline(' '.join(block))}</p>"


def write_html(markdown: str, folder: Path, path: Path) -> Path:
    """``path``: the report ``markdown`` (whose image paths are relative to ``folder``) as one
    self-contained HTML page."""
    lines = markdown.splitlines()
    title = next((x.lstrip("#").strip() for x in lines if x.startswith("# ")), "trafl report")
    body = "\n".join(render(b, folder) for b in blocks(lines))
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
