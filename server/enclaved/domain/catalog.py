"""Finding GGUF files in the models folders and reading their headers without loading them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("enclaved.catalog")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


@dataclass(frozen=True)
class ModelFile:
    """One ``*.gguf`` file and what its header says."""

    name: str
    path: Path
    size_bytes: int
    architecture: str = ""
    parameter_count: int = 0
    quantization: str = ""
    context_length: int = 0
    has_chat_template: bool = False
    kv_bytes_per_token: int = 0  # F16 K and V, every layer
    problem: str = ""  # not empty: the file cannot be used, and why

    @property
    def valid(self) -> bool:
        return not self.problem

    def memory_bytes(self, n_ctx_seq: int, n_seq_max: int) -> int:
        """Weights plus the KV cache of ``n_seq_max`` sequences of ``n_ctx_seq`` tokens."""
        return self.size_bytes + self.kv_bytes_per_token * n_ctx_seq * n_seq_max


def read_header(name: str, path: Path) -> ModelFile:
    size = path.stat().st_size
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        fields = reader.fields

        def get(key: str, default: object = None) -> Any:  # gguf types a value as Any: int, float, str or list
            field = fields.get(key)
            return field.contents() if field is not None else default

        def number(key: str, default: int = 0) -> int:
            return int(get(key, default) or 0)

        arch = str(get("general.architecture", ""))
        file_type = get("general.file_type")
        try:
            quant = gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else ""
        except ValueError:
            quant = f"type {file_type}"
        n_layer = number(f"{arch}.block_count")
        n_embd = number(f"{arch}.embedding_length")
        n_head = number(f"{arch}.attention.head_count")
        n_head_kv = number(f"{arch}.attention.head_count_kv", n_head)
        head_dim = n_embd // n_head if n_head else 0
        return ModelFile(
            name=name,
            path=path,
            size_bytes=size,
            architecture=arch,
            parameter_count=sum(int(t.n_elements) for t in reader.tensors),
            quantization=quant,
            context_length=number(f"{arch}.context_length"),
            has_chat_template="tokenizer.chat_template" in fields,
            kv_bytes_per_token=2 * n_layer * n_head_kv * head_dim * 2,
        )
    except Exception as exc:  # any unreadable header makes the file unusable, not the daemon
        reason = "bad magic number" if "magic" in str(exc).lower() else "truncated or corrupt header"
        log.warning("model file %s is not valid GGUF (%s)", path.name, reason)
        return ModelFile(
            name=name,
            path=path,
            size_bytes=size,
            problem=f"{path.name} is not a valid GGUF file ({reason}); replace or remove it",
        )


class Catalog:
    """The ``*.gguf`` files of the models folders, re-read when a file changes.

    A model's name is its file stem; where two folders hold the same stem, the first folder
    listed wins.
    """

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = [d.resolve() for d in dirs]
        self._cache: dict[Path, tuple[tuple[int, int], ModelFile]] = {}

    def scan(self) -> dict[str, ModelFile]:
        found: dict[str, ModelFile] = {}
        for folder in self.dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.gguf")):
                name = path.stem
                if name in found or not _NAME.match(name):
                    continue
                try:
                    found[name] = self._read(name, path)
                except OSError:
                    continue  # vanished or unreadable between glob and stat
        return found

    def _read(self, name: str, path: Path) -> ModelFile:
        real = path.resolve()
        if not any(real.is_relative_to(d) for d in self.dirs):
            return ModelFile(
                name=name,
                path=path,
                size_bytes=0,
                problem=f"{path.name} points outside the models folders; copy the file into {path.parent}",
            )
        st = real.stat()
        key = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(real)
        if cached and cached[0] == key:
            return cached[1]
        info = read_header(name, real)
        self._cache[real] = (key, info)
        return info


def check_model_name(name: str) -> None:
    """Reject names that could not be a file stem in a models folder (paths, traversal)."""
    from enclaved.errors import InvalidArgument

    if not name:
        raise InvalidArgument("model name is empty; give a model's name (its file stem, see `enclave models`)")
    if not _NAME.match(name):
        raise InvalidArgument(
            "model name must be a file stem in a models folder (letters, digits, . _ + -), not a path; see `enclave models`"
        )
