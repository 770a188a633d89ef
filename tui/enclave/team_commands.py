"""What the prompt line means for teams: ``/team NAME TEXT`` runs a stored team;
``/chain a,b TEXT`` and ``/round a,b,c TEXT`` run an ad-hoc chain or roundtable of agents."""

from __future__ import annotations

from dataclasses import dataclass

from enclave.commands import PromptError

ADHOC = {"/chain": "chain", "/round": "roundtable"}


@dataclass(frozen=True)
class RunTeam:
    text: str
    team: str = ""  # a stored team, or else an ad-hoc one:
    kind: str = ""
    members: tuple[str, ...] = ()


def parse_team_command(line: str, known: list[str]) -> RunTeam | None:
    """The run a prompt line asks for; None when the line is not a team command."""
    word, rest = _first_word(line)
    if word != "/team" and word not in ADHOC:
        return None
    target, text = _first_word(rest)
    if not target or not text.strip():
        raise PromptError(
            f"{word} needs {'a team' if word == '/team' else 'agents'} and a message: {word} {'NAME' if word == '/team' else 'a,b'} TEXT"
        )
    if word == "/team":
        return RunTeam(text.strip(), team=target)
    members = tuple(n for n in target.split(",") if n)
    unknown = [n for n in members if n not in known]
    if unknown:
        raise PromptError(f"no agent named {unknown[0]!r}")
    return RunTeam(text.strip(), kind=ADHOC[word], members=members)


def _first_word(text: str) -> tuple[str, str]:
    """The first word and the rest; any whitespace ends a word (a pasted message may begin on
    the line after ``/chain a,b``), and the rest keeps its line breaks."""
    parts = text.split(maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")
