"""``[[teams]]`` in the config file: the README's example loads, mistakes are one line, and a
daemon whose config names an agent that does not exist refuses to start, saying which."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from enclaved.domain.config import load_config
from enclaved.errors import ConfigError
from tests.helpers import ROOT, short_tmpdir


def test_the_readme_team_loads_as_documented(tmp_path: Path) -> None:
    block = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    (tmp_path / "c.toml").write_text(block)
    (team,) = load_config(tmp_path / "c.toml").teams
    assert team.name == "story" and team.kind == "roundtable" and team.members == ("narrator", "poet")
    assert team.timeout == 300.0 and team.stop_text == "THE END" and team.instructions == {"poet": "Answer in verse:"}
    assert team.guard is not None and (team.guard.agent, team.guard.output, team.guard.on_block) == ("screener", "hold", "stop")
    assert team.guard.timeout == 30.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "t"\nkind = "chain"\nmembers = ["a"]\nrounds = 3', "[[teams]] #1: unknown setting 'rounds'"),
        ('name = "t"\nkind = "chain"\nmembers = "a"', "[[teams]] #1 members: write a list of agent names"),
        ('name = "t"\nkind = "chain"\nmembers = ["a"]\ntimeout = "soon"', "[[teams]] #1 timeout: cannot read 'soon'"),
        ('name = "t"\nkind = "chain"\nmembers = ["a"]\nguard = "screener"', "[[teams]] #1 guard: write it like"),
    ],
)
def test_a_wrong_team_table_is_a_config_error_naming_it(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(f"[[teams]]\n{table}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "c.toml")
    assert str(exc.value).startswith(message)


def test_a_config_team_naming_an_unknown_agent_stops_the_start(model_dir: Path) -> None:
    home = short_tmpdir()
    (home / "c.toml").write_text(
        '[[agents]]\nname = "a"\nmodel = "tiny"\n\n[[teams]]\nname = "t"\nkind = "chain"\nmembers = ["a", "ghost"]\n'
    )
    args = ["--socket", str(home / "s.sock"), "--models", str(model_dir), "--data", str(home / "data"), "--config", str(home / "c.toml")]
    proc = subprocess.run([sys.executable, "-m", "enclaved.cli", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "enclaved: team 't' members: no agent named 'ghost'; create it first (enclave agent put) or fix the name"
    )
