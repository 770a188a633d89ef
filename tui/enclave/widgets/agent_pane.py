"""One agent: a header (name, model, state, speed, context) over its conversation, streaming live.

Deltas are coalesced: text is kept aside until the workbench's flush tick (``flush``) writes it to the
Markdown stream, for every pane at once, so four panes at full speed cost one frame per tick.
Only the last ``SHOWN_MESSAGES`` messages stay on screen: every mounted widget costs layout
time in every frame, and the daemon keeps the whole conversation.
"""

from __future__ import annotations

import asyncio
import time

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from enclave.messages import TurnDelta, TurnEvent, TurnFailed, TurnFinished, TurnPhase, TurnStarted
from enclave.text import safe_text
from enclave.views import AgentView, ChatMessage

SHOWN_MESSAGES = 16
_SETTLE = ("|", "```", "~~~")  # what streaming can leave half-formed: tables and fences
BUSY = ("queued", "prefill", "generating", "under review")


class AgentPane(Vertical):
    """Shows what the daemon holds for one agent; fed turn events by the workbench screen."""

    state: reactive[str] = reactive("idle")
    selected: reactive[bool] = reactive(False)

    def __init__(self, agent: AgentView, index: int) -> None:
        super().__init__(classes="agent-pane")
        self.agent = agent
        self.index = index
        self.turn_id = ""
        self._stream: MarkdownStream | None = None
        self._reply = ""
        self._held = False  # the turn's reply waits for a team guard's verdict
        self._pending = ""  # text received but not yet written to the stream
        self._tokens = 0
        self._started = 0.0
        self.tokens_per_second = 0.0
        self.context_tokens = agent.context_tokens
        self.context_size = 0  # the model's context per sequence, from the status stream
        # held directly: events may still arrive while the app tears the tree down
        self._header = Static(classes="pane-header")
        self._system = Static(classes="message system", markup=False)  # the agent's system prompt, first
        self._hidden = 0  # older messages taken off the screen
        self._older = Static(classes="message older", markup=False)
        self.body = VerticalScroll(self._system, self._older, classes="pane-body")

    def compose(self) -> ComposeResult:
        yield self._header
        yield self.body

    def on_mount(self) -> None:
        self._refresh_header()
        self._show_system()
        self.body.anchor()  # follow new text unless the person scrolls up

    def _title(self) -> str:
        speed = f" · {self.tokens_per_second:.0f} tok/s" if self.tokens_per_second else ""
        used = self.context_tokens + self._tokens
        context = f" · ctx {used}/{self.context_size}" if self.context_size else (f" · ctx {used}" if used else "")
        damaged = " · transcript damaged" if self.agent.damage else ""
        return f"{self.index}  {self.agent.name} · {self.agent.model} · {self.state}{speed}{context}{damaged}"

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
        self._header.update(self._title(), layout=False)  # one line, always: repaint only

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

    async def _add_message(self, text: str, kind: str) -> Markdown:
        md = Markdown(safe_text(text), classes=f"message {kind}")
        await self.body.mount(md)
        shown = self.body.query("Markdown.message")
        if len(shown) > SHOWN_MESSAGES:
            old = list(shown)[: len(shown) - SHOWN_MESSAGES]
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
            self._reply, self._tokens, self._started, self.tokens_per_second = "", 0, time.monotonic(), 0.0
            await self._finish_stream()
            await self._add_message(event.user_message, "user")
            self._stream = Markdown.get_stream(await self._add_message("", "reply"))
        elif event.turn_id != self.turn_id:
            return
        elif isinstance(event, TurnPhase):
            self.state = "under review" if self._held and event.phase == "generating" else event.phase
        elif isinstance(event, TurnDelta):
            self._reply += event.text
            self._pending += event.text
            self._tokens += event.tokens
        elif isinstance(event, TurnFinished):
            await self._finish_stream()
            self.context_tokens = event.context_tokens or self.context_tokens
            self._tokens = 0
            self.tokens_per_second = event.tokens_per_second
            self.state = "cancelled" if event.finish_reason == "cancelled" else "idle"
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
            await self._stream.write(safe_text(text))
        elapsed = time.monotonic() - self._started
        if self.busy and elapsed > 0:
            self.tokens_per_second = self._tokens / elapsed
        self._refresh_header()

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
        if self._pending:
            await stream.write(safe_text(self._pending))
            self._pending = ""
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
