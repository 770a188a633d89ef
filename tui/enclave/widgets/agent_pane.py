"""One agent: a header (name, model, state, speed, context) over its conversation, streaming live.

Deltas are coalesced: text is kept aside until the workbench's flush tick (``flush``) writes it,
for every pane at once, so four panes at full speed cost one frame per tick. The conversation
is a ``Transcript`` (lines drawn once, not a widget per message). A reply's text goes to it a
block at a time as Markdown (up to a blank line outside a code fence: a paragraph, list or
table that is complete); the block being written shows as plain text beneath it (the *tail*).
Only the last ``SHOWN_MESSAGES`` messages stay on screen (each is drawn again when the pane's
width changes); the daemon keeps the whole conversation.

A reply keeps its line breaks (``enclave.markdown``). One that did not end by itself (cut at
``max_tokens``, cancelled, out of context) or whose prompt left old messages out is followed
or preceded by a short marker line, live and when the transcript is read again.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from enclave.messages import TurnDelta, TurnEvent, TurnFailed, TurnFinished, TurnPhase, TurnServed, TurnStarted, TurnTrimmed
from enclave.text import safe_text
from enclave.views import AgentView, ChatMessage
from enclave.widgets.transcript import Transcript

SHOWN_MESSAGES = 16
_SETTLE = ("|", "```", "~~~")  # what streaming can leave half-formed: tables and fences
BUSY = ("queued", "prefill", "generating", "under review")
# the marker under a reply that did not end by itself, by finish reason
ENDINGS = {
    "max_tokens": "cut off at the agent's max_tokens",
    "cancelled": "cancelled",
    "context_full": "stopped: the context is full",
    "interrupted": "broke off before the end: its engine failed or enclaved stopped (send it again)",
    "error": "no reply: the turn failed (enclave audit tail says why)",
}


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
        self._writing = False  # a reply is being written in the transcript
        self._reply = ""
        self._held = False  # the turn's reply waits for a team guard's verdict
        self._pending = ""  # text received but not yet written to the transcript
        self._unsettled = ""  # text of the block being written, shown in the tail
        self._tokens = 0  # generated in the turn in progress
        self._prompt_tokens = 0  # the prompt of the turn in progress, once the daemon says
        self._rate_from: tuple[float, int] | None = None  # (time, tokens) at the first text seen
        self.tokens_per_second = 0.0
        self.new_below = False  # text arrived while the person was scrolled up
        self.served_by = ""  # the model that served the last turn, when not the agent's own
        self.context_tokens = agent.context_tokens
        self.context_size = 0  # the model's context per sequence, from the status stream
        # held directly: events may still arrive while the app tears the tree down
        self._header = Static(classes="pane-header")
        self._hidden = 0  # older messages taken off the screen
        self.body = Transcript(classes="pane-body")

    def compose(self) -> ComposeResult:
        yield self._header
        yield self.body

    def on_mount(self) -> None:
        self._refresh_header()
        self._show_system()
        self.watch(self.body, "scroll_y", self._scrolled, init=False)

    def on_resize(self) -> None:
        self._refresh_header()

    def _title(self, width: int = 0) -> str:
        """The header line; where it does not fit ``width``, whole parts are left out, least
        telling first, so that no number is ever cut in half (a shorter, less telling part that
        still fits stays)."""
        # in a turn, its prompt (the history as trimmed, and the message) and the tokens so
        # far; the model's context holds no more than its size (a reply stopped by a full
        # context has sampled one token it never stored)
        used = (self._prompt_tokens or self.context_tokens) + self._tokens
        if self.context_size:
            used = min(used, self.context_size)
        parts = [  # (part, priority: higher stays longer)
            (f"{self.index}  {self.agent.name}", 9),
            (f"{self.served_by} for {self.agent.model}" if self.served_by else self.agent.model, 2),
            (self.state, 8),
            (f"{self.tokens_per_second:.0f} tok/s" if self.tokens_per_second else "", 3),
            (f"ctx {used}/{self.context_size}" if self.context_size else (f"ctx {used}" if used else ""), 4),
            ("transcript damaged" if self.agent.damage else "", 7),
            ("↓ new text below" if self.new_below else "", 6),
        ]
        shown = [(i, text, rank) for i, (text, rank) in enumerate(parts) if text]
        if not width:
            return " · ".join(text for _, text, _ in shown)
        kept: set[int] = set()
        length = 0
        for i, text, _ in sorted(shown, key=lambda part: -part[2]):  # the name first, and it always stays
            more = len(text) + (len(" · ") if kept else 0)
            if not kept or length + more <= width:
                kept.add(i)
                length += more
        return " · ".join(text for i, text, _ in shown if i in kept)

    def _scrolled(self) -> None:
        if self.new_below and self.body.is_vertical_scroll_end:
            self.new_below = False
            self._refresh_header()

    def scroll(self, where: str) -> None:
        """Scroll the conversation: ``page_up``, ``page_down``, ``top`` or ``bottom`` (which
        follows new text again)."""
        if where == "page_up":
            self.body.scroll_page_up(animate=False, force=True)  # force: before a layout has shown the scrollbar too
        elif where == "page_down":
            self.body.scroll_page_down(animate=False, force=True)
        elif where == "top":
            self.body.scroll_home(animate=False, force=True)
        else:
            self.body.scroll_end(animate=False, force=True)

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
        older = f"… {self._hidden} earlier messages (the daemon keeps them all)" if self._hidden else ""
        self.body.set_header("\n".join(lines), older)

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
    def empty(self) -> bool:
        """No conversation to clear: nothing said, nothing under way (errors and markers alone
        are not a conversation)."""
        said = any(e.kind in ("user", "reply") for e in self.body.entries)
        return not (said or self._hidden or self.busy)

    @property
    def reply_text(self) -> str:
        """The last reply shown, as text (for tests and copying)."""
        return self._reply

    def show_transcript(self, messages: list[ChatMessage]) -> None:
        """Show the conversation as the daemon holds it, replacing whatever the pane showed."""
        self._finish_stream()
        self._reply, self._tokens, self._prompt_tokens, self.tokens_per_second = "", 0, 0, 0.0
        self.state = "idle"
        shown: list[tuple[str, str]] = []  # (kind, text); the system prompt comes from the agent
        for m in messages:
            if m.role == "user":
                shown.append(("user", m.content))
            elif m.role == "assistant":
                if m.dropped_messages:  # above the reply, as it was shown live
                    shown.append(("marker", _trimmed(m.dropped_messages)))
                shown.append(("reply", m.content))
                self._reply = m.content
                if m.finish_reason in ENDINGS:
                    shown.append(("marker", _marker(m.finish_reason)))
        # only the messages kept on screen are drawn, however long the conversation
        self._hidden = max(0, len(shown) - SHOWN_MESSAGES)
        self.body.show([(kind, safe_text(text)) for kind, text in shown[self._hidden :]])
        self._show_system()

    def _mark_ending(self, finish_reason: str) -> None:
        if finish_reason in ENDINGS:
            self._add_message(_marker(finish_reason), "marker")

    def _add_message(self, text: str, kind: str) -> None:
        """A message below the others (a marker added while a reply is written goes above it)."""
        self.body.add(kind, safe_text(text))
        extra = len(self.body.entries) - SHOWN_MESSAGES
        if extra > 0:
            self._hidden += extra
            self.body.drop_oldest(extra)
            self._show_system()

    def handle(self, event: TurnEvent) -> None:
        if isinstance(event, TurnStarted):
            # the pane's state changes before anything awaits: nobody sees the new turn "idle"
            self.turn_id, self.state = event.turn_id, "queued"
            self._held = event.held
            self._reply, self._tokens, self._rate_from, self.tokens_per_second = "", 0, None, 0.0
            self._prompt_tokens = 0
            self.served_by = ""
            self._finish_stream()
            self._add_message(event.user_message, "user")
            self.body.start_reply()
            self._writing = True
        elif event.turn_id != self.turn_id:
            return
        elif isinstance(event, TurnPhase):
            self.state = "under review" if self._held and event.phase == "generating" else event.phase
            self._prompt_tokens = event.prompt_tokens or self._prompt_tokens
        elif isinstance(event, TurnServed):
            self.served_by = event.model if event.model != self.agent.model else ""
            self._refresh_header()
            if event.reason:
                self._add_message(f"— answered by {event.model}: {event.reason}", "marker")
        elif isinstance(event, TurnTrimmed):
            self._add_message(_trimmed(event.dropped_messages), "marker")
        elif isinstance(event, TurnDelta):
            # the rate counts from the first text seen: a pane that joins a turn in progress
            # gets its text so far in one delta, which must not count as instant tokens
            if self._rate_from is None:
                self._rate_from = (time.monotonic(), self._tokens + event.tokens)
            self._reply += event.text
            self._pending += event.text
            self._tokens += event.tokens
        elif isinstance(event, TurnFinished):
            self._finish_stream()
            self.context_tokens = event.context_tokens or self.context_tokens
            self._tokens = self._prompt_tokens = 0
            self.tokens_per_second = event.tokens_per_second
            self.state = "cancelled" if event.finish_reason == "cancelled" else "idle"
            self._mark_ending(event.finish_reason)
        elif isinstance(event, TurnFailed):
            self._finish_stream()
            self._add_message(event.problem, "error")
            self._tokens = self._prompt_tokens = 0
            self.state = "error"

    def flush(self) -> None:
        """Write the text gathered since the last flush, and the new speed, in one go."""
        if not self._pending:
            return
        text, self._pending = self._pending, ""
        if self._writing:
            self._write(text)
        if self.busy and self._rate_from is not None:
            since, tokens = self._rate_from
            elapsed = time.monotonic() - since
            if elapsed > 0.2 and self._tokens > tokens:
                self.tokens_per_second = (self._tokens - tokens) / elapsed
        self._refresh_header()

    def _write(self, text: str) -> None:
        """Complete blocks to the transcript as Markdown, the rest as the tail."""
        if text and not self.body.following:
            self.new_below = True  # the person reads above: say so rather than pull them down
        self._unsettled += text
        cut = _settled(self._unsettled)
        blocks, self._unsettled = self._unsettled[:cut], self._unsettled[cut:]
        self.body.write_reply(safe_text(blocks), safe_text(self._unsettled.rstrip("\n")))

    def _finish_stream(self) -> None:
        """End the reply being written, with any text still waiting.

        A table or fence built up by appends can be drawn half-formed, so a reply with one is
        drawn once more in full; other replies keep their blocks as drawn, since drawing a
        long reply in full costs a frame.
        """
        if not self._writing:
            return
        self._writing = False
        self._write(self._pending)
        self._pending = self._unsettled = ""
        self.body.end_reply(safe_text(self._reply), whole=any(mark in self._reply for mark in _SETTLE))


def _marker(finish_reason: str) -> str:
    return f"— {ENDINGS[finish_reason]}"


def _trimmed(dropped: int) -> str:
    """The marker above a reply whose prompt left out the ``dropped`` oldest messages."""
    return f"— {dropped} oldest {'message' if dropped == 1 else 'messages'} left out to fit the context"


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
