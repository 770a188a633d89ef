"""Durations read the same on both sides: the client's ``seconds``, the daemon's team timeouts
and its engines' timeouts share ``enclave_contract.durations``."""

from __future__ import annotations

import pytest

from enclave.text import seconds
from enclave_contract.durations import seconds as contract_seconds
from enclaved.domain.engines import parse_duration
from enclaved.domain.teams import parse_timeout
from enclaved.errors import ConfigError, InvalidArgument


@pytest.mark.parametrize(
    ("text", "value"), [("300s", 300.0), ("5m", 300.0), ("1.5h", 5400.0), ("250ms", 0.25), (" 42 ", 42.0), ("7 s", 7.0)]
)
def test_the_forms_a_person_writes(text: str, value: float) -> None:
    assert contract_seconds(text) == seconds(text) == parse_timeout(text, "[[teams]] #1") == parse_duration(text, "x") == value


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s", "1e3", "5d", "5m3s"])
def test_what_is_not_a_duration_is_refused_on_both_sides(text: str) -> None:
    assert contract_seconds(text) is None
    with pytest.raises(ValueError, match='write it like "300s" or "5m"'):
        seconds(text)
    with pytest.raises(InvalidArgument, match=r'\[\[teams\]\] #1 timeout: cannot read .*; write it like "300s" or "5m"'):
        parse_timeout(text, "[[teams]] #1")
    with pytest.raises(ConfigError, match=r"\[\[engines\]\] 'gpu' idle_timeout: cannot read"):
        parse_duration(text, "[[engines]] 'gpu' idle_timeout")


def test_the_daemon_takes_numbers_from_toml_as_seconds() -> None:
    assert parse_timeout(90, "x") == 90.0 and parse_timeout(2.5, "x") == 2.5
