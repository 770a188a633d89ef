"""Teams: named groups of agents that work together on one message (``domain/runs.py`` runs
them). A team is stored like an agent: from the config file at every start, or created at
run time over gRPC, kept encrypted in the store and recorded in the audit log."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from enclave_contract import durations
from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.errors import ConfigError, InvalidArgument, NotFound, ResourceExhausted

log = logging.getLogger("enclaved.teams")

KINDS = ("chain", "roundtable", "director", "escalate")
GUARD_OUTPUTS = ("hold", "after", "none")
ON_BLOCK = ("stop", "skip")
MAX_TEAMS = 256
MAX_MEMBERS = 32
MAX_INSTRUCTION_BYTES = 4096
DEFAULT_MAX_TURNS = 8
DEFAULT_MAX_TOKENS = 4000
DEFAULT_TIMEOUT = 300.0
DEFAULT_GUARD_TIMEOUT = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Guard:
    agent: str
    input: bool = True  # check the run's message before any member sees it
    output: str = "hold"  # hold | after | none
    on_block: str = "stop"  # stop | skip
    timeout: float = DEFAULT_GUARD_TIMEOUT  # seconds; a check that takes longer blocks


@dataclass(frozen=True)
class Team:
    name: str
    kind: str
    members: tuple[str, ...]
    director: str = ""
    max_turns: int = DEFAULT_MAX_TURNS
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float = DEFAULT_TIMEOUT  # seconds
    stop_text: str = ""
    instructions: Mapping[str, str] = field(default_factory=dict)
    guard: Guard | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"], out["instructions"] = list(self.members), dict(self.instructions)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Team:
        guard = d.get("guard")
        return cls(
            name=d["name"],
            kind=d["kind"],
            members=tuple(d["members"]),
            director=d.get("director", ""),
            max_turns=d.get("max_turns", DEFAULT_MAX_TURNS),
            max_tokens=d.get("max_tokens", DEFAULT_MAX_TOKENS),
            timeout=float(d.get("timeout", DEFAULT_TIMEOUT)),
            stop_text=d.get("stop_text", ""),
            instructions=dict(d.get("instructions", {})),
            guard=Guard(**{**guard, "timeout": float(guard.get("timeout", DEFAULT_GUARD_TIMEOUT))}) if guard else None,
        )

    def digest(self) -> str:
        """SHA-256 of its settings: what the audit log keeps of the team a run used."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def agents(self) -> tuple[str, ...]:
        """Every agent the team uses: members, then director and guard."""
        extra = [a for a in (self.director, self.guard.agent if self.guard else "") if a]
        return (*self.members, *extra)


def validate(team: Team, known: Callable[[str], bool]) -> None:
    """One InvalidArgument naming the field, for the first thing wrong with ``team``."""

    def bad(field_name: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"team {team.name!r} {field_name}: {problem}")

    if not _NAME.match(team.name):
        raise InvalidArgument("team name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if team.kind not in KINDS:
        raise bad("kind", f"{team.kind!r} is not a kind; use one of {', '.join(KINDS)}")
    if not team.members:
        raise bad("members", "the list is empty; name at least one agent")
    if len(team.members) > MAX_MEMBERS:
        raise bad("members", f"{len(team.members)} agents, over the {MAX_MEMBERS} a team may have")
    twice = sorted({m for m in team.members if team.members.count(m) > 1})
    if twice:
        raise bad("members", f"{twice[0]!r} is listed twice")
    for name in team.members:
        if not known(name):
            raise bad("members", f"no agent named {name!r}; create it first (enclave agent put) or fix the name")
    if team.kind == "director":
        if not team.director:
            raise bad("director", "a director team needs a director agent")
        if team.director in team.members:
            raise bad("director", f"{team.director!r} is also a member; the director only chooses who speaks")
    elif team.director:
        raise bad("director", f"only a director team has one, not a {team.kind} team")
    if team.director and not known(team.director):
        raise bad("director", f"no agent named {team.director!r}; create it first or fix the name")
    for limit in ("max_turns", "max_tokens"):
        value = getattr(team, limit)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1_000_000:
            raise bad(limit, f"must be a whole number from 1 to 1000000, not {value!r}")
    if isinstance(team.timeout, bool) or not isinstance(team.timeout, int | float) or not 0 < team.timeout <= 86_400:
        raise bad("timeout", f"must be above 0 and at most 86400 seconds, not {team.timeout!r}")
    if len(team.stop_text) > 256:
        raise bad("stop_text", "is over 256 characters")
    for member, text in team.instructions.items():
        if member not in team.members:
            raise bad("instructions", f"{member!r} is not a member")
        if len(text.encode()) > MAX_INSTRUCTION_BYTES:
            raise bad("instructions", f"{member!r}'s is over {MAX_INSTRUCTION_BYTES} bytes")
    _validate_guard(team, known, bad)


def _validate_guard(team: Team, known: Callable[[str], bool], bad: Callable[[str, str], InvalidArgument]) -> None:
    g = team.guard
    if g is None:
        return
    if not g.agent:
        raise bad("guard.agent", "is empty; name the agent that checks")
    if g.agent in team.members:
        raise bad("guard.agent", f"{g.agent!r} is also a member; a guard checks the members, it is not one")
    if not known(g.agent):
        raise bad("guard.agent", f"no agent named {g.agent!r}; create it first or fix the name")
    if g.output not in GUARD_OUTPUTS:
        raise bad("guard.output", f"{g.output!r} is not one of {', '.join(GUARD_OUTPUTS)}")
    if g.on_block not in ON_BLOCK:
        raise bad("guard.on_block", f"{g.on_block!r} is not one of {', '.join(ON_BLOCK)}")
    if isinstance(g.timeout, bool) or not isinstance(g.timeout, int | float) or not 0 < g.timeout <= 86_400:
        raise bad("guard.timeout", f"must be above 0 and at most 86400 seconds, not {g.timeout!r}")
    if not g.input and g.output == "none":
        raise bad("guard", 'checks nothing; set input = true or output = "hold" or "after"')


def parse_timeout(value: object, where: str) -> float:
    """``"300s"``, ``"5m"``, ``300`` or ``300.0`` as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    parsed = durations.seconds(str(value))
    if parsed is None:
        raise InvalidArgument(f"{where} timeout: cannot read {value!r}; {durations.HOW}")
    return parsed


class TeamBook:
    """All teams, by name. A change made for a client is recorded in the audit log and kept
    in the store before it takes effect; teams from the config file are ``define``d at every
    start with the file's settings."""

    def __init__(self, recorder: Recorder, known: Callable[[str], bool]) -> None:
        self._recorder = recorder
        self._known = known  # whether an agent of that name exists
        self._teams: dict[str, Team] = {}

    def all(self) -> list[Team]:
        return list(self._teams.values())

    def get(self, name: str) -> Team:
        team = self._teams.get(name)
        if team is None:
            raise NotFound(f"no team named {name!r}; see `enclave teams`, or create it (enclave team put)")
        return team

    def check(self, team: Team) -> None:
        validate(team, self._known)

    def define(self, team: Team, *, check_agents: bool = True) -> None:
        """A team at start-up (config file or store): nothing to record. A stored team whose
        agent was deleted since is kept (``check_agents=False``): running it names the agent."""
        validate(team, self._known if check_agents else lambda _: True)
        self._teams[team.name] = team

    async def restore(self, configured: set[str]) -> None:
        """Teams created at run time, from the store; one naming an agent gone is kept out."""
        for name, settings in (await self._recorder.conversations.load_teams()).items():
            if name in configured:
                continue
            problem = ""
            if settings is None:
                problem = "its stored settings cannot be decrypted; it was left out (put it again to restore it)"
            else:
                try:
                    self.define(Team.from_dict(settings), check_agents=False)
                except InvalidArgument as exc:
                    problem = f"it was left out: {exc.message}"
                except (KeyError, TypeError, ValueError):
                    problem = "its stored settings are not a team's; it was left out"
            if problem:
                log.warning("team %s: %s", name, problem)
                await self._recorder.record(Entry("team.damaged", outcome="error", payload={"team": name, "damage": problem}))

    async def put(self, team: Team) -> bool:
        """Create the team or replace its settings; True when created."""
        validate(team, self._known)
        created = team.name not in self._teams
        if created and len(self._teams) >= MAX_TEAMS:
            raise ResourceExhausted(f"there are {MAX_TEAMS} teams, the most enclaved keeps; delete one first (enclave team delete NAME)")
        settings = team.to_dict()
        await self._recorder.record(Entry("team.create" if created else "team.update", payload={"team": team.name, "settings": settings}))
        await self._recorder.conversations.save_team(team.name, settings)
        self._teams[team.name] = team
        return created

    async def delete(self, name: str) -> Team:
        team = self.get(name)
        await self._recorder.record(Entry("team.delete", payload={"team": name}))
        await self._recorder.conversations.delete_team(name)
        del self._teams[name]
        return team


_CONFIG_KEYS = {"name", "kind", "members", "director", "max_turns", "max_tokens", "timeout", "stop_text", "instructions", "guard"}
_GUARD_KEYS = {"agent", "input", "output", "on_block", "timeout"}


def team_from_config(table: Mapping[str, Any], where: str) -> Team:
    """A ``[[teams]]`` table as a Team; its agents are checked once they are defined."""
    unknown = sorted(set(table) - _CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(_CONFIG_KEYS))}")
    guard = table.get("guard")
    if guard is not None:
        if not isinstance(guard, Mapping) or set(guard) - _GUARD_KEYS:
            raise ConfigError(f'{where} guard: write it like {{ agent = "screener", input = true, output = "hold", on_block = "stop" }}')
    members = table.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ConfigError(f'{where} members: write a list of agent names, like ["drafter", "critic"]')
    instructions = table.get("instructions", {})
    if not isinstance(instructions, Mapping) or not all(isinstance(v, str) for v in instructions.values()):
        raise ConfigError(f'{where} instructions: write a table of member = "text"')
    if guard is not None:
        guard = {**guard, "timeout": parse_timeout(guard.get("timeout", DEFAULT_GUARD_TIMEOUT), f"{where} guard")}
    try:
        return Team.from_dict(
            {**table, "members": members, "timeout": parse_timeout(table.get("timeout", DEFAULT_TIMEOUT), where), "guard": guard}
        )
    except InvalidArgument as exc:
        raise ConfigError(exc.message) from None
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc} is missing or wrong") from None
