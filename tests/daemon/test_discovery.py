"""Model discovery: names a person gives files, symlinks, files still being copied in, the
header cache, and the real models' headers (read without parsing their vocabularies)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import grpc
import pytest

from enclave_contract.v1 import models_pb2
from enclaved.domain.catalog import WRITING, Catalog
from tests.helpers import REAL_MODELS, Daemon, enclave, short_tmpdir, start_daemon

AN_HOUR_AGO = time.time() - 3600


def _age(path: Path) -> None:
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO), follow_symlinks=True)


def _listed(catalog: Catalog) -> dict[str, str]:
    """name → "ok", or the problem or pending reason."""
    return {f.name: f.problem or f.pending or "ok" for f in catalog.refresh().values()}


def test_names_people_give_files(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("My Model.gguf", "UPPER.GGUF", "My-Model.gguf", "!!!.gguf", "notes.txt"):
        shutil.copy(model_dir / "tiny.gguf", folder / name)
        _age(folder / name)
    listed = _listed(Catalog([folder]))
    assert listed["My-Model"] == "ok" and listed["UPPER"] == "ok"
    assert "already gives the name 'My-Model'; rename one of them" in listed["My-Model.gguf"]
    assert "!!!.gguf gives no usable model name" in listed["!!!.gguf"]
    assert not any("notes" in name for name in listed)


def test_a_symlink_is_followed_wherever_it_points(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "outside.gguf").symlink_to(model_dir / "tiny.gguf")
    found = Catalog([folder]).refresh()["outside"]
    assert found.ready and found.target == (model_dir / "tiny.gguf").resolve() and found.architecture == "llama"


def test_a_file_being_copied_in_is_pending_until_it_settles(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    whole = (model_dir / "tiny.gguf").read_bytes()
    growing = folder / "late.gguf"
    growing.write_bytes(whole[: len(whole) // 3])
    catalog = Catalog([folder], settle_seconds=3600)
    catalog.start(interval=3600)  # passes are made by hand below
    try:
        assert catalog.scan()["late"].pending  # listed at once, header not read
        assert catalog.refresh()["late"].pending == WRITING  # written just now
        growing.write_bytes(whole[: len(whole) // 2])
        assert catalog.refresh()["late"].pending == WRITING
        growing.write_bytes(whole)
        _age(growing)  # as it is once it has rested
        assert catalog.refresh()["late"].ready
    finally:
        catalog.stop()


def test_a_broken_file_written_long_ago_is_invalid_not_pending(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "junk.gguf").write_bytes(b"not gguf" * 100)
    _age(folder / "junk.gguf")
    catalog = Catalog([folder])
    catalog.refresh()
    assert "not a valid GGUF file" in catalog.refresh()["junk"].problem


def test_headers_are_cached_by_path_size_and_mtime(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "m.gguf"
    shutil.copy(model_dir / "tiny.gguf", model)
    _age(model)
    cache = tmp_path / "headers.json"
    first = Catalog([folder], cache_file=cache).refresh()["m"]
    assert first.ready and cache.exists() and oct(cache.stat().st_mode & 0o777) == "0o600"
    # Same size and mtime, other bytes: a catalog that trusts its cache never reads them.
    data = bytearray(model.read_bytes())
    data[:4] = b"XXXX"
    model.write_bytes(bytes(data))
    _age(model)
    again = Catalog([folder], cache_file=cache)
    again.start(interval=3600)
    try:
        assert again.scan()["m"].ready and again.scan()["m"].architecture == "llama"
    finally:
        again.stop()
    # A changed mtime is a changed file: read again, and found broken.
    os.utime(model, (AN_HOUR_AGO + 1, AN_HOUR_AGO + 1))
    third = Catalog([folder], cache_file=cache)
    third.refresh()
    assert "bad magic number" in third.refresh()["m"].problem


@pytest.mark.parametrize(("name", "arch", "template"), [("smollm2", "llama", True), ("gemma3", "gemma3", False)])
def test_the_real_models_headers(name: str, arch: str, template: bool) -> None:
    found = Catalog([REAL_MODELS]).refresh()[name]
    assert found.ready and found.architecture == arch and found.has_chat_template is template
    assert found.parameter_count > 100_000_000 and found.context_length >= 8192 and found.kv_bytes_per_token > 0


def test_load_understands_a_file_name(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    r = stubs.models.LoadModel(models_pb2.LoadModelRequest(name="tiny.gguf"), timeout=60)
    assert r.model.name == "tiny" and r.model.state == models_pb2.MODEL_STATE_LOADED
    with pytest.raises(grpc.RpcError) as info:
        stubs.models.LoadModel(models_pb2.LoadModelRequest(name="missing.gguf"), timeout=60)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "no model named 'missing'" in info.value.details()


def test_enclave_models_shows_where_a_symlink_points(tmp_path: Path, model_dir: Path) -> None:
    folder = short_tmpdir()
    (folder / "linked.gguf").symlink_to(model_dir / "tiny.gguf")
    shutil.copy(model_dir / "tiny.gguf", folder / "Copied Model.GGUF")
    _age(folder / "Copied Model.GGUF")
    d = start_daemon(short_tmpdir(), folder)
    try:
        deadline = time.monotonic() + 30
        while (r := enclave(d, "models")).stdout.count("available") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the discovery thread reads the headers just after start
        assert r.returncode == 0, r.stderr
        assert f"linked → {(model_dir / 'tiny.gguf').resolve()}" in r.stdout
        assert "Copied-Model" in r.stdout and r.stdout.count("available") == 2
        assert enclave(d, "load", "Copied-Model.gguf").returncode == 0
    finally:
        d.stop()
