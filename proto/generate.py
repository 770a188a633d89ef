"""Regenerates the Python stubs of proto/enclave/v1 into tui/v1 (`make proto`).

    python proto/generate.py [OUT_DIR]

The stubs import each other as `enclave.v1.*`, which is where setuptools maps tui/v1.
tests/test_stubs.py runs this into a temporary folder and fails when the checked-in stubs differ.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc
import grpc_tools

ROOT = Path(__file__).resolve().parent
PROTOS = sorted((ROOT / "enclave" / "v1").glob("*.proto"))


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
        for f in sorted((Path(tmp) / "enclave" / "v1").iterdir()):
            shutil.copy(f, out_dir / f.name)
            written.append(out_dir / f.name)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "tui" / "v1"
    for path in generate(target):
        print(path)
