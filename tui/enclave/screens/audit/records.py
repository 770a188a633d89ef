"""The audit log as a virtual list: only the rows on screen are read, a page at a time.

As Toolong shows a huge log file, the list never holds the log. Its height is the number of
matching records (``Audit.Count``); drawing a row that is not in memory asks the daemon for
its page (``Audit.Rows``, ``PAGE_SIZE`` records, the only ones it decrypts for this). Pages
stay in a small LRU cache, so going back is free and memory stays bounded however long the
log. Line 0 is the column header; record ``i`` is virtual line ``i + 1``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from enclave.errors import DaemonError
from enclave.text import safe_text
from enclave.views import AuditQuery, AuditRecord

PAGE_SIZE = 100  # records per Audit.Rows call
CACHED_PAGES = 20  # pages kept in memory; the least recently drawn goes first
NARROW = 100  # below this many columns the time column drops the year
HEADINGS = ("seq", "time (UTC)", "actor", "action", "agent/model", "turn", "outcome")
OUTCOMES = ("error", "denied", "cancelled")  # outcomes with a colour of their own

Fetch = Callable[[AuditQuery, int, int], Awaitable[Sequence[AuditRecord]]]


@lru_cache(maxsize=8)
def column_widths(width: int) -> tuple[int, ...]:
    """The columns' widths in ``width`` cells, one space between them. Narrower than
    ``NARROW``, the time drops its year and the turn column goes (the payload view has it);
    wider, actor and agent/model grow to a point and the rest stays blank."""
    if width < NARROW:
        actor, fixed = 12, 7 + 14 + 15 + 9 + 5  # seq, time, action, outcome and the spaces
        return (7, 14, actor, 15, max(width - fixed - actor, 10), 0, 9)
    fixed = 7 + 19 + 15 + 12 + 9 + 6  # seq, time, action, turn, outcome and the spaces
    actor = min(max((width - fixed) // 3, 12), 24)
    return (7, 19, actor, 15, min(width - fixed - actor, 40), 12, 9)


def record_cells(record: AuditRecord, narrow: bool) -> tuple[str, ...]:
    """A record's columns as text, as the daemon sent it (not yet made safe)."""
    actor = record.actor
    who = actor.user or (f"uid {actor.uid}" if actor.uid >= 0 else "?")
    time = (record.time[5:19] if narrow else record.time[:19]).replace("T", " ")
    return (
        str(record.seq),
        time,
        f"{who}/{actor.pid}" if actor.pid >= 0 else who,
        record.action,
        "/".join(name for name in (record.agent, record.model) if name),
        record.turn,
        record.outcome,
    )


def fit(text: str, width: int, right: bool = False) -> str:
    """One line of exactly ``width`` cells: control characters replaced, whitespace folded,
    cut with an ellipsis when too long."""
    text = " ".join(safe_text(text).split())
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return " " * (width - cell_len(text)) + text if right else set_cell_size(text, width)


class AuditList(ScrollView, can_focus=True):
    """Audit records, one a line, under a fixed header, with a cursor row; pages are read as
    they are drawn. ``End`` puts the cursor on the newest record: from there it follows new
    ones, as ``tail -f``, until the cursor or the view moves up."""

    COMPONENT_CLASSES = {"audit-list--header", "audit-list--cursor", "audit-list--pending", *(f"audit-list--{o}" for o in OUTCOMES)}
    BINDINGS = [
        Binding("up", "move(-1)", "Previous record", show=False),
        Binding("down", "move(1)", "Next record", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "Oldest record", show=False),
        Binding("end", "last", "Newest record (follow)", show=False),
        Binding("enter", "open", "Show payload", show=False),
    ]

    live: reactive[bool] = reactive(False)  # the screen's Follow stream is running

    class Opened(Message):
        """Enter on a record: show it with its payload."""

        def __init__(self, record: AuditRecord) -> None:
            super().__init__()
            self.record = record

    class Failed(Message):
        """A page could not be read. It is not asked for again until the next count."""

        def __init__(self, problem: str) -> None:
            super().__init__()
            self.problem = problem

    def __init__(self, fetch: Fetch, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._fetch = fetch
        self.audit_query = AuditQuery()  # what the records shown match
        self.count = 0
        self.cursor = 0
        self._pages: OrderedDict[int, list[AuditRecord]] = OrderedDict()
        self._asked: set[int] = set()  # pages asked for and not in memory: being read, or failed
        self._generation = 0  # pages read for an earlier reset are dropped

    # ---- what is shown ---------------------------------------------------------------------

    def reset(self, query: AuditQuery, count: int) -> None:
        """Show the ``count`` records that match ``query``, from the newest; forget every page."""
        self.audit_query = query
        self._generation += 1
        self._pages.clear()
        self._asked.clear()
        self._set_count(count, follow=True)

    def recounted(self, count: int) -> None:
        """Records were written since the count: pages that were not full are read again."""
        following = self.following
        for page in [p for p, rows in self._pages.items() if len(rows) < PAGE_SIZE]:
            del self._pages[page]
        self._asked.clear()
        self._set_count(count, following)

    def add_live(self, record: AuditRecord) -> bool:
        """A record the daemon just wrote (from Follow). False when it cannot be placed, because
        the newest row is not in memory to compare with: then the count must be asked again."""
        if self.count:
            newest = self.record(self.count - 1)
            if newest is None:
                return False
            if record.seq <= newest.seq:
                return True  # written between Follow and Count: counted already
        page, slot = divmod(self.count, PAGE_SIZE)
        rows = self._pages.setdefault(page, [])
        if len(rows) == slot:
            rows.append(record)
        elif rows[slot].seq != record.seq:  # the page was read after the record was written
            del self._pages[page]
        self._evict()
        self._set_count(self.count + 1, self.following)
        return True

    def _set_count(self, count: int, follow: bool) -> None:
        self.count = count
        self.virtual_size = Size(self.size.width, count + 1)
        if follow:
            self.cursor = max(count - 1, 0)
            self.scroll_to(y=self.max_scroll_y, animate=False, force=True)
        self._show_position()
        self.refresh()

    def record(self, index: int) -> AuditRecord | None:
        """Record ``index`` (0 is the oldest matching) if its page is in memory."""
        page, slot = divmod(index, PAGE_SIZE)
        rows = self._pages.get(page)
        return rows[slot] if rows is not None and slot < len(rows) else None

    @property
    def following(self) -> bool:
        """The cursor is on the newest record and the end is in view."""
        return self.cursor >= self.count - 1 and self.scroll_offset.y >= self.max_scroll_y

    def watch_live(self) -> None:
        self._show_position()

    def _show_position(self) -> None:
        matching = " matching" if self.audit_query.filtered else ""
        self.border_title = f"audit log · {self.count:,}{matching} records"
        if not self.count:
            self.border_subtitle = "live" if self.live else ""
        elif self.live and self.following:
            self.border_subtitle = "following"
        else:
            self.border_subtitle = f"{self.cursor + 1:,} of {self.count:,}"

    # ---- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = column_widths(width)
        if y == 0:
            return self._strip(HEADINGS, widths, width, self.get_component_rich_style("audit-list--header"))
        index = self.scroll_offset.y + y - 1
        if index >= self.count:
            return Strip.blank(width, self.rich_style)
        page = index // PAGE_SIZE
        record = self.record(index)
        if record is None:
            self._ask(page)
            return self._strip(("…",), widths, width, self.get_component_rich_style("audit-list--pending"))
        self._pages.move_to_end(page)
        style = self.get_component_rich_style("audit-list--cursor") if index == self.cursor else self.rich_style
        outcome = None
        if record.outcome in OUTCOMES:
            outcome = style + self.get_component_rich_style(f"audit-list--{record.outcome}", partial=True)
        return self._strip(record_cells(record, width < NARROW), widths, width, style, outcome)

    @staticmethod
    def _strip(cells: Sequence[str], widths: Sequence[int], width: int, style: Style, outcome: Style | None = None) -> Strip:
        """One line of cells; a column of width 0 is left out; ``outcome`` styles the last."""
        last = len(widths) - 1
        segments: list[Segment] = []
        for i, (text, cell_width) in enumerate(zip(cells, widths)):
            if cell_width:
                if segments:
                    segments.append(Segment(" ", style))
                segments.append(Segment(fit(text, cell_width, right=i == 0), outcome if i == last and outcome else style))
        return Strip(segments).adjust_cell_length(width, style)

    # ---- reading pages ---------------------------------------------------------------------

    def _ask(self, page: int) -> None:
        if page not in self._asked:
            self._asked.add(page)
            self._read_page(self.audit_query, self._generation, page)

    @work(group="audit-pages")
    async def _read_page(self, query: AuditQuery, generation: int, page: int) -> None:
        try:
            rows = await self._fetch(query, page * PAGE_SIZE, PAGE_SIZE)
        except DaemonError as exc:
            if generation == self._generation:
                self.post_message(self.Failed(str(exc)))
            return
        if generation == self._generation:
            self._asked.discard(page)
            self._pages[page] = list(rows)
            self._evict()
            self.refresh()

    def _evict(self) -> None:
        while len(self._pages) > CACHED_PAGES:
            self._pages.popitem(last=False)

    # ---- moving ----------------------------------------------------------------------------

    def move_to(self, index: int) -> None:
        """Put the cursor on record ``index`` (clamped), scrolling it into view."""
        self.cursor = max(0, min(index, self.count - 1))
        top, shown = self.scroll_offset.y, self._rows_shown
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + shown:
            self.scroll_to(y=self.cursor - shown + 1, animate=False, force=True)
        self._show_position()
        self.refresh()

    def on_resize(self) -> None:
        self.move_to(self.cursor)  # a shorter view keeps the cursor, and so following, in sight

    @property
    def _rows_shown(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)  # less the header

    def action_move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        delta = direction * self._rows_shown
        self.scroll_to(y=self.scroll_offset.y + delta, animate=False, force=True)
        self.move_to(self.cursor + delta)

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(self.count - 1)

    def action_open(self) -> None:
        record = self.record(self.cursor) if self.count else None
        if record is not None:
            self.post_message(self.Opened(record))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self.move_to(self.scroll_offset.y + offset.y - 1)
