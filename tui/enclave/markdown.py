"""Replies as Markdown, with line breaks and indents shown as the model wrote them.

CommonMark joins the lines of a paragraph (a "soft break" is a space) and drops the spaces a
line starts with, which runs verse, logs and lists of commands together. Models write line
breaks and indents to be seen, so every soft break becomes a hard one and a line's leading
spaces are kept (as no-break spaces, which Markdown leaves alone); blank lines, lists, tables
and fences parse as usual. Links show their address as text (``hyperlinks=False``): a person
sees where a link goes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.markdown import Markdown

NO_BREAK_SPACE = "\u00a0"


class ReplyMarkdown(Markdown):
    """Rich's Markdown with every soft break a hard one, and the indent of each line after it."""

    def __init__(self, markup: str, **kwargs: Any) -> None:
        super().__init__(markup, **kwargs)
        for token in self.parsed:
            if token.children:
                token.children = _as_written(token.children, token.content.split("\n"))


def _as_written(children: list[Any], lines: list[str]) -> list[Any]:
    """The inline tokens of a paragraph with its soft breaks made hard, each break followed by
    the next line's indent. ``lines`` are the paragraph's lines, each with its indent (the
    first one's was taken off by the parser); when the breaks do not match them one to one (a
    line break inside a code span), the indents are left out."""
    breaks = sum(1 for child in children if child.type in ("softbreak", "hardbreak"))
    indents = iter([_indent(line) for line in lines[1:]] if breaks == len(lines) - 1 else [])
    written = []
    for child in children:
        if child.type == "softbreak":
            child.type = "hardbreak"
        written.append(child)
        if child.type == "hardbreak" and (indent := next(indents, 0)):
            written.append(replace(child, type="text", tag="", markup="", content=NO_BREAK_SPACE * indent))
    return written


def _indent(line: str) -> int:
    """Columns of leading blanks, a tab counted as four."""
    blanks = line[: len(line) - len(line.lstrip(" \t"))]
    return blanks.count(" ") + 4 * blanks.count("\t")
