"""A conversation as rendered lines: one widget per pane, however long the conversation.

A widget per message (Textual's ``Markdown``, a widget per block inside it) costs every frame:
each mounted widget is arranged on every layout pass, text that grows a widget asks for a
layout of the whole screen, and a turn's start mounts several widgets in several passes. With
four panes streaming that was most of the workbench's time and what a key press waited for
(``bench/bench_tui.py``). Here a message is rendered once to lines at the pane's width (Rich's
Markdown for replies, wrapped text for the rest) and the view shows the lines in view; a reply
being written adds its whole blocks as Markdown and re-wraps only the last row of the block
still being written (the *tail*), so a frame while text streams is a repaint of the lines
shown, never a layout of other widgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from enclave.markdown import ReplyMarkdown

_PIECE = re.compile(r"\n|[^ \n]+ *| +")
_USER_RULE = "▌ "


@dataclass
class Entry:
    """One message shown: ``kind`` is user, reply, marker or error."""

    kind: str
    text: str
    lines: list[Strip] = field(default_factory=list)  # at the view's width; [] until drawn


def wrap(text: str, width: int, start: int = 0) -> list[int]:
    """Where each row of ``text[start:]`` wrapped at ``width`` cells begins (greedy: a word that
    does not fit starts the next row, one longer than a row is cut, a newline ends a row).

    Greedy wrapping never moves a break when text is added at the end, except in the last
    row: a tail that grows is re-wrapped from its last row's start only.
    """
    width = max(width, 1)
    rows, used = [start], 0
    for m in _PIECE.finditer(text, start):
        piece, at = m.group(), m.start()
        if piece == "\n":
            rows.append(at + 1)
            used = 0
            continue
        word = piece.rstrip(" ")
        cells = cell_len(word)
        if used and word and used + cells > width:
            rows.append(at)
            used = 0
        if cells > width:  # cut a word longer than a row
            for i, ch in enumerate(word):
                w = cell_len(ch)
                if used + w > width:
                    rows.append(at + i)
                    used = 0
                used += w
            used += len(piece) - len(word)
        else:
            used += cells + len(piece) - len(word)
    return rows


class Transcript(ScrollView):
    """The pane's conversation: the agent's system prompt, what was left off the screen, the
    messages, and the reply being written. Follows new text while scrolled to the end."""

    COMPONENT_CLASSES = {"transcript--user", "transcript--rule", "transcript--muted", "transcript--error"}
    DEFAULT_CSS = """
    Transcript {
        scrollbar-gutter: stable;
    }
    Transcript > .transcript--user {
        color: $text-accent;
        background: $boost;
    }
    Transcript > .transcript--rule {
        color: $accent;
        background: $boost;
    }
    Transcript > .transcript--muted {
        color: $text-muted;
    }
    Transcript > .transcript--error {
        color: $text-error;
    }
    """

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.system = ""  # shown first, as the agent holds it
        self.older = ""  # a line on the messages left off the screen
        self.entries: list[Entry] = []
        self._lines: list[Strip] = []  # everything but the reply being written, drawn
        self._width = 0
        self._live: _LiveReply | None = None
        self._follow = True

    # ---- what is shown ---------------------------------------------------------------------

    def set_header(self, system: str, older: str) -> None:
        if (system, older) != (self.system, self.older):
            self.system, self.older = system, older
            self._changed()

    def add(self, kind: str, text: str) -> None:
        """A whole message, below the others (above the reply being written, if any)."""
        self.entries.append(Entry(kind, text))
        self._changed()

    def drop_oldest(self, count: int) -> None:
        del self.entries[:count]
        self._changed()

    def show(self, messages: list[tuple[str, str]]) -> None:
        """These messages, (kind, text), in place of everything shown."""
        self.entries = [Entry(kind, text) for kind, text in messages]
        self._live = None
        self._changed()

    def start_reply(self) -> None:
        self._live = _LiveReply()
        self._changed(lines=False)

    @property
    def reply_blocks(self) -> list[str]:
        """The whole blocks of the reply being written, as Markdown; empty when none is."""
        return list(self._live.blocks) if self._live else []

    @property
    def reply_tail(self) -> str:
        return self._live.tail if self._live else ""

    def write_reply(self, blocks: str, tail: str) -> None:
        """Whole blocks (Markdown, possibly "") added to the reply being written, and the block
        still being written, as it stands."""
        live = self._live
        if live is None:
            return
        if blocks:
            live.blocks.append(blocks)
            if self._width:
                self._draw_block(live, blocks)
            live.tail, live.rows, live.row_lines = "", [], []
        self._set_tail(live, tail)
        self._grown()

    def end_reply(self, text: str, whole: bool) -> None:
        """The reply is written: it becomes a message. Its blocks stay as drawn, and the rest
        is drawn as Markdown, unless ``whole``: then it is drawn again from ``text`` (a table
        or fence built up by appends may be drawn half-formed)."""
        live, self._live = self._live, None
        if live is None:
            return
        entry = Entry("reply", text)
        if not whole and self._width:
            rest = self._markdown(live.tail) if live.tail.strip() else []
            entry.lines = live.lines + (self._blank() if live.lines and rest else []) + rest
        self.entries.append(entry)
        self._changed()

    @property
    def following(self) -> bool:
        """Scrolled to the end (or never scrolled): new text scrolls into view."""
        return self._follow

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._follow = new_value >= self.max_scroll_y

    def plain_lines(self) -> list[str]:
        """Every line, as text without the spaces that fill it (for tests)."""
        return [self._line(y).text.rstrip(" ") for y in range(self._height())]

    # ---- drawing ---------------------------------------------------------------------------

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:
            self._width = width
            self._redraw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self._width:
            self._redraw()

    def _redraw(self) -> None:
        """Everything drawn again (a new width or theme)."""
        for entry in self.entries:
            entry.lines = []
        live = self._live
        if live is not None and self._width:
            live.lines = []
            for block in live.blocks:
                self._draw_block(live, block)
            tail, live.tail, live.rows, live.row_lines = live.tail, "", [], []
            self._set_tail(live, tail)
        self._changed()

    def _changed(self, lines: bool = True) -> None:
        if lines and self._width:
            drawn: list[Strip] = []
            if self.system:
                drawn += self._text(self.system, "transcript--muted", italic=True) + self._blank()
            if self.older:
                drawn += self._text(self.older, "transcript--muted")
            for entry in self.entries:
                if not entry.lines:
                    entry.lines = self._draw(entry)
                drawn += entry.lines + self._blank()
            self._lines = drawn
        self._grown()

    def _grown(self) -> None:
        self.virtual_size = Size(self._width, self._height())
        if self._follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, force=True)
        self.refresh()

    def _height(self) -> int:
        live = self._live
        return len(self._lines) + (len(live.lines) + len(live.row_lines) + 1 if live else 0)

    def _line(self, y: int) -> Strip:
        if y < len(self._lines):
            return self._lines[y]
        live = self._live
        if live is not None:
            y -= len(self._lines)
            if y < len(live.lines):
                return live.lines[y]
            y -= len(live.lines)
            if y < len(live.row_lines):
                return live.row_lines[y]
        return Strip.blank(self._width, self.rich_style)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        line = self._line(scroll_y + y)
        if scroll_x or line.cell_length != width:
            line = line.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        return line

    def _draw(self, entry: Entry) -> list[Strip]:
        if entry.kind == "reply":
            return self._markdown(entry.text)
        if entry.kind == "user":
            return self._text(entry.text, "transcript--user", rule=True)
        if entry.kind == "error":
            return self._text(entry.text, "transcript--error", bold_prefix="error: ")
        return self._text(entry.text, "transcript--muted", italic=True)

    def _markdown(self, text: str) -> list[Strip]:
        """Markdown drawn without the blank line Rich puts above some blocks (lists, quotes,
        fences): a reply's blocks are drawn one at a time as they arrive, with one blank line
        between two, as a whole reply is drawn."""
        segments = list(self.app.console.render(ReplyMarkdown(text, hyperlinks=False), self._options(self._width)))
        start = 0
        while start < len(segments) and segments[start].text == "\n":
            start += 1
        lines = Segment.split_and_crop_lines(
            Segment.apply_style(segments[start:], self.rich_style), self._width, style=self.rich_style, include_new_lines=False
        )
        return [Strip(line, self._width) for line in lines]

    def _draw_block(self, live: _LiveReply, block: str) -> None:
        """A whole block of the reply being written, below its others after a blank line."""
        live.lines.extend((self._blank() if live.lines else []) + self._markdown(block))

    def _options(self, width: int) -> ConsoleOptions:
        return self.app.console.options.update_width(max(width, 1)).update(highlight=False)

    def _draw_lines(self, renderable: RenderableType) -> list[Strip]:
        lines = self.app.console.render_lines(renderable, self._options(self._width), style=self.rich_style)
        return [Strip(line, self._width) for line in lines]

    def _text(self, text: str, component: str, *, italic: bool = False, rule: bool = False, bold_prefix: str = "") -> list[Strip]:
        # the whole style: a partial one leaves translucent colours ($text-muted is "auto 60%",
        # $boost a white overlay) unblended, so they came out white
        style = self.get_component_rich_style(component)
        if italic:
            style += Style(italic=True)
        body = Text(bold_prefix + text.expandtabs(4), style=style, end="")
        if bold_prefix:
            body.stylize(Style(bold=True), 0, len(bold_prefix))
        if not rule:
            return self._draw_lines(body)
        rule_style = self.get_component_rich_style("transcript--rule")
        lines = self.app.console.render_lines(body, self._options(self._width - len(_USER_RULE)), style=style)
        return [Strip([Segment(_USER_RULE, rule_style), *line], self._width) for line in lines]

    def _blank(self) -> list[Strip]:
        return [Strip.blank(self._width, self.rich_style)]

    def _set_tail(self, live: _LiveReply, tail: str) -> None:
        """The block being written as plain rows: from the last row's start when it grew."""
        if not self._width:
            live.tail = tail
            return
        if live.rows and tail.startswith(live.tail):
            keep = len(live.rows) - 1
            rows = live.rows[:keep] + wrap(tail, self._width, live.rows[-1])
            live.row_lines = live.row_lines[:keep]
        else:
            keep, rows, live.row_lines = 0, wrap(tail, self._width) if tail.strip() else [], []
        live.tail, live.rows = tail, rows
        style = self.rich_style
        ends = rows[1:] + [len(tail)] if rows else []
        for start, end in zip(rows[keep:], ends[keep:], strict=True):
            row = tail[start:end].rstrip(" \n").expandtabs(4)
            live.row_lines.append(Strip([Segment(row, style)]).crop_extend(0, self._width, style))


@dataclass
class _LiveReply:
    """The reply being written: its whole blocks, drawn, and the tail's rows."""

    blocks: list[str] = field(default_factory=list)
    lines: list[Strip] = field(default_factory=list)
    tail: str = ""
    rows: list[int] = field(default_factory=list)  # where each row of the tail begins
    row_lines: list[Strip] = field(default_factory=list)
