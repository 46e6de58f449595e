"""The pieces of a self-contained HTML page: escaping, tables, inline PNG images, the page shell.

Everything a page needs is inside it: the style sheet inline, every image a
base64 `data:` URL. No script, no font or file from elsewhere, so the page
opens from a disk, a mail attachment or an archive, with no server.
"""

import base64
import html

# Laptop width first: one column of at most 60rem, images and tables scaled to it;
# a table wider than the screen scrolls inside its own box, not the page.
STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d2430;
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; padding-top: .5rem; border-top: 1px solid #e3e6ea; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .4rem; }
p, li { max-width: 52rem; }
.lead { color: #4a5566; margin-top: 0; }
.note { color: #4a5566; font-size: .92rem; }
nav ul { list-style: none; padding: 0; margin: .75rem 0 0; display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
nav a { color: #1f5fbf; text-decoration: none; font-size: .95rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
th { line-height: 1.25; }
tr.best td { background: #eef6ee; }
figure { margin: 1rem 0 1.5rem; }
figure img { display: block; width: auto; max-width: 100%; height: auto; margin: 0 auto; border: 1px solid #e3e6ea; }
figcaption { color: #4a5566; font-size: .9rem; margin-top: .35rem; text-align: center; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 0 1.25rem; }
.grid > div { min-width: 0; }
pre { background: #f0f2f5; padding: .75rem 1rem; overflow-x: auto; white-space: pre-wrap;
      overflow-wrap: anywhere; font-size: .88rem; border-radius: 4px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
details { margin: .5rem 0 1rem; }
summary { cursor: pointer; color: #1f5fbf; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0 1rem;
              font-size: .92rem; }
dl.settings dt { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #4a5566; }
dl.settings dd { margin: 0; overflow-wrap: anywhere; }
"""


def escape(text):
    """`text` (any value) as HTML text."""
    return html.escape(str(text), quote=True)


def page(title, body):
    """A whole HTML5 document: `title` (text) and `body` (HTML), with the inline style sheet."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def image(png, alt, caption=None):
    """A `<figure>` with `png` (bytes) inline as a data URL, its `alt` text and a caption (HTML)."""
    data = base64.b64encode(png).decode("ascii")
    caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">{caption_html}</figure>'


def table(header, rows, numeric=(), row_classes=None):
    """A `<table>` in a horizontally scrolling box.

    Args:
        header: the column titles (HTML).
        rows: lists of cells (HTML), one list per row.
        numeric: indices of the columns aligned right (numbers).
        row_classes: one CSS class (or None) per row.
    """
    def cell(tag, index, content):
        kind = ' class="num"' if index in numeric else ""
        return f"<{tag}{kind}>{content}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(header))
    lines = []
    for n, row in enumerate(rows):
        css = row_classes[n] if row_classes else None
        attribute = f' class="{css}"' if css else ""
        lines.append(f"<tr{attribute}>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
        + "".join(lines) + "</tbody></table></div>"
    )


def section(anchor, title, *parts):
    """An `<section>` with an `<h2>` that the page's contents link to (`#anchor`)."""
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>' + "".join(parts) + "</section>"


def contents(entries):
    """The page's list of sections: `[(anchor, title), ...]`."""
    items = "".join(f'<li><a href="#{escape(a)}">{escape(t)}</a></li>' for a, t in entries)
    return f'<nav aria-label="Sections"><ul>{items}</ul></nav>'


def settings(pairs):
    """A definition list of `(name, value)` pairs, e.g. a config's keys and values."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in pairs)
    return f'<dl class="settings">{items}</dl>'
