"""A self-contained HTML page: inline CSS, figures as base64 PNG, no external asset of any kind.

A small inline script checks, once the page has loaded, that every figure decoded: it logs a console
error naming each one that did not, and writes the count that did into ``<body data-figures-ok>``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;\
max-width:1100px;padding:0 1rem;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem}\
h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#555;font-size:.85rem}\
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem 1rem;margin:1rem 0}
.skipped{background:#fdecea;border-left:4px solid #d93025;padding:.5rem 1rem;margin:1rem 0}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
table{border-collapse:collapse;font-size:.78rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
.caption{font-size:.85rem;color:#555}code{background:#f4f4f4;padding:0 3px}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var ok = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (im.complete && im.naturalWidth > 0) { ok++; }
    else { console.error('liccs report: figure failed to decode: ' + im.alt); }
  }
  document.body.setAttribute('data-figures-ok', String(ok));
  var wide = 0;  // figures drawn wider than the page's column would be shrunk until unreadable
  for (var j = 0; j < document.images.length; j++) {
    if (document.images[j].naturalWidth > 1400) { wide++; }
  }
  document.body.setAttribute('data-figures-wide', String(wide));
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table_html(df: pd.DataFrame, max_rows: int) -> str:
    if df.empty:
        return "<p><em>(empty table)</em></p>"
    return df.head(max_rows).to_html(index=False, escape=True, na_rep="", border=0,
                                     float_format=lambda v: f"{v:.4g}")


def _meta_line(manifest: Mapping[str, Any]) -> str:
    dev = manifest.get("device", {}) or {}
    pk = manifest.get("packages", {}) or {}
    where = dev.get("gpu") or f"CPU {dev.get('cpu', '?')} × {dev.get('cpu_count', '?')}"
    parts = [f"created {manifest.get('created', '?')}", f"commit {manifest.get('commit') or 'unknown'}",
             f"liccs {pk.get('liccs') or '?'}", f"torch {pk.get('torch') or '?'}", f"on {where}"]
    return " · ".join(_e(p) for p in parts)


def render_html(title: str, *, notes: Sequence[str], skipped: Sequence[tuple[str, str]],
                figures: Sequence[tuple[str, bytes, str]], tables: Sequence[tuple[str, pd.DataFrame, str, str]],
                manifest: Mapping[str, Any], max_rows: int = 200) -> str:
    """The page. ``figures``: (title, png, caption); ``tables``: (name, shown frame, caption, csv file name)."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>", f'<p class="meta">{_meta_line(manifest)}</p>']
    if notes:
        out.append('<div class="notes"><strong>Notes</strong><ul>'
                   + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>")
    if skipped:
        out.append('<div class="skipped"><strong>Skipped</strong><ul>'
                   + "".join(f"<li><code>{_e(n)}</code>: {_e(r)}</li>" for n, r in skipped) + "</ul></div>")
    if figures:
        out.append("<h2>Figures</h2>")
        for ftitle, png, caption in figures:
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img alt="{_e(ftitle)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_e(ftitle)}{': ' + _e(caption) if caption else ''}</figcaption></figure>")
    if tables:
        out.append("<h2>Tables</h2>")
        for name, df, caption, csv in tables:
            out.append(f"<h3>{_e(name)}</h3>")
            if caption:
                out.append(f'<p class="caption">{_e(caption)}</p>')
            out.append(_table_html(df, max_rows))
            more = f" (showing {max_rows} of {len(df)} rows)" if len(df) > max_rows else ""
            out.append(f'<p class="caption">Full table: <code>{_e(csv)}</code>{_e(more)}</p>')
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
