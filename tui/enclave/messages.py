"""What the session tells the workbench, as Textual messages.

``enclave.session`` follows the daemon and posts these to the workbench screen, which routes
turn events to the agent's pane. They carry view models (``enclave.views``), never protobuf;
a test can post them straight into a screen.
"""

from __future__ import annotations

from typing import Literal

from textual.message import Message

from enclave.views import AgentView, ChatMessage, RunView, StatusView

Phase = Literal["queued", "prefill", "generating"]
Change = Literal["created", "updated", "deleted", "cleared"]


class TurnEvent(Message, bubble=False):
    """Something happened in one agent's turn."""

    def __init__(self, agent: str, turn_id: str) -> None:
        super().__init__()
        self.agent = agent
        self.turn_id = turn_id


class TurnStarted(TurnEvent):
    """The daemon accepted a turn (from any client); it is queued until a TurnPhase.
    ``run_id`` and ``step``: the team run it is part of, if any; ``held``: its reply is shown
    only once the team's guard allows it ("under review" until then)."""

    def __init__(self, agent: str, turn_id: str, user_message: str, run_id: str = "", step: int = 0, held: bool = False) -> None:
        super().__init__(agent, turn_id)
        self.user_message = user_message
        self.run_id = run_id
        self.step = step
        self.held = held


class TurnPhase(TurnEvent):
    """``prompt_tokens``: once generating, what the prompt takes of the context (0: not said)."""

    def __init__(self, agent: str, turn_id: str, phase: Phase, prompt_tokens: int = 0) -> None:
        super().__init__(agent, turn_id)
        self.phase = phase
        self.prompt_tokens = prompt_tokens


class TurnDelta(TurnEvent):
    """Reply text: one or more tokens."""

    def __init__(self, agent: str, turn_id: str, text: str, tokens: int) -> None:
        super().__init__(agent, turn_id)
        self.text = text
        self.tokens = tokens


class TurnFinished(TurnEvent):
    def __init__(self, agent: str, turn_id: str, *, finish_reason: str, context_tokens: int, tokens_per_second: float) -> None:
        """``finish_reason``: end_of_turn, max_tokens, stop_string, cancelled or context_full;
        ``context_tokens``: what the conversation takes now (0 when the daemon did not say)."""
        super().__init__(agent, turn_id)
        self.finish_reason = finish_reason
        self.context_tokens = context_tokens
        self.tokens_per_second = tokens_per_second


class TurnTrimmed(TurnEvent):
    """The oldest messages were left out of this turn's prompt to fit the context."""

    def __init__(self, agent: str, turn_id: str, dropped_messages: int) -> None:
        super().__init__(agent, turn_id)
        self.dropped_messages = dropped_messages


class TurnServed(TurnEvent):
    """Which model serves the turn: sent for a remote model, or when a fallback took over
    (``reason``: why the agent's own model did not)."""

    def __init__(self, agent: str, turn_id: str, model: str, reason: str) -> None:
        super().__init__(agent, turn_id)
        self.model = model
        self.reason = reason


class TurnFailed(TurnEvent):
    def __init__(self, agent: str, turn_id: str, problem: str) -> None:
        super().__init__(agent, turn_id)
        self.problem = problem  # one line from the daemon: the problem and the fix


class AgentChanged(Message, bubble=False):
    """An agent was created, edited, deleted or cleared, by this client or another."""

    def __init__(self, change: Change, agent: AgentView) -> None:
        super().__init__()
        self.change = change
        self.agent = agent


class Attached(Message, bubble=False):
    """The session reached a daemon: its agents, in its order, and their transcripts. Turn
    events that follow are for turns not in these transcripts."""

    def __init__(self, agents: list[AgentView], transcripts: dict[str, list[ChatMessage]]) -> None:
        super().__init__()
        self.agents = agents
        self.transcripts = transcripts


class Disconnected(Message, bubble=False):
    """The daemon is not reachable (any more); the session keeps trying."""

    def __init__(self, problem: str, was_attached: bool) -> None:
        super().__init__()
        self.problem = problem
        self.was_attached = was_attached


class StatusChanged(Message, bubble=False):
    """A snapshot from the daemon's Status stream (about one a second)."""

    def __init__(self, status: StatusView) -> None:
        super().__init__()
        self.status = status


class SessionNotice(Message, bubble=False):
    """Something to tell the person: in the banner, or as a notification."""

    def __init__(self, text: str, banner: bool = False) -> None:
        super().__init__()
        self.text = text
        self.banner = banner


class RunUpdate(Message, bubble=False):
    """A team run started, its guard gave a verdict, or it ended (``enclave.widgets.run_bar``)."""

    def __init__(self, run: RunView) -> None:
        super().__init__()
        self.run = run


WatchEvent = TurnEvent | AgentChanged | RunUpdate
