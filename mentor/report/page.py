"""The report's HTML: one self-contained page (inline CSS, charts embedded as data URIs, no scripts, no
network), built from the gathered data and the PNG charts. Every value from the store is escaped."""

from __future__ import annotations

import base64
import html
from typing import Any

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 1180px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: 0.9rem; } .note { color: #555; font-style: italic; font-size: 0.9rem; }
.headline { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.6rem 1rem; }
img.chart { display: block; max-width: 100%; height: auto; margin: 0.8rem 0; }
.pair { display: flex; flex-wrap: wrap; gap: 1rem; } .pair img.chart { max-width: 49%; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; vertical-align: top; white-space: nowrap; }
td.text { white-space: normal; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; } tr.best td { font-weight: bold; background: #fffbe6; } tr.reference td { background: #f4f4f4; color: #444; }
code { background: #f5f5f5; padding: 0 0.25rem; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def with_ci(value: Any, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} <small>[{ci[0]:.2f}, {ci[1]:.2f}]</small>" if ci else f"{value:.3f}"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def table(headers: list[str], rows: list[list[str]], text_columns: set[int] = frozenset(),
          row_classes: list[str] | None = None) -> str:
    """An HTML table; cells are given already escaped/formatted."""
    head = "".join(f'<th class="text">{h}</th>' if i in text_columns else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        css = f' class="{row_classes[n]}"' if row_classes and row_classes[n] else ""
        cells = "".join(f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<div class=\"wide\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def pair(*images: str) -> str:
    return f'<div class="pair">{"".join(images)}</div>'


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def page(title: str, header: str, sections: list[str], footer: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>{header}{''.join(sections)}<footer><p class=\"meta\">{footer}</p></footer></body></html>\n")
