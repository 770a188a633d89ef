"""The catalog's paths, pinned before it was made cheaper (each file stat'ed once a pass, the
snapshot updated in place): what a symlink's entry says, each header showing as soon as it is
read, files that go away, one name from two folders; and the engine settings a model's
``[[models]]`` entry gives (``state_cache`` parsed once, by the config)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from enclaved.domain import catalog as catalog_module
from enclaved.domain.catalog import Catalog, read_model_file
from enclaved.domain.config import load_config
from enclaved.domain.ggufheader import Header
from enclaved.domain.models import engine_config
from tests.helpers import wait_for

AN_HOUR_AGO = time.time() - 3600


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    os.utime(dst, (AN_HOUR_AGO, AN_HOUR_AGO))
    return dst


def test_a_symlink_entry_has_the_targets_size_and_where_it_points(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    plain = _copy(model_dir / "tiny.gguf", folder / "plain.gguf")
    (folder / "link.gguf").symlink_to(model_dir / "eos.gguf")
    found = Catalog([folder]).refresh()
    assert found["plain"].size_bytes == plain.stat().st_size and found["plain"].target is None
    assert found["link"].size_bytes == (model_dir / "eos.gguf").stat().st_size
    assert found["link"].target == (model_dir / "eos.gguf").resolve() and found["link"].path == folder / "link.gguf"
    assert found["link"].ready and found["plain"].ready
    # the function on its own says the same
    alone = read_model_file("link", folder / "link.gguf")
    assert (alone.size_bytes, alone.target, alone.architecture) == (found["link"].size_bytes, found["link"].target, "llama")
    broken = _copy(model_dir / "broken.gguf", folder / "broken.gguf")
    bad = Catalog([folder]).refresh()["broken"]
    assert bad.size_bytes == broken.stat().st_size and "is not a valid GGUF file" in bad.problem


def test_each_header_shows_as_soon_as_it_is_read(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a pass reads headers, what was read is already in the snapshot others see."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("a", "b", "c"):
        _copy(model_dir / "tiny.gguf", folder / f"{name}.gguf")
    catalog = Catalog([folder])
    seen: list[dict[str, bool]] = []
    real_read = catalog_module.read_header

    def read_and_look(path: Path) -> Header:
        seen.append({n: f.ready for n, f in catalog.scan().items()})
        return real_read(path)

    monkeypatch.setattr(catalog_module, "read_header", read_and_look)
    catalog.start(interval=3600)  # lists the folder (every header pending), then one pass on its thread
    try:
        wait_for(lambda: all(f.ready for f in catalog.scan().values()))
    finally:
        catalog.stop()
    assert seen == [
        {"a": False, "b": False, "c": False},
        {"a": True, "b": False, "c": False},
        {"a": True, "b": True, "c": False},
    ]
    assert all(f.ready for f in catalog.scan().values())
    seen.clear()
    catalog.refresh()  # nothing changed: nothing is read again
    assert seen == [] and all(f.ready for f in catalog.scan().values())


def test_a_file_that_goes_away_leaves_the_snapshot_and_the_cache(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    keep = _copy(model_dir / "tiny.gguf", folder / "keep.gguf")
    gone = _copy(model_dir / "tiny.gguf", folder / "gone.gguf")
    cache = tmp_path / "headers.json"
    catalog = Catalog([folder], cache_file=cache)
    assert set(catalog.refresh()) == {"keep", "gone"}
    gone.unlink()
    assert set(catalog.refresh()) == {"keep"} and set(catalog.scan()) == {"keep"}
    assert str(gone) not in cache.read_text() and str(keep.resolve()) in cache.read_text()


def test_one_name_in_two_folders(tmp_path: Path, model_dir: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    _copy(model_dir / "tiny.gguf", first / "m.gguf")
    _copy(model_dir / "tiny.gguf", second / "m.gguf")
    _copy(model_dir / "tiny.gguf", second / "M.GGUF")
    found = Catalog([first, second]).refresh()
    assert found["m"].path == first / "m.gguf" and found["m"].ready
    assert found["M"].path == second / "M.GGUF"
    skipped = found[f"skipped:{second / 'm.gguf'}"]
    assert f"{first / 'm.gguf'} already gives the name 'm'" in skipped.problem


def test_a_models_engine_settings_come_from_its_entry(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[[models]]\nname = "m"\nn_ctx = 512\nn_seq_max = 2\nn_threads = 3\nn_batch = 64\nprefill_chunk = 32\nstate_cache = "64MiB"\n'
        '[[models]]\nname = "off"\nstate_cache = 0\n'
    )
    config = load_config(tmp_path / "c.toml")
    m = engine_config(config.model_settings("m"))
    assert (m.n_ctx_seq, m.n_seq_max, m.n_threads, m.n_batch, m.prefill_chunk, m.state_cache_bytes) == (512, 2, 3, 64, 32, 64 << 20)
    assert engine_config(config.model_settings("off")).state_cache_bytes == 0
    default = engine_config(config.model_settings("unlisted"))
    assert default.state_cache_bytes == 256 << 20 and default.n_threads == (os.cpu_count() or 1)
