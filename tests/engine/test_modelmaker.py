"""The model maker writes real llama-architecture GGUF files that llama.cpp loads."""

from pathlib import Path

import pytest

from enclave.modelmaker import SIZES, make_model, synthetic_vocab
from enclaved.domain.catalog import read_model_file
from enclaved.llama import Model


def test_tiny_model_header_and_load(tmp_path: Path) -> None:
    path = make_model(tmp_path / "t.gguf", "tiny")
    size = path.stat().st_size
    assert 100_000 < size < 1_000_000, "tiny should be a few hundred KB"
    info = read_model_file("t", path)
    assert info.valid, info.problem
    assert info.architecture == "llama"
    assert info.quantization == "F16"
    assert info.parameter_count == SIZES["tiny"].n_params
    assert info.context_length == SIZES["tiny"].n_ctx_train
    assert info.has_chat_template
    model = Model(path)
    try:
        assert model.n_vocab == SIZES["tiny"].n_vocab
        assert model.n_layer == SIZES["tiny"].n_layer
        tokens = model.tokenize("the river at night, café 日本", add_special=True)
        assert tokens[0] == 1  # BOS
        assert len(tokens) > 3
    finally:
        model.close()


def test_1b_shape_is_about_one_billion_parameters() -> None:
    assert 1.0e9 < SIZES["1b"].n_params < 1.2e9


def test_vocab_is_unique_and_complete() -> None:
    for shape in SIZES.values():
        vocab = synthetic_vocab(shape.n_vocab)
        assert len(vocab) == shape.n_vocab
        assert len(set(vocab)) == len(vocab)
        assert all(f"<0x{b:02X}>" in vocab for b in range(256)), "byte fallback tokens are needed for any text"


def test_unknown_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown size"):
        make_model(tmp_path / "x.gguf", "huge")
    assert not (tmp_path / "x.gguf").exists()


def test_cli_make_model_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from enclave.cli import main

    out = tmp_path / "m.gguf"
    assert main(["make-model", str(out)]) == 0
    assert main(["make-model", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
