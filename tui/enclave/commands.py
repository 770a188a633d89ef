"""What the prompt line means: a message to the selected agent, `/all TEXT`, `/to a,b TEXT`;
`//TEXT` sends `/TEXT` (a message that begins with a slash)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Send:
    text: str
    agents: list[str]  # empty: the selected agent


class PromptError(ValueError):
    pass


def parse_prompt(line: str, known: list[str]) -> Send:
    stripped = line.strip()
    if stripped.startswith("//"):
        return Send(stripped[1:], [])
    if stripped.startswith("/all"):
        text = stripped[4:].strip()
        if not text:
            raise PromptError("/all needs a message: /all TEXT")
        return Send(text, list(known))
    if stripped.startswith("/to"):
        parts = stripped[3:].strip().split(maxsplit=1)
        if len(parts) < 2:
            raise PromptError("/to needs agents and a message: /to a,b TEXT")
        names = [n for n in parts[0].split(",") if n]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise PromptError(f"no agent named {unknown[0]!r}")
        return Send(parts[1].strip(), names)
    if stripped.startswith("/"):
        raise PromptError(f"unknown command {stripped.split()[0]!r}; use /all or /to, or // to send a message that begins with /")
    return Send(line, [])
