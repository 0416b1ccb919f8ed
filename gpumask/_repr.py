"""Text and HTML summaries of gpumask objects, for terminals and notebooks.

Every public result type builds its summary as ``(key, value)`` rows once and shows
them two ways: :func:`text_block` (gammapy's layout: a title, a blank line, one
tab-indented ``key : value`` line per row) for ``repr``, and :func:`html_table` for
Jupyter's ``_repr_html_``.  Summaries never copy device data to the host unless
the row says so (a mask's excluded count goes through the counted
:func:`gpumask.to_host`).
"""

from __future__ import annotations

import html

__all__ = ["html_table", "text_block"]

_TH = "text-align:left;padding-right:1em;font-weight:normal;color:#555"
_TD = "text-align:left"


def text_block(title: str, rows) -> str:
    """``title``, a blank line and one ``\\tkey : value`` line per row (keys padded).

    Examples
    --------
    >>> print(text_block("Thing", [("size", "3"), ("colour", "red")]), end="")
    Thing
    <BLANKLINE>
    	size   : 3
    	colour : red
    """
    rows = [(str(k), str(v)) for k, v in rows]
    width = max((len(k) for k, _ in rows), default=0)
    return f"{title}\n\n" + "".join(f"\t{k:<{width}s} : {v}\n" for k, v in rows)


def html_table(title: str, rows, note: str | None = None) -> str:
    """An HTML table of ``rows`` under a bold ``title`` (everything escaped).

    Examples
    --------
    >>> html_table("Thing", [("size", "<3>")])[:40]
    "<div class='gpumask-repr'><strong>Thing<"
    """
    body = "".join(
        f"<tr><th style='{_TH}'>{html.escape(str(k))}</th><td style='{_TD}'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    foot = f"<div style='color:#555'>{html.escape(note)}</div>" if note else ""
    return f"<div class='gpumask-repr'><strong>{html.escape(title)}</strong><table>{body}</table>{foot}</div>"
