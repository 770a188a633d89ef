"""The Markdown parser for replies: line breaks shown as the model wrote them.

CommonMark joins the lines of a paragraph (a "soft break" is a space), which runs verse,
logs and lists of commands together. Models write line breaks to be seen, so every soft
break becomes a hard one; blank lines, lists, tables and fences parse as usual.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore


def _hard_breaks(state: StateCore) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"


def reply_parser() -> MarkdownIt:
    parser = MarkdownIt("gfm-like")
    parser.core.ruler.push("hard_breaks", _hard_breaks)
    return parser
