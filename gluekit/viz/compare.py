"""Replies before and after fine-tuning, side by side: the rows of ``gluekit.generate.compare`` as an HTML table."""
from __future__ import annotations

import html


def _mark(ok: bool) -> str:
    return '<span style="color:#1a7f37">&#10003;</span>' if ok else '<span style="color:#cf222e">&#10007;</span>'


def _clip(text: str, max_chars: int | None) -> str:
    if not text:
        return "(empty)"
    return text if max_chars is None or len(text) <= max_chars else text[:max_chars] + "…"


def before_after_html(rows: list[dict], max_rows: int | None = None, title: str | None = None,
                      max_chars: int | None = 40):
    """An HTML table of ``gluekit.generate.compare`` rows: prompt, reference, reply before and after, exact marks.

    The header counts exact answers over ALL rows, even when ``max_rows`` shows only the first ones.
    Replies longer than ``max_chars`` characters are shown cut, with "…" (an untrained model rambles).
    """
    from IPython.display import HTML

    n = len(rows)
    before = sum(r["before_ok"] for r in rows)
    after = sum(r["after_ok"] for r in rows)
    shown = rows if max_rows is None else rows[:max_rows]
    head = title or "Before / after fine-tuning"
    out = [f"<div><b>{html.escape(head)}</b>: exact answers before {before}/{n}, after {after}/{n}"
           + (f" (first {len(shown)} rows shown)" if len(shown) < n else "") + "</div>",
           '<table style="border-collapse:collapse;font-size:90%">',
           "<tr>" + "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>'
                            for h in ("#", "prompt", "reference", "before", "", "after", "")) + "</tr>"]
    for i, r in enumerate(shown, start=1):
        cells = [str(i), r["prompt"], r["reference"], _clip(r["before"], max_chars)]
        tds = [f'<td style="text-align:left;padding:2px 8px">{html.escape(c)}</td>' for c in cells]
        tds.append(f'<td style="padding:2px 4px">{_mark(r["before_ok"])}</td>')
        tds.append(f'<td style="text-align:left;padding:2px 8px">{html.escape(_clip(r["after"], max_chars))}</td>')
        tds.append(f'<td style="padding:2px 4px">{_mark(r["after_ok"])}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return HTML("\n".join(out))


__all__ = ["before_after_html"]
