"""What a turn leaves in its agent's stored transcript, and when.

The person's message is stored as its turn starts, beside the prompt's building, so a daemon
that dies mid-turn (SIGKILL, a power cut) still has it: at its next start the message shows
with an empty reply marked ``interrupted`` (``agents.answered``). The reply's row follows when
the turn ends, whatever the ending: the reply as far as it went, or an empty one marked
cancelled, error or interrupted. A turn that keeps nothing (a guard's check) or whose reply a
guard must allow first stores its message with its reply, at its end. Rows are written while
the turn holds its agent, so each reply follows its own message. And what a turn's audit
records say of where it ran (the model that served it, the team run it is part of).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from enclaved.audit.conversations import Conversations
from enclaved.domain.agents import Agent, Message
from enclaved.domain.hub import Served
from enclaved.errors import EnclaveError


class Asking(Protocol):
    """A turn, as far as storing its message goes."""

    agent: Agent
    asked: asyncio.Future[None] | None  # the write of its message, started as it started


def store_message(store: Conversations, agent: Agent, message: str, turn_id: str) -> asyncio.Future[None]:
    """Start writing a turn's message at the agent's next position (see the module)."""
    asked = asyncio.ensure_future(store.save_message(agent.name, agent.stored, "user", message, turn_id))
    agent.stored += 1
    return asked


async def message_stored(turn: Asking) -> bool:
    """Whether the turn's message was stored at its start, so that its reply row must follow
    (true once: the caller writes that row). Raises the store's error if storing it failed, and
    gives its position back."""
    if turn.asked is None:
        return False
    try:
        await asyncio.shield(turn.asked)  # a cancel meanwhile does not stop the write
    except EnclaveError:
        turn.asked = None
        turn.agent.stored -= 1  # nothing was written there
        raise
    turn.asked = None
    return True


def save(store: Conversations, agent: Agent, rows: list[Message], context_tokens: int = 0) -> list[Awaitable[None]]:
    """The writes of ``rows`` at the agent's next positions, a reply's with ``context_tokens``.
    Submitted with the turn's audit record they share its commit (one fsync); the caller adds
    ``len(rows)`` to ``agent.stored`` once they are on disk."""
    return [
        store.save_message(
            agent.name,
            agent.stored + i,
            m.role,
            m.content,
            m.turn_id,
            m.finish_reason,
            context_tokens if m.role == "assistant" else 0,
            m.dropped_messages,
        )
        for i, m in enumerate(rows)
    ]


def served_payload(served: Served | None) -> dict[str, object]:
    """What the audit record says of the model that served a turn, when it is remote or a
    fallback: data that left the host is visible to an auditor."""
    if served is None:
        return {}
    return {"served_by": {"model": served.model, "engine": served.engine or "local", "replica": served.replica, "reason": served.reason}}


def run_payload(run: str, step: int) -> dict[str, object]:
    """What links a team run's turn records to the run (none for a turn of no run)."""
    return {"run": run, "step": step} if run else {}
