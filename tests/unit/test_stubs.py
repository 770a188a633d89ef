"""The checked-in stubs must be exactly what `make proto` generates from proto/."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in _generator().generate(tmp_path)}
    checked_in = {
        p.name: p.read_bytes()
        for p in (ROOT / "proto" / "enclave_contract" / "v1").iterdir()
        if p.name.endswith((".py", ".pyi")) and p.name != "__init__.py"
    }
    assert fresh.keys() == checked_in.keys(), "stub files differ from proto/; run `make proto`"
    stale = sorted(name for name in fresh if fresh[name] != checked_in[name])
    assert not stale, f"stale stubs {stale}; run `make proto` and commit the result"


def test_every_proto_is_generated() -> None:
    protos = {p.stem for p in (ROOT / "proto" / "enclave_contract" / "v1").glob("*.proto")}
    assert protos == {"agents", "audit", "chat", "keys", "models", "status", "teams"}
    for stem in protos:
        assert (ROOT / "proto" / "enclave_contract" / "v1" / f"{stem}_pb2.py").exists()
