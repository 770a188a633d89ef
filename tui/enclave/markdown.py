"""Replies as Markdown, with line breaks shown as the model wrote them.

CommonMark joins the lines of a paragraph (a "soft break" is a space), which runs verse,
logs and lists of commands together. Models write line breaks to be seen, so every soft
break becomes a hard one; blank lines, lists, tables and fences parse as usual. Links show
their address as text (``hyperlinks=False``): a person sees where a link goes.
"""

from __future__ import annotations

from typing import Any

from rich.markdown import Markdown


class ReplyMarkdown(Markdown):
    """Rich's Markdown with every soft break a hard one."""

    def __init__(self, markup: str, **kwargs: Any) -> None:
        super().__init__(markup, **kwargs)
        for token in self.parsed:
            for child in token.children or ():
                if child.type == "softbreak":
                    child.type = "hardbreak"
