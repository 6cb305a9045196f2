"""Tables and folds in both of the report's forms: Markdown and self-contained HTML."""

import html
from typing import Optional, Sequence

e = html.escape


def md_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + [
        "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows
    ]


def html_table(table_id: str, cols: list[str], rows: list[list[str]], keys: Optional[list[str]] = None) -> str:
    """A table; ``keys``: each row's ``data-encoder`` (tests and links find rows by it)."""
    row_keys: Sequence[Optional[str]] = keys or [None] * len(rows)  # None: a row without one
    body = "".join(
        (f"<tr data-encoder='{e(k)}'>" if k is not None else "<tr>") + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
        for k, row in zip(row_keys, rows)
    )
    return f"<table id='{e(table_id)}'><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>" + body + "</table>"


def md_fold(summary: str, lines: list[str]) -> list[str]:
    """Folded in Markdown viewers that render <details> (GitHub does); plain text elsewhere."""
    return ["<details><summary>" + e(summary) + "</summary>", "", *lines, "", "</details>"]


def html_fold(summary: str, inner: str, fold_id: str) -> str:
    return f"<details id='{e(fold_id)}'><summary>{e(summary)}</summary>{inner}</details>"
