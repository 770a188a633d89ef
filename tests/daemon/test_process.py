"""The daemon as a process: socket permissions, the single-instance lock, crashes, signals,
eviction under a memory budget, and configuration mistakes."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2
from tests.helpers import Daemon, enclave, short_tmpdir, spawn_daemon

pytestmark = pytest.mark.timeout(120)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_socket_is_private_and_there_is_no_tcp(daemon_factory: callable) -> None:
    home = short_tmpdir()
    d: Daemon = daemon_factory(home=home)
    assert stat.S_ISSOCK(d.socket.stat().st_mode)
    assert mode(d.socket) == 0o600
    assert mode(d.socket.parent) == 0o700, "the daemon created the socket's folder 0700"
    assert mode(home / "data") == 0o700
    lock = d.socket.with_name("enclaved.sock.lock")
    assert lock.read_text().strip() == str(d.proc.pid)
    listening = [line.split() for table in ("tcp", "tcp6") for line in Path(f"/proc/{d.proc.pid}/net/{table}").read_text().splitlines()[1:]]
    inodes = {cols[9] for cols in listening if cols[3] == "0A"}  # state 0A = LISTEN
    fds = set()
    for fd in os.listdir(f"/proc/{d.proc.pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # a file the daemon closed meanwhile (discovery reads headers)
            fds.add(os.readlink(f"/proc/{d.proc.pid}/fd/{fd}"))
    assert not any(f"socket:[{inode}]" in fds for inode in inodes), "enclaved must not listen on TCP"


def test_second_daemon_on_the_same_socket_exits_and_leaves_the_first_alone(daemon_factory: callable, model_dir: Path) -> None:
    first: Daemon = daemon_factory()
    inode = first.socket.stat().st_ino
    second = subprocess.run(
        [sys.executable, "-m", "enclaved.cli", "--socket", str(first.socket), "--models", str(model_dir), "--data", str(first.home / "d2")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"already serving {first.socket}" in second.stderr
    assert str(first.proc.pid) in second.stderr
    assert "Traceback" not in second.stderr
    assert first.socket.stat().st_ino == inode, "the running daemon's socket was not replaced"
    models = first.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models
    assert models


def test_restart_after_kill_9_is_not_blocked_by_stale_files(daemon_factory: callable) -> None:
    home = short_tmpdir()
    first: Daemon = daemon_factory(home=home)
    first.stop(signal.SIGKILL)
    assert first.socket.exists() and first.socket.with_name("enclaved.sock.lock").exists(), "kill -9 leaves both behind"
    second: Daemon = daemon_factory(home=home)
    assert second.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models


TALKER = '[[agents]]\nname = "talker"\nmodel = "tiny"\nmax_tokens = 1000000\n[[agents]]\nname = "fresh"\nmodel = "tiny"\nmax_tokens = 4\n'


def transcript(d: Daemon, agent: str) -> list[agents_pb2.TranscriptMessage]:
    return list(d.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=10).messages)


def test_a_message_whose_turn_a_kill_9_cut_is_kept_with_its_reply_marked_interrupted(daemon_factory: callable) -> None:
    home = short_tmpdir()
    d: Daemon = daemon_factory(TALKER, home=home)
    call = d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="talker", message="a message worth keeping"), timeout=60)
    assert any(ev.HasField("delta") for ev in call)  # it streams
    d.stop(signal.SIGKILL)
    d = daemon_factory(TALKER, home=home)
    kept = [(m.role, m.content, m.finish_reason) for m in transcript(d, "talker")]
    assert kept == [(agents_pb2.ROLE_USER, "a message worth keeping", ""), (agents_pb2.ROLE_ASSISTANT, "", "interrupted")]
    shown = enclave(d, "transcript", "talker")
    assert shown.returncode == 0 and "user: a message worth keeping\n" in shown.stdout
    assert "assistant: (no reply: interrupted)\n" in shown.stdout, shown.stdout
    # the model never answered it: the next prompt leaves it out, as a fresh agent's would
    put = agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="talker", model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=4)))
    d.stubs().agents.PutAgent(put, timeout=10)
    after = [ev for ev in d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="talker", message="hello"), timeout=60)][-1]
    fresh = [ev for ev in d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="fresh", message="hello"), timeout=60)][-1]
    assert after.finished.usage.prompt_tokens == fresh.finished.usage.prompt_tokens
    assert [m.role for m in transcript(d, "talker")] == [agents_pb2.ROLE_USER, agents_pb2.ROLE_ASSISTANT] * 2


def test_a_message_whose_turn_failed_is_kept_with_an_empty_reply_and_left_out_of_later_prompts(daemon_factory: callable) -> None:
    config = '[[models]]\nname = "tiny"\nn_ctx = 128\n' + TALKER.replace("1000000", "4")
    home = short_tmpdir()
    d: Daemon = daemon_factory(config, home=home)
    too_long = "words " * 300  # over the model's context
    with pytest.raises(grpc.RpcError) as info:
        list(d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="talker", message=too_long), timeout=60))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raise n_ctx" in info.value.details()
    kept = [(m.role, m.content, m.finish_reason) for m in transcript(d, "talker")]
    assert kept == [(agents_pb2.ROLE_USER, too_long, ""), (agents_pb2.ROLE_ASSISTANT, "", "error")], "the message is not lost"
    after = list(d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="talker", message="hello"), timeout=60))[-1]
    fresh = list(d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="fresh", message="hello"), timeout=60))[-1]
    assert after.finished.usage.prompt_tokens == fresh.finished.usage.prompt_tokens, "the failed exchange is not in the prompt"
    d.stop()
    d = daemon_factory(config, home=home)
    assert [(m.role, m.finish_reason) for m in transcript(d, "talker")][:2] == [
        (agents_pb2.ROLE_USER, ""),
        (agents_pb2.ROLE_ASSISTANT, "error"),
    ]
    assert len(transcript(d, "talker")) == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_turns_cleanly_removes_the_socket_and_exits_0(daemon_factory: callable, sig: int) -> None:
    d: Daemon = daemon_factory(TALKER, home=short_tmpdir())
    call = d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="talker", message="talk until stopped"), timeout=60)
    events = []
    for ev in call:
        events.append(ev)
        if ev.HasField("delta"):
            break
    stubs = d.stubs()
    watch = stubs.chat.Watch(chat_pb2.WatchRequest(), timeout=60)
    status = stubs.status.Status(status_pb2.StatusRequest(interval_seconds=5), timeout=60)
    next(status)
    d.proc.send_signal(sig)
    with pytest.raises(grpc.RpcError) as info:
        for ev in call:
            events.append(ev)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in info.value.details()
    for stream in (watch, status):  # streams that never end by themselves end at once, clearly
        with pytest.raises(grpc.RpcError) as info:
            list(stream)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in info.value.details()
    assert events[-1].HasField("error") and "shutting down" in events[-1].error.message
    assert d.proc.wait(timeout=30) == 0
    assert not d.socket.exists()
    assert not d.socket.with_name("enclaved.sock.lock").exists()
    assert "Traceback" not in d.log
    # the reply so far is kept, marked interrupted, as the client saw it
    partial = "".join(ev.delta.text for ev in events if ev.HasField("delta"))
    again = daemon_factory(TALKER, home=d.home)
    kept = [(m.role, m.content, m.finish_reason) for m in transcript(again, "talker")]
    assert partial and kept == [(agents_pb2.ROLE_USER, "talk until stopped", ""), (agents_pb2.ROLE_ASSISTANT, partial, "interrupted")]


def test_idle_model_is_evicted_to_stay_within_the_memory_budget(daemon_factory: callable) -> None:
    config = 'memory_budget = "7MiB"\n[[models]]\nname = "tiny"\nn_ctx = 4096\n[[models]]\nname = "small"\nn_ctx = 4096\n'
    d: Daemon = daemon_factory(config)
    stubs = d.stubs()
    stubs.models.LoadModel(models_pb2.LoadModelRequest(name="tiny"), timeout=30)
    r = stubs.models.LoadModel(models_pb2.LoadModelRequest(name="small"), timeout=30)
    assert list(r.evicted) == ["tiny"]
    states = {m.name: m.state for m in stubs.models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    assert states["tiny"] == models_pb2.MODEL_STATE_AVAILABLE and states["small"] == models_pb2.MODEL_STATE_LOADED


def test_model_larger_than_the_budget_is_refused(daemon_factory: callable) -> None:
    d: Daemon = daemon_factory('memory_budget = "1MiB"\n')
    with pytest.raises(grpc.RpcError) as info:
        d.stubs().models.LoadModel(models_pb2.LoadModelRequest(name="tiny"), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "memory_budget" in info.value.details()


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("this is = = not toml", "not valid TOML"),
        ("bogus = 1\n", "unknown setting 'bogus'"),
        ('[[agents]]\nname = "a"\ncolour = "red"\n', "unknown setting 'colour'"),
        ('[[agents]]\nname = "a"\n[[agents]]\nname = "a"\n', "'a' is defined twice"),
        ('memory_budget = "lots"\n', "memory_budget"),
        ('[[agents]]\nname = "a"\ntemperature = "hot"\n', "temperature must be a number, not 'hot'"),
        ('[[agents]]\nname = "a"\nmax_tokens = 1.5\n', "max_tokens must be a whole number"),
        ('[[models]]\nname = "m"\nstate_cache = "lots"\n', "state_cache: cannot read 'lots'"),
        # a value of the wrong type, one from each section: the key, what it must be, the fix
        ('models_dirs = "models"\n', "models_dirs: must be a list of strings, not 'models'"),
        ("data_dir = 5\n", 'data_dir: must be a string in quotes, not 5; write it like data_dir = "'),
        ('max_message_bytes = "lots"\n', "max_message_bytes: cannot read 'lots'"),
        ("memory_budget = true\n", "memory_budget: cannot read True"),
        ("models = 5\n", "models: must be a list of tables, not 5"),
        (
            '[[models]]\nname = "m"\nn_ctx = "big"\n',
            "[[models]] 'm' n_ctx: must be a whole number >= 64, not 'big'; write it like n_ctx = 8192",
        ),
        ('[[models]]\nname = "m"\nn_threads = "x"\n', "[[models]] 'm' n_threads: must be a whole number >= 0"),
        ('[[models]]\nname = "m"\nn_seq_max = true\n', "n_seq_max: must be a whole number >= 1, not True"),
        ('[[models]]\nname = "m"\nn_batch = 0\n', "n_batch: must be a whole number >= 1, not 0"),
        ("[[agents]]\nname = 5\n", "[[agents]] #1 name: must be a string in quotes, not 5"),
        ('[[agents]]\nname = "a"\nsystem = 5\n', "[[agents]] 'a' system: must be a string in quotes, not 5"),
        ('[[agents]]\nname = "a"\nmodel = ["m"]\n', "[[agents]] 'a' model: must be a string in quotes"),
        ('[[agents]]\nname = "a"\ntop_k = true\n', "top_k must be a whole number, not True"),
        (
            '[[agents]]\nname = "a"\n[[teams]]\nname = "t"\nkind = "chain"\nmembers = ["a"]\nstop_text = 5\n',
            "[[teams]] 't' stop_text: must be",
        ),
        (
            '[[agents]]\nname = "a"\n[[agents]]\nname = "s"\n[[teams]]\nname = "t"\nkind = "chain"\nmembers = ["a"]\n'
            'guard = { agent = "s", input = "yes" }\n',
            "guard.input: must be true or false, not 'yes'",
        ),
        (
            '[[agents]]\nname = "a"\n[[teams]]\nname = "t"\nkind = "chain"\nmembers = ["a"]\nmax_turns = "8"\n',
            "max_turns: must be a whole number",
        ),
        ('[audit]\nretention_days = "x"\n', "[audit] retention_days: must be a whole number >= 1, not 'x'"),
        ("[audit]\ncheckpoint_copies = 5\n", "[audit] checkpoint_copies: must be a list of strings"),
        (
            '[[engines]]\nname = "gpu"\nurls = ["http://10.0.0.5:8000/v1"]\nmax_concurrency = true\n',
            "max_concurrency: must be a whole number >= 1",
        ),
        ('[[engines]]\nname = "gpu"\nurls = ["http://10.0.0.5:8000/v1"]\nbreaker = { cooldown = [1] }\n', "breaker.cooldown: cannot read"),
        ("[http]\nmetrics = 1\n", "[http] metrics: write true or false"),
        ("[http]\nmax_body_bytes = true\n", "[http] max_body_bytes:"),
    ],
)
def test_config_mistakes_are_one_clear_line(config: str, words: str) -> None:
    home = short_tmpdir()
    (home / "c.toml").write_text(config)
    r = subprocess.run(
        [sys.executable, "-m", "enclaved.cli", "--config", str(home / "c.toml"), "--socket", str(home / "s.sock")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert words in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("enclaved: ") and str(home / "c.toml") in r.stderr, "the line names the file"


def test_socket_path_that_is_a_regular_file_is_refused(model_dir: Path) -> None:
    home = short_tmpdir()
    (home / "s.sock").write_text("precious")
    d = spawn_daemon(home, model_dir, socket=home / "s.sock")
    assert d.proc.wait(timeout=60) == 2
    assert "is not a socket" in d.log
    assert (home / "s.sock").read_text() == "precious"


def test_default_socket_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from enclave_contract.paths import default_socket_path

    monkeypatch.setenv("ENCLAVE_SOCKET", str(tmp_path / "x.sock"))
    assert default_socket_path() == tmp_path / "x.sock"
    monkeypatch.delenv("ENCLAVE_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == tmp_path / "enclave" / "enclaved.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_socket_path() == tmp_path / ".local" / "state" / "enclave" / "enclaved.sock"
