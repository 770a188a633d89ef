"""Prompt building: chat templates from the GGUF, the plain fallback, history trimming."""

from pathlib import Path

import pytest

from enclaved.domain.prompt import build_prompt, render
from enclaved.errors import InvalidArgument
from enclaved.llama import Model


@pytest.fixture(scope="module")
def tiny(model_dir: Path):
    m = Model(model_dir / "tiny.gguf")
    yield m
    m.close()


@pytest.fixture(scope="module")
def plain(model_dir: Path):
    m = Model(model_dir / "plain.gguf")
    yield m
    m.close()


def test_gguf_chat_template_is_used(tiny: Model) -> None:
    text = render(tiny, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_plain_template_without_gguf_template(plain: Model) -> None:
    assert plain.chat_template is None
    text = render(plain, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "S\n\nUser: U\nAssistant:"


def test_special_tokens_are_parsed(tiny: Model) -> None:
    p = build_prompt(tiny, "", [], "hi", n_ctx=512, reserve=0)
    im_start = tiny.tokenize("<|im_start|>", add_special=False)
    assert len(im_start) == 1 and im_start[0] in p.tokens


def history(n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        out += [{"role": "user", "content": f"question {i} " * 20}, {"role": "assistant", "content": f"answer {i} " * 20}]
    return out


def test_oldest_exchanges_are_dropped_and_system_kept(tiny: Model) -> None:
    full = build_prompt(tiny, "SYSTEM PROMPT", history(6), "latest", n_ctx=4096, reserve=0)
    assert full.dropped_messages == 0
    trimmed = build_prompt(tiny, "SYSTEM PROMPT", history(6), "latest", n_ctx=len(full.tokens) - 50, reserve=0)
    assert trimmed.dropped_messages >= 2 and trimmed.dropped_messages % 2 == 0
    assert len(trimmed.tokens) <= len(full.tokens) - 50
    system = tiny.tokenize("SYSTEM PROMPT", add_special=False)
    # the system prompt survives trimming: its tokens still open the prompt
    assert full.tokens[: len(system) + 5] == trimmed.tokens[: len(system) + 5]


def test_message_longer_than_context_is_a_clear_error(tiny: Model) -> None:
    message = "secretword " * 400
    with pytest.raises(InvalidArgument) as info:
        build_prompt(tiny, "", [], message, n_ctx=128, reserve=16)
    assert "context holds 128" in info.value.message
    assert "secretword" not in info.value.message
