"""One agent: a header (name, model, state, speed) over its conversation, streaming live."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from ..text import safe_text
from ..v1 import agents_pb2, chat_pb2

_PHASE = {
    chat_pb2.TURN_PHASE_QUEUED: "queued",
    chat_pb2.TURN_PHASE_PREFILL: "prefill",
    chat_pb2.TURN_PHASE_GENERATING: "generating",
}


class AgentPane(Vertical):
    """Shows what the daemon holds for one agent; fed by the app's Watch stream."""

    state: reactive[str] = reactive("idle")
    selected: reactive[bool] = reactive(False)

    def __init__(self, agent: agents_pb2.Agent, index: int) -> None:
        super().__init__(id=f"pane-{index}", classes="agent-pane")
        self.agent = agent
        self.index = index
        self.turn_id = ""
        self._stream: MarkdownStream | None = None
        self._reply = ""
        self._tokens = 0
        self._started = 0.0
        self.tokens_per_second = 0.0
        # held directly: events may still arrive while the app tears the tree down
        self._header = Static(classes="pane-header")
        self.body = VerticalScroll(classes="pane-body")

    def compose(self) -> ComposeResult:
        yield self._header
        yield self.body

    def on_mount(self) -> None:
        self._refresh_header()
        self.body.anchor()  # follow new text unless the person scrolls up

    def _title(self) -> str:
        speed = f" · {self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else ""
        return f"{self.index}  {self.agent.name} · {self.agent.model} · {self.state}{speed}"

    def watch_state(self) -> None:
        self._refresh_header()

    def watch_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")

    def _refresh_header(self) -> None:
        self._header.update(self._title())

    @property
    def reply_text(self) -> str:
        """The last reply shown, as text (for tests and copying)."""
        return self._reply

    async def show_transcript(self, messages: list[agents_pb2.TranscriptMessage]) -> None:
        for m in messages:
            if m.role == agents_pb2.ROLE_USER:
                await self._add_message(m.content, "user")
            elif m.role == agents_pb2.ROLE_ASSISTANT:
                await self._add_message(m.content, "reply")
                self._reply = m.content

    async def _add_message(self, text: str, kind: str) -> Markdown:
        md = Markdown(safe_text(text), classes=f"message {kind}")
        await self.body.mount(md)
        return md

    async def handle(self, event: chat_pb2.ChatEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "started":
            # the pane's state changes before anything awaits: nobody sees the new turn "idle"
            self.turn_id, self.state = event.turn_id, "queued"
            self._reply, self._tokens, self._started = "", 0, time.monotonic()
            await self._finish_stream()
            await self._add_message(event.started.user_message, "user")
            self._stream = Markdown.get_stream(await self._add_message("", "reply"))
        elif event.turn_id != self.turn_id:
            return
        elif kind == "phase":
            self.state = _PHASE.get(event.phase.phase, "queued")
        elif kind == "delta":
            self._reply += event.delta.text
            self._tokens += event.delta.tokens
            elapsed = time.monotonic() - self._started
            self.tokens_per_second = self._tokens / elapsed if elapsed > 0 else 0.0
            if self._stream is not None:
                await self._stream.write(safe_text(event.delta.text))
            self._refresh_header()
        elif kind == "finished":
            await self._finish_stream()
            f = event.finished
            self.tokens_per_second = f.timings.generation_tokens_per_second
            self.state = "idle" if f.finish_reason != chat_pb2.FINISH_REASON_CANCELLED else "cancelled"
        elif kind == "error":
            await self._finish_stream()
            await self._add_message(f"**error:** {event.error.message}", "error")
            self.state = "error"

    async def _finish_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
