"""The GGUF header reader: the same facts as the gguf package's full reader, and a one-line
``HeaderError`` (never another exception, never a huge allocation) for anything else."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from enclaved.domain.ggufheader import HeaderError, read_header


def _write(path: Path, *, tokens: int = 300, template: str | None = "{{ messages }}") -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(1)
    w.add_token_list([f"tok{i}" for i in range(tokens)])
    w.add_token_scores([0.0] * tokens)
    w.add_token_types([1] * tokens)
    w.add_array("general.nested", [[1, 2], [3]])
    if template is not None:
        w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.zeros((tokens, 64), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.zeros((64,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_the_header_says_what_the_full_reader_says(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    header = read_header(path)
    full = gguf.GGUFReader(str(path))
    assert header.values["general.architecture"] == "llama"
    assert header.values["llama.context_length"] == 4096
    assert header.values["llama.attention.head_count_kv"] == 2
    assert header.values["general.file_type"] == 1
    assert header.values["tokenizer.chat_template"] == "{{ messages }}"
    assert header.arrays["tokenizer.ggml.tokens"] == 300 and header.arrays["general.nested"] == 2
    assert header.tensor_count == len(full.tensors) == 2
    assert header.parameter_count == sum(int(t.n_elements) for t in full.tensors) == 300 * 64 + 64
    assert set(full.fields) - {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"} == (
        set(header.values) | set(header.arrays) | header.strings
    )


def test_a_model_without_a_chat_template_says_so(tmp_path: Path) -> None:
    header = read_header(_write(tmp_path / "m.gguf", template=None))
    assert not header.has("tokenizer.chat_template") and header.has("tokenizer.ggml.tokens")


def test_every_truncation_of_the_header_is_a_header_error(tmp_path: Path) -> None:
    whole = _write(tmp_path / "m.gguf", tokens=20).read_bytes()
    end = whole.index(b"output_norm.weight") + 40  # past the last tensor's info
    cut = tmp_path / "cut.gguf"
    for n in range(0, end, 3):
        cut.write_bytes(whole[:n])
        with pytest.raises(HeaderError, match=r"^(truncated|bad magic|absurd header)"):
            read_header(cut)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a gguf file" * 10, "bad magic number"),
        (b"GGUF" + struct.pack("<IQQ", 9, 0, 0) + b"\0" * 16, "GGUF version 9 is not supported"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**60) + b"\0" * 16, "absurd header"),
        (b"GGUF" + struct.pack("<IQQ", 3, 2**40, 1) + b"\0" * 16, "absurd header"),
        (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + b"\0" * 16,
            "unknown value type 99",
        ),
        (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**59) + b"\0" * 16,
            "absurd header",
        ),
    ],
    ids=["not-gguf", "version", "key-length-2^60", "tensor-count", "value-type", "string-array-count"],
)
def test_bad_headers_are_named(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(HeaderError, match=message):
        read_header(path)
