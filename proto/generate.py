"""Regenerates the Python stubs of proto/enclave_contract/v1 beside their .proto files (`make proto`).

    python proto/generate.py [OUT_DIR]

The .proto files sit in the contract package itself, so the stubs import each other as
`enclave_contract.v1.*` and both the daemon and the client import them from there.
tests/unit/test_stubs.py runs this into a temporary folder and fails when the checked-in stubs differ.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "enclave_contract" / "v1"
PROTOS = sorted(PACKAGE.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write the stubs for every .proto into ``out_dir``; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(p.relative_to(ROOT)) for p in PROTOS],
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        for f in sorted((Path(tmp) / "enclave_contract" / "v1").iterdir()):
            shutil.copy(f, out_dir / f.name)
            written.append(out_dir / f.name)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    for path in generate(target):
        print(path)
