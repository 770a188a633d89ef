"""The TOML config file."""

import re
from pathlib import Path

import pytest

from enclaved.domain.agents import AgentParams
from enclaved.domain.config import load_config, parse_size
from enclaved.errors import ConfigError


def test_full_config(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        """
models_dirs = ["m1", "m2"]
memory_budget = "1.5GiB"
[[models]]
name = "bench"
n_ctx = 8192
n_seq_max = 4
n_threads = 2
[[agents]]
name = "narrator"
model = "bench"
system = "You are the narrator."
temperature = 0.8
top_k = 20
stop = ["</end>", "###"]
max_tokens = 256
"""
    )
    c = load_config(tmp_path / "c.toml")
    assert c.models_dirs == [tmp_path / "m1", tmp_path / "m2"], "folders are relative to the config file"
    assert c.memory_budget == int(1.5 * 2**30)
    assert c.model_settings("bench").n_ctx == 8192 and c.model_settings("other").n_ctx == 4096
    (a,) = c.agents
    assert (a.name, a.model, a.system) == ("narrator", "bench", "You are the narrator.")
    assert a.params == AgentParams(temperature=0.8, top_k=20, stop=("</end>", "###"), max_tokens=256)


def test_command_line_overrides_and_defaults(tmp_path: Path) -> None:
    c = load_config(None, models_dirs=[tmp_path], data_dir=tmp_path / "d")
    assert c.models_dirs == [tmp_path.resolve()] and c.data_dir == tmp_path / "d"
    assert c.agents == [] and c.memory_budget == 0 and c.max_message_bytes == 65536


@pytest.mark.parametrize(
    ("text", "size"), [("512", 512), ("8GiB", 8 << 30), ("512M", 512 << 20), ("1.5G", int(1.5 * 2**30)), ("64 KiB", 64 << 10)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_model_settings(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[[models]]\nname = "m"\nn_ctx = 8\n')
    with pytest.raises(ConfigError, match="n_ctx must be >= 64"):
        load_config(tmp_path / "c.toml")


def test_the_readme_config_example_loads_as_documented(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.findall(r"```toml\n(.*?)```", readme, re.S)[0]
    (tmp_path / "c.toml").write_text(block)
    config = load_config(tmp_path / "c.toml")
    bench = config.model_settings("bench")
    assert bench.n_ctx == 8192 and bench.state_cache == 256 << 20
    assert config.memory_budget == 8 << 30 and config.agents[0].name == "narrator"
