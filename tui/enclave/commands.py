"""What the prompt line means: a message to the selected agent, `/all TEXT`, `/to a,b TEXT`;
`//TEXT` sends `/TEXT` (a message that begins with a slash). The team commands (`/team`,
`/chain`, `/round`) are read first, by ``enclave.team_commands``.

A command is the whole first word of the line: `/allfoo x` is no `/all`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Send:
    text: str
    agents: list[str]  # empty: the selected agent


class PromptError(ValueError):
    pass


# every command the prompt line takes (team_commands reads the last three)
COMMANDS = ("/all", "/to", "/team", "/chain", "/round")
UNKNOWN_HINT = f"the commands are {', '.join(COMMANDS)}; start the line with // to send a message that begins with /"


def parse_prompt(line: str, known: list[str]) -> Send:
    stripped = line.strip()
    if stripped.startswith("//"):
        return Send(stripped[1:], [])
    if not stripped.startswith("/"):
        return Send(line, [])
    word, *rest = stripped.split(maxsplit=1)  # any white space ends the word, a line break too
    text = rest[0].strip() if rest else ""
    if word == "/all":
        if not text:
            raise PromptError("/all needs a message: /all TEXT")
        return Send(text, list(known))
    if word == "/to":
        parts = text.split(maxsplit=1)
        if len(parts) < 2:
            raise PromptError("/to needs agents and a message: /to a,b TEXT")
        names = [n for n in parts[0].split(",") if n]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise PromptError(f"no agent named {unknown[0]!r}")
        return Send(parts[1].strip(), names)
    raise PromptError(f"unknown command {word!r}; {UNKNOWN_HINT}")
