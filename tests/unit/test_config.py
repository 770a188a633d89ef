"""The TOML config file."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from enclaved.domain.agents import AgentParams
from enclaved.domain.config import ModelSettings, load_config, parse_size
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
    with pytest.raises(ConfigError, match="n_ctx: must be a whole number >= 64, not 8; write it like n_ctx = 8192"):
        load_config(tmp_path / "c.toml")


def test_the_readme_config_example_loads_as_documented(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.findall(r"```toml\n(.*?)```", readme, re.S)[0]
    (tmp_path / "c.toml").write_text(block)
    config = load_config(tmp_path / "c.toml")
    bench = config.model_settings("bench")
    assert bench.n_ctx == 8192 and bench.state_cache == 256 << 20
    assert config.memory_budget == 8 << 30 and config.agents[0].name == "narrator"


AGENT = '[[agents]]\nname = "a"\n'
TEAM = AGENT + '[[agents]]\nname = "s"\n[[teams]]\nname = "t"\nkind = "chain"\nmembers = ["a"]\n'
ENGINE = '[[engines]]\nname = "gpu"\nurls = ["http://10.0.0.5:8000/v1"]\n'
# Every key the file takes, after what must come before it, with values of the wrong type: a
# string for a number, a number for a string, true for a whole number, a list, a table, and
# zero or a negative number where the value must be above it.
KEYS: list[tuple[str, str, list[str]]] = [
    ("", "models_dirs", ['"models"', "5", "[5]", "{ a = 1 }"]),
    ("", "data_dir", ["5", "true", '["d"]', "{ a = 1 }"]),
    ("", "memory_budget", ['"lots"', "true", "-1", "[1]", "{ a = 1 }"]),
    ("", "max_message_bytes", ['"lots"', "true", "0", "-1", "[1]", "{ a = 1 }"]),
    ("", "models", ["5", '"m"', "[5]", "{ a = 1 }"]),
    ("", "agents", ["5", '"a"', '["a"]', "{ a = 1 }"]),
    ("", "teams", ["5", '"t"', "[5]", "{ a = 1 }"]),
    ("", "audit", ["5", '"full"', "[1]"]),
    ("", "engines", ["5", '"gpu"', "[5]", "{ a = 1 }"]),
    ("", "http", ["5", "true", '"on"', "[1]"]),
    ("[[models]]\n", "name", ["5", "true", '["m"]', "{ a = 1 }"]),
    ('[[models]]\nname = "m"\n', "n_ctx", ['"big"', "true", "8192.0", "[8192]", "{ a = 1 }", "0", "-1", "63"]),
    ('[[models]]\nname = "m"\n', "n_seq_max", ['"4"', "true", "1.5", "[4]", "0", "-1"]),
    ('[[models]]\nname = "m"\n', "n_threads", ['"x"', "true", "2.0", "[2]", "{ a = 1 }", "-1"]),
    ('[[models]]\nname = "m"\n', "n_gpu_layers", ['"all"', "true", "1.5", "[0]", "{ a = 1 }"]),
    ('[[models]]\nname = "m"\n', "n_batch", ['"512"', "false", "512.5", "[512]", "0", "-1"]),
    ('[[models]]\nname = "m"\n', "prefill_chunk", ['"256"', "true", "1.5", "[256]", "0", "-1"]),
    ('[[models]]\nname = "m"\n', "state_cache", ['"lots"', "true", "-1", "[1]", "{ a = 1 }"]),
    ("[[agents]]\n", "name", ["5", "true", '["a"]', "{ a = 1 }"]),
    (AGENT, "model", ["5", "true", '["m"]', "{ a = 1 }"]),
    (AGENT, "system", ["5", "true", '["be brief"]', "{ a = 1 }"]),
    (AGENT, "fallbacks", ['"m"', "5", "[5]", "{ a = 1 }"]),
    (AGENT, "temperature", ['"hot"', "true", "[1]", "-1"]),
    (AGENT, "top_k", ['"20"', "true", "1.5", "[1]", "-1"]),
    (AGENT, "top_p", ['"x"', "true", "[1]", "0", "-1"]),
    (AGENT, "min_p", ['"x"', "true", "[1]", "-1"]),
    (AGENT, "repeat_penalty", ['"x"', "true", "[1]", "0", "-1"]),
    (AGENT, "seed", ['"x"', "true", "1.5", "[1]", "-1"]),
    (AGENT, "stop", ['"END"', "5", "[5]", "{ a = 1 }"]),
    (AGENT, "max_tokens", ['"256"', "true", "1.5", "[1]", "0", "-1"]),
    ('[[teams]]\nkind = "chain"\nmembers = ["a"]\n', "name", ["5", "true", '["t"]', "{ a = 1 }"]),
    ('[[teams]]\nname = "t"\nmembers = ["a"]\n', "kind", ["5", "true", '["chain"]', "{ a = 1 }"]),
    ('[[teams]]\nname = "t"\nkind = "chain"\n', "members", ['"a"', "5", "[5]", "{ a = 1 }"]),
    (TEAM, "director", ["5", "true", '["s"]', "{ a = 1 }"]),
    (TEAM, "max_turns", ['"8"', "true", "1.5", "[8]", "0", "-1"]),
    (TEAM, "max_tokens", ['"4000"', "true", "1.5", "[8]", "0", "-1"]),
    (TEAM, "timeout", ['"soon"', "true", "[1]", "{ a = 1 }", "0", "-1"]),
    (TEAM, "stop_text", ["5", "true", '["END"]', "{ a = 1 }"]),
    (TEAM, "instructions", ['"x"', "5", "{ a = 1 }"]),
    (TEAM, "guard", ['"s"', "5", "true", '["s"]']),
    (TEAM, "guard.agent", ["5", "true", '["s"]', "{ a = 1 }"]),
    (TEAM, "guard.input", ['"yes"', "1", "[true]"]),
    (TEAM, "guard.output", ["5", "true", '["hold"]']),
    (TEAM, "guard.on_block", ["5", "true", '["stop"]']),
    (TEAM, "guard.timeout", ['"soon"', "true", "[1]", "0", "-1"]),
    ("[audit]\n", "content_policy", ["5", "true", '["full"]', "{ a = 1 }"]),
    ("[audit]\n", "retention_days", ['"30"', "true", "30.5", "[30]", "0", "-1"]),
    ("[audit]\n", "checkpoint_copies", ['"/mnt"', "5", "[5]", "{ a = 1 }"]),
    ('[[engines]]\nurls = ["http://10.0.0.5:8000/v1"]\n', "name", ["5", "true", '["gpu"]']),
    (ENGINE, "kind", ["5", "true", '["openai"]']),
    ('[[engines]]\nname = "gpu"\n', "urls", ['"http://10.0.0.5:8000/v1"', "5", "[5]", "{ a = 1 }"]),
    (ENGINE, "api_key_file", ["5", "true", '["k"]', "{ a = 1 }"]),
    (ENGINE, "models", ['"m"', "5", "[5]", "{ a = 1 }"]),
    (ENGINE, "max_concurrency", ['"32"', "true", "1.5", "[1]", "0", "-1"]),
    (ENGINE, "retries", ['"3"', "true", "1.5", "[1]", "-1"]),
    (ENGINE, "context", ['"8192"', "true", "1.5", "[1]", "0"]),
    *[
        (ENGINE, key, ['"soon"', "true", "[1]", "{ a = 1 }", "0", "-1"])
        for key in ("connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout", "retry_time", "backoff", "health_interval")
    ],
    (ENGINE, "breaker", ['"5"', "5", "[5]"]),
    (ENGINE, "breaker.failures", ['"5"', "true", "1.5", "[5]", "0"]),
    (ENGINE, "breaker.cooldown", ['"soon"', "true", "[1]", "0"]),
    (ENGINE, "tls", ['"ca.pem"', "5", "[5]"]),
    *[(ENGINE, f"tls.{key}", ["5", "true", '["ca.pem"]']) for key in ("ca_file", "cert_file", "key_file")],
    ("[http]\n", "socket", ["5", "true", '["s"]']),
    ("[http]\n", "listen", ["8765", "true", '["127.0.0.1:8765"]']),
    ("[http]\n", "allow_remote", ['"yes"', "1", "[true]"]),
    ("[http]\n", "metrics", ['"yes"', "0", "[true]"]),
    ("[http]\n", "max_body_bytes", ['"lots"', "true", "-1", "[1]", "{ a = 1 }"]),
]


def _wrong_line(before: str, key: str, value: str) -> str:
    """``key = value`` after ``before``; a dotted key goes in its inline table."""
    table, _, inner = key.rpartition(".")
    if table == "guard":  # a guard names its agent
        agent = "" if inner == "agent" else 'agent = "s", '
        return f"{before}guard = {{ {agent}{inner} = {value} }}\n"
    return f"{before}{table} = {{ {inner} = {value} }}\n" if table else f"{before}{key} = {value}\n"


def _case_id(before: str, key: str, value: str) -> str:
    section = next((line for line in reversed(before.splitlines()) if line.startswith("[")), "")
    return f"{section} {key}={value}".strip()


@pytest.mark.parametrize(("before", "key", "value"), [pytest.param(b, k, v, id=_case_id(b, k, v)) for b, k, values in KEYS for v in values])
def test_a_value_of_the_wrong_type_is_one_line_naming_the_key_and_the_file(tmp_path: Path, before: str, key: str, value: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_wrong_line(before, key, value))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = str(caught.value)
    assert key in line or key.replace(".", " ") in line, line  # a guard's timeout reads "guard timeout"
    assert "\n" not in line and line.endswith(f"(in {path})"), line


@pytest.mark.parametrize("key", [f.name for f in fields(ModelSettings)])
def test_every_model_setting_is_checked(tmp_path: Path, key: str) -> None:
    """A field added to ModelSettings without a check fails here: true is wrong for each."""
    named = "" if key == "name" else 'name = "m"\n'
    (tmp_path / "c.toml").write_text(f"[[models]]\n{named}{key} = true\n")
    with pytest.raises(ConfigError, match=rf"\b{key}\b"):
        load_config(tmp_path / "c.toml")


@pytest.mark.parametrize("key", [f.name for f in fields(AgentParams)])
def test_every_sampling_setting_is_checked(tmp_path: Path, key: str) -> None:
    (tmp_path / "c.toml").write_text(f"{AGENT}{key} = {{ a = 1 }}\n")
    with pytest.raises(ConfigError, match=rf"\[\[agents\]\] 'a': {key}\b"):
        load_config(tmp_path / "c.toml")


def test_right_values_load_as_before(tmp_path: Path) -> None:
    """Sizes in bytes or with a unit, a negative n_gpu_layers (llama.cpp: every layer), and
    zero where zero means none or every core."""
    (tmp_path / "c.toml").write_text(
        'max_message_bytes = "64KiB"\nmemory_budget = 0\ndata_dir = "d"\n'
        '[[models]]\nname = "m"\nn_threads = 0\nn_gpu_layers = -1\nstate_cache = 0\n'
        '[audit]\ncontent_policy = "digest"\nretention_days = 30\ncheckpoint_copies = ["copy"]\n'
    )
    c = load_config(tmp_path / "c.toml")
    assert c.max_message_bytes == 64 << 10 and c.memory_budget == 0 and c.data_dir == tmp_path / "d"
    m = c.model_settings("m")
    assert (m.n_threads, m.n_gpu_layers, m.state_cache) == (0, -1, 0)
    assert (c.audit.content_policy, c.audit.retention_days, c.audit.checkpoint_copies) == ("digest", 30, (tmp_path / "copy",))
    for written in ("65536", '"65536"', "65536.0"):
        (tmp_path / "c.toml").write_text(f"max_message_bytes = {written}\n")
        assert load_config(tmp_path / "c.toml").max_message_bytes == 65536
