"""One agent: a header (name, model, state, speed, context) over its conversation, streaming live.

Deltas are coalesced: text is kept aside until the workbench's flush tick (``flush``) writes it,
for every pane at once, so four panes at full speed cost one frame per tick. A reply's text goes
to its Markdown stream a block at a time (up to a blank line outside a code fence: a paragraph,
list or table that is complete); the block being written shows as plain text beneath it (the
*tail*), which costs a fraction of re-parsing Markdown on every tick.
Only the last ``SHOWN_MESSAGES`` messages stay on screen: every mounted widget costs layout
time in every frame, and the daemon keeps the whole conversation.

A reply keeps its line breaks (``enclave.markdown``). One that did not end by itself (cut at
``max_tokens``, cancelled, out of context) or whose prompt left old messages out is followed
or preceded by a short marker line, live and when the transcript is read again.
"""

from __future__ import annotations

import asyncio
import time

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Size
from textual.reactive import reactive
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from enclave.markdown import reply_parser
from enclave.messages import TurnDelta, TurnEvent, TurnFailed, TurnFinished, TurnPhase, TurnServed, TurnStarted, TurnTrimmed
from enclave.text import safe_text
from enclave.views import AgentView, ChatMessage

SHOWN_MESSAGES = 16
_SETTLE = ("|", "```", "~~~")  # what streaming can leave half-formed: tables and fences
BUSY = ("queued", "prefill", "generating", "under review")
# the marker under a reply that did not end by itself, by finish reason
ENDINGS = {
    "max_tokens": "cut off at the agent's max_tokens",
    "cancelled": "cancelled",
    "context_full": "stopped: the context is full",
    "interrupted": "broke off: the engine failed mid-reply (send it again)",
}


class PaneBody(VerticalScroll):
    """The conversation, scrolled; text streaming in grows it on every tick.

    A widget whose size changed in a layout pass takes its new size quietly (as Textual's
    ``ScrollView`` does): by default the new virtual size is set as a reactive that asks for
    a second layout pass of the whole screen on the next frame, which changes nothing here
    (the children are placed, the scroll bars follow from the size, and a widget whose size
    changed is repainted anyway). Streaming grows the tail and the body on every tick.
    """

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)


class Tail(Static):
    """The block of a reply still being written, as plain text; sized in one layout pass
    (see ``PaneBody``)."""

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)


class AgentPane(Vertical):
    """Shows what the daemon holds for one agent; fed turn events by the workbench screen."""

    # the pane draws neither: the header shows the state, the class "selected" the selection
    # (a repaint of the whole pane, border and all, on every turn's phase would cost a frame)
    state: reactive[str] = reactive("idle", repaint=False)
    selected: reactive[bool] = reactive(False, repaint=False)

    def __init__(self, agent: AgentView, index: int) -> None:
        super().__init__(classes="agent-pane")
        self.agent = agent
        self.index = index
        self.turn_id = ""
        self._stream: MarkdownStream | None = None
        self._reply = ""
        self._held = False  # the turn's reply waits for a team guard's verdict
        self._pending = ""  # text received but not yet written to the stream
        self._unsettled = ""  # text of the block being written, shown in the tail
        self._tail: Tail | None = None
        self._tokens = 0
        self._rate_from: tuple[float, int] | None = None  # (time, tokens) at the first text seen
        self.tokens_per_second = 0.0
        self.new_below = False  # text arrived while the person was scrolled up
        self.served_by = ""  # the model that served the last turn, when not the agent's own
        self.context_tokens = agent.context_tokens
        self.context_size = 0  # the model's context per sequence, from the status stream
        # held directly: events may still arrive while the app tears the tree down
        self._header = Static(classes="pane-header")
        self._system = Static(classes="message system", markup=False)  # the agent's system prompt, first
        self._hidden = 0  # older messages taken off the screen
        self._older = Static(classes="message older", markup=False)
        self.body = PaneBody(self._system, self._older, classes="pane-body")

    def compose(self) -> ComposeResult:
        yield self._header
        yield self.body

    def on_mount(self) -> None:
        self._refresh_header()
        self._show_system()
        self.body.anchor()  # follow new text unless the person scrolls up
        self.watch(self.body, "scroll_y", self._scrolled, init=False)

    def on_resize(self) -> None:
        self._refresh_header()

    def _title(self, width: int = 0) -> str:
        """The header line; where it does not fit ``width``, whole parts are left out, least
        telling first, so that no number is ever cut in half."""
        used = self.context_tokens + self._tokens
        parts = [  # (part, priority: higher stays longer)
            (f"{self.index}  {self.agent.name}", 9),
            (f"{self.served_by} for {self.agent.model}" if self.served_by else self.agent.model, 2),
            (self.state, 8),
            (f"{self.tokens_per_second:.0f} tok/s" if self.tokens_per_second else "", 3),
            (f"ctx {used}/{self.context_size}" if self.context_size else (f"ctx {used}" if used else ""), 4),
            ("transcript damaged" if self.agent.damage else "", 7),
            ("↓ new text below" if self.new_below else "", 6),
        ]
        shown = [(text, rank) for text, rank in parts if text]
        while width and len(shown) > 1 and len(" · ".join(t for t, _ in shown)) > width:
            shown.remove(min(shown, key=lambda part: part[1]))
        return " · ".join(t for t, _ in shown)

    def _scrolled(self) -> None:
        if self.new_below and self.body.is_vertical_scroll_end:
            self.new_below = False
            self._refresh_header()

    def scroll(self, where: str) -> None:
        """Scroll the conversation: ``page_up``, ``page_down``, ``top`` or ``bottom`` (which
        follows new text again)."""
        if where == "page_up":
            self.body.scroll_page_up(animate=False)
        elif where == "page_down":
            self.body.scroll_page_down(animate=False)
        elif where == "top":
            self.body.scroll_home(animate=False)
        else:
            self.body.scroll_end(animate=False)

    def set_agent(self, agent: AgentView) -> None:
        """The agent as the daemon holds it now (another client may have edited it)."""
        self.agent = agent
        if not self.busy:
            self.context_tokens = agent.context_tokens
        self._refresh_header()
        self._show_system()

    def _show_system(self) -> None:
        lines = [f"system: {safe_text(self.agent.system)}"] if self.agent.system else []
        if self.agent.damage:
            lines.append(f"the stored transcript is damaged ({safe_text(self.agent.damage)}); clear the conversation to start afresh")
        self._system.update("\n".join(lines))
        self._system.display = bool(lines)

    def renumber(self, index: int) -> None:
        self.index = index
        self._refresh_header()

    def disconnected(self) -> None:
        """The daemon went away: what this pane shows may be out of date until it is back."""
        self.state = "offline"
        self.tokens_per_second = 0.0

    def set_context_size(self, size: int) -> None:
        if size != self.context_size:
            self.context_size = size
            self._refresh_header()

    def watch_state(self) -> None:
        self._refresh_header()

    def watch_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")

    def _refresh_header(self) -> None:
        width = self._header.content_region.width  # 0 before the first layout: shown whole
        self._header.update(self._title(width), layout=False)  # one line, always: repaint only

    @property
    def busy(self) -> bool:
        return self.state in BUSY

    @property
    def reply_text(self) -> str:
        """The last reply shown, as text (for tests and copying)."""
        return self._reply

    async def show_transcript(self, messages: list[ChatMessage]) -> None:
        """Show the conversation as the daemon holds it, replacing whatever the pane showed."""
        await self._finish_stream()
        self._reply, self._tokens, self.tokens_per_second = "", 0, 0.0
        self.state = "idle"
        await self.body.remove_children(self.body.query("Markdown.message"))
        self._hidden = 0
        self._older.display = False
        for m in messages:  # the system prompt comes from the agent, kept up to date
            if m.role == "user":
                await self._add_message(m.content, "user")
            elif m.role == "assistant":
                await self._add_message(m.content, "reply")
                self._reply = m.content
                await self._mark_ending(m.finish_reason)

    async def _mark_ending(self, finish_reason: str) -> None:
        if finish_reason in ENDINGS:
            await self._add_message(f"*— {ENDINGS[finish_reason]}*", "marker")

    async def _add_message(self, text: str, kind: str, before: Markdown | None = None) -> Markdown:
        md = Markdown(safe_text(text), classes=f"message {kind}", parser_factory=reply_parser)
        await self.body.mount(md, before=before)
        shown = [w for w in self.body.children if isinstance(w, Markdown)]  # the messages (not a query of every block)
        if len(shown) > SHOWN_MESSAGES:
            old = shown[: len(shown) - SHOWN_MESSAGES]
            self._hidden += len(old)
            await self.body.remove_children(old)
            self._older.update(f"… {self._hidden} earlier messages (the daemon keeps them all)", layout=False)
            self._older.display = True
        return md

    async def handle(self, event: TurnEvent) -> None:
        if isinstance(event, TurnStarted):
            # the pane's state changes before anything awaits: nobody sees the new turn "idle"
            self.turn_id, self.state = event.turn_id, "queued"
            self._held = event.held
            self._reply, self._tokens, self._rate_from, self.tokens_per_second = "", 0, None, 0.0
            self.served_by = ""
            await self._finish_stream()
            await self._add_message(event.user_message, "user")
            self._stream = Markdown.get_stream(await self._add_message("", "reply"))
            self._tail = Tail(classes="message tail", markup=False)
            self._tail.display = False
            await self.body.mount(self._tail)
        elif event.turn_id != self.turn_id:
            return
        elif isinstance(event, TurnPhase):
            self.state = "under review" if self._held and event.phase == "generating" else event.phase
        elif isinstance(event, TurnServed):
            self.served_by = event.model if event.model != self.agent.model else ""
            self._refresh_header()
            if event.reason:
                reply = self._stream.markdown_widget if self._stream is not None else None  # above the reply
                await self._add_message(f"*— answered by {event.model}: {event.reason}*", "marker", reply)
        elif isinstance(event, TurnTrimmed):
            noun = "message" if event.dropped_messages == 1 else "messages"
            reply = self._stream.markdown_widget if self._stream is not None else None  # above the reply
            await self._add_message(f"*— {event.dropped_messages} oldest {noun} left out to fit the context*", "marker", reply)
        elif isinstance(event, TurnDelta):
            # the rate counts from the first text seen: a pane that joins a turn in progress
            # gets its text so far in one delta, which must not count as instant tokens
            if self._rate_from is None:
                self._rate_from = (time.monotonic(), self._tokens + event.tokens)
            self._reply += event.text
            self._pending += event.text
            self._tokens += event.tokens
        elif isinstance(event, TurnFinished):
            await self._finish_stream()
            self.context_tokens = event.context_tokens or self.context_tokens
            self._tokens = 0
            self.tokens_per_second = event.tokens_per_second
            self.state = "cancelled" if event.finish_reason == "cancelled" else "idle"
            await self._mark_ending(event.finish_reason)
        elif isinstance(event, TurnFailed):
            await self._finish_stream()
            await self._add_message(f"**error:** {event.problem}", "error")
            self._tokens = 0
            self.state = "error"

    async def flush(self) -> None:
        """Write the text gathered since the last flush, and the new speed, in one go."""
        if not self._pending:
            return
        text, self._pending = self._pending, ""
        if self._stream is not None:
            await self._write(self._stream, text)
        if self.busy and self._rate_from is not None:
            since, tokens = self._rate_from
            elapsed = time.monotonic() - since
            if elapsed > 0.2 and self._tokens > tokens:
                self.tokens_per_second = (self._tokens - tokens) / elapsed
        self._refresh_header()

    async def _write(self, stream: MarkdownStream, text: str, final: bool = False) -> None:
        """Complete blocks to the Markdown stream (every block when ``final``), the rest to
        the tail."""
        if text and self.body._anchor_released:
            # the person scrolled away from the end (the anchor that follows new text lets go
            # then; the scroll offset alone lags behind text just added): say so rather than
            # pull them down
            self.new_below = True
        self._unsettled += text
        cut = len(self._unsettled) if final else _settled(self._unsettled)
        if cut:
            await stream.write(safe_text(self._unsettled[:cut]))
            self._unsettled = self._unsettled[cut:]
        if self._tail is not None:
            tail = safe_text(self._unsettled.rstrip("\n"))
            self._tail.update(tail)
            self._tail.display = bool(tail)

    async def _finish_stream(self) -> None:
        """End the streaming reply, with any text still waiting.

        A table or fence built up by appends can be left half-formed (cells that stay plain
        text), so a reply with one is parsed once more in full; other replies are left as
        streamed, since a full parse of a long reply costs a frame.

        A stream stopped before its task first ran (a turn that ends in the same batch of
        messages that started it) raises CancelledError in the caller, and has written
        nothing: then the reply is written in full.
        """
        if self._stream is None:
            return
        stream, self._stream = self._stream, None
        await self._write(stream, self._pending, final=True)
        self._pending = ""
        if self._tail is not None:
            await self._tail.remove()
            self._tail = None
        settle = any(mark in self._reply for mark in _SETTLE)
        try:
            await stream.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this handler itself is being cancelled
            settle = True
        if settle:
            await stream.markdown_widget.update(safe_text(self._reply))


def _settled(text: str) -> int:
    """How much of ``text`` (beginning outside a code fence) is whole blocks: up to its last
    blank line outside a fence; 0 when there is none yet."""
    fence, cut, position = False, 0, 0
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # a line still being written
        position += len(line)
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and not line.strip():
            cut = position
    return cut
