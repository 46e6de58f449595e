"""The little Markdown the package writes (summary.md, table.md) as HTML.

Headings, paragraphs, `-` lists, pipe tables, `code` and **bold**: what
`tuning/artifacts.py` and `study/summary.py` write, and nothing more (no
Markdown library is needed). Text is escaped first, so a file cannot inject
markup into the page.
"""

import re

from bayesft_keras.reporting import html

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_NUMBER = re.compile(r"^[-+]?\d")


def inline(text):
    """One line of Markdown text as HTML (escaped; `code` and **bold**)."""
    text = html.escape(text)
    text = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", text)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", text)


def to_html(text, heading_offset=1, skip_title=False):
    """Markdown `text` as HTML.

    Args:
        text: the Markdown.
        heading_offset: added to each heading's level (`#` becomes `<h2>` by
            default: the page has its own `<h1>`).
        skip_title: leave out a first `# title` line (the page shows it).
    """
    lines = text.splitlines()
    if skip_title and lines and lines[0].startswith("# "):
        lines = lines[1:]
    out, paragraph, items, index = [], [], [], 0

    def flush():
        if paragraph:
            out.append("<p>" + inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    while index < len(lines):
        line = lines[index].rstrip()
        if line.startswith("|") and index + 1 < len(lines) and _SEPARATOR.match(lines[index + 1].strip()):
            flush()
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            out.append(_table(_cells(line), rows))
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + heading_offset, 6)
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line.startswith("- "):
            if paragraph:
                flush()
            items.append(line[2:])
        elif not line.strip():
            flush()
        elif items:
            items[-1] += " " + line.strip()  # a list item's continued line
        else:
            paragraph.append(line.strip())
        index += 1
    flush()
    return "\n".join(out)


def _cells(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def _table(header, rows):
    # A column whose cells all start with a number is aligned right.
    numeric = {
        i for i in range(len(header))
        if rows and all(i < len(r) and _NUMBER.match(r[i]) for r in rows)
    }
    return html.table(
        [inline(h) for h in header], [[inline(c) for c in row] for row in rows], numeric=numeric
    )
