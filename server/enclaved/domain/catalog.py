"""The GGUF files of the models folders and what their headers say, found without waiting.

Discovery runs on its own thread (``start``), never on the event loop: each pass lists the
folders (a ``stat`` per file), publishes what it found at once, then reads the headers it does
not know yet (``ggufheader``: arrays skipped, so Gemma's 262k-token vocabulary costs ~50 ms).
Until then a model is listed as *pending*. A file changed in the last ``SETTLE_SECONDS`` may
still be being copied in: it stays pending until it has rested that long (loading it reads it
at once, and takes a header that fails to read on so recent a file for a partial copy). Header facts are kept in a
cache file in the data folder by path, size and mtime, so a restart reads nothing it has read
before. ``scan`` returns the latest snapshot and never reads a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from enclaved.domain.ggufheader import Header, HeaderError, read_header

log = logging.getLogger("enclaved.catalog")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
SUFFIX = ".gguf"  # in any case: UPPER.GGUF is a model too
SETTLE_SECONDS = 2.0  # a file changed more recently than this may still be being written
POLL_SECONDS = 2.0
CACHE_VERSION = 1
WRITING = "still being written; read once it has not changed for a few seconds"

# general.file_type values (llama.cpp's llama_ftype) and their usual names
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip


@dataclass(frozen=True)
class ModelFile:
    """One GGUF file and what its header says."""

    name: str
    path: Path  # as found in the folder
    size_bytes: int
    architecture: str = ""
    parameter_count: int = 0
    quantization: str = ""
    context_length: int = 0
    has_chat_template: bool = False
    kv_bytes_per_token: int = 0  # F16 K and V, every layer
    problem: str = ""  # not empty: the file cannot be used, and why
    pending: str = ""  # not empty: the header is not read yet, and why
    target: Path | None = None  # where the path points, when it is a symlink

    @property
    def valid(self) -> bool:
        """Usable as far as anyone knows: nothing wrong found (its header may be pending)."""
        return not self.problem

    @property
    def ready(self) -> bool:
        return not self.problem and not self.pending

    def memory_bytes(self, n_ctx_seq: int, n_seq_max: int) -> int:
        """Weights plus the KV cache of ``n_seq_max`` sequences of ``n_ctx_seq`` tokens."""
        return self.size_bytes + self.kv_bytes_per_token * n_ctx_seq * n_seq_max


def model_file(name: str, path: Path, size: int, header: Header) -> ModelFile:
    """The facts the daemon uses, from a header read by ``ggufheader``."""
    v = header.values

    def number(key: str, default: int = 0) -> int:
        value = v.get(key, default)
        return int(value) if isinstance(value, int | float) else default

    arch = str(v.get("general.architecture", ""))
    file_type = v.get("general.file_type")
    quant = _FILE_TYPES.get(file_type, f"type {file_type}") if isinstance(file_type, int) else ""
    n_layer = number(f"{arch}.block_count")
    n_embd = number(f"{arch}.embedding_length")
    n_head = number(f"{arch}.attention.head_count")
    n_head_kv = number(f"{arch}.attention.head_count_kv", n_head)
    head_dim = number(f"{arch}.attention.key_length", n_embd // n_head if n_head else 0)
    return ModelFile(
        name=name,
        path=path,
        size_bytes=size,
        architecture=arch,
        parameter_count=header.parameter_count,
        quantization=quant,
        context_length=number(f"{arch}.context_length"),
        has_chat_template=header.has("tokenizer.chat_template"),
        kv_bytes_per_token=2 * n_layer * n_head_kv * head_dim * 2,
    )


def read_model_file(name: str, path: Path) -> ModelFile:
    """Read one file's header now; a file that is not GGUF gets its problem, never an error."""
    real = path.resolve()
    return header_facts(name, path, real, real.stat().st_size, real if path.is_symlink() else None)


def header_facts(name: str, path: Path, real: Path, size: int, target: Path | None) -> ModelFile:
    """``read_model_file`` for a caller that has stat'ed the file already (a discovery pass):
    ``real`` is where ``path`` leads, ``size`` its size there, ``target`` set for a symlink."""
    try:
        return replace(model_file(name, path, size, read_header(real)), target=target)
    except HeaderError as exc:
        log.warning("model file %s is not valid GGUF (%s)", path.name, exc)
        return ModelFile(name, path, size, target=target, problem=f"{path.name} is not a valid GGUF file ({exc}); replace or remove it")


def usable_name(stem: str) -> str:
    """A model name for a file stem: ``My Model`` → ``My-Model``; "" if nothing is left."""
    name = _UNSAFE.sub("-", stem).strip("-._+")
    return name[:128] if name and _NAME.match(name[:128]) else ""


def model_name(name: str) -> str:
    """What a person typed for a model: ``tiny.gguf`` is ``tiny``."""
    return name[: -len(SUFFIX)] if name.lower().endswith(SUFFIX) and len(name) > len(SUFFIX) else name


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int


class Catalog:
    """The models folders' GGUF files. A model's name is its file stem (made usable: unsafe
    characters become ``-``); where two files give one name, the first folder listed and then
    the first file by name wins, and the other is listed as skipped, with why."""

    def __init__(self, dirs: list[Path], cache_file: Path | None = None, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.dirs = [d.resolve() for d in dirs]
        self.cache_file = cache_file
        self.settle_seconds = settle_seconds
        self._known: dict[Path, tuple[_Seen, ModelFile]] = {}  # by real path: header facts
        self._snapshot: dict[str, ModelFile] = {}
        self._dirty = False  # headers read that the cache file lacks
        self._lock = threading.Lock()  # one pass at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_cache()

    # ---- what others see -------------------------------------------------------------------

    def scan(self) -> dict[str, ModelFile]:
        """The latest snapshot: every model found, by name; reads nothing. Use it at once: a
        pass puts each header it reads into it (a name it already has, in place)."""
        return self._snapshot

    def start(self, interval: float = POLL_SECONDS) -> None:
        """List the folders now (fast: no header is read), then discover on a thread."""
        self._snapshot = self._pass(read=False)
        self._thread = threading.Thread(target=self._run, args=(interval,), name="model-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def refresh(self) -> dict[str, ModelFile]:
        """One full pass now, headers included (blocking: call it from a worker thread); what
        it found, as a dict of its own."""
        return dict(self._pass(read=True))

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self._pass(read=True)
            except Exception:  # discovery must outlive any file it trips on
                log.exception("model discovery pass failed")
            self._stop.wait(interval)

    # ---- a pass ----------------------------------------------------------------------------

    def _pass(self, read: bool) -> dict[str, ModelFile]:
        with self._lock:
            found: dict[str, ModelFile] = {}
            present: set[Path] = set()
            for name, path in self._candidates(found):
                try:
                    real = path.resolve(strict=True)
                    st = real.stat()
                except OSError:
                    continue  # vanished, or a dangling symlink, between listing and stat
                now = _Seen(st.st_size, st.st_mtime_ns)
                present.add(real)
                found[name] = self._file(name, path, real, now, read)
                if read:
                    self._show(name, found[name])  # each header shows when read
            self._snapshot = found
            for gone in [p for p in self._known if p not in present] if read else []:
                del self._known[gone]  # removed from the folders: forgotten, in the cache file too
                self._dirty = True
            if self._dirty:
                self._save_cache()
            return found

    def _show(self, name: str, info: ModelFile) -> None:
        """Put one entry in the published snapshot during a pass. A name it already has gets
        its new value in place (the same keys: a reader iterating it meanwhile is safe, and a
        pass costs O(n), not a copy per file); a new name gets a new dict."""
        snapshot = self._snapshot
        if name not in snapshot:
            self._snapshot = {**snapshot, name: info}
        elif snapshot[name] != info:
            snapshot[name] = info

    def _candidates(self, found: dict[str, ModelFile]) -> list[tuple[str, Path]]:
        """(name, path) of every GGUF file to look at; files that get no usable name, or whose
        name is taken, go straight into ``found`` as skipped."""
        out: list[tuple[str, Path]] = []
        names: dict[str, Path] = {}  # name → the path that gives it
        for folder in self.dirs:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if not entry.name.lower().endswith(SUFFIX) or entry.name.startswith("."):
                    continue
                path = Path(folder) / entry.name
                stem = entry.name[: -len(SUFFIX)]
                name = usable_name(stem)
                if not name:
                    log.warning("model file %s has no usable name; skipped", entry.name)
                    found[f"skipped:{entry.name}"] = ModelFile(
                        entry.name, path, 0, problem=f"{entry.name} gives no usable model name; rename it (letters, digits, . _ + -)"
                    )
                    continue
                if name in names:
                    found[f"skipped:{path}"] = ModelFile(
                        entry.name, path, 0, problem=f"{path} is skipped: {names[name]} already gives the name {name!r}; rename one of them"
                    )
                    continue
                names[name] = path
                out.append((name, path))
        return out

    def _file(self, name: str, path: Path, real: Path, now: _Seen, read: bool) -> ModelFile:
        target = real if path.is_symlink() else None
        known = self._known.get(real)
        if known and known[0] == now:
            return replace(known[1], name=name, path=path, target=target)
        if not read:
            return ModelFile(name, path, now.size, target=target, pending="its header is being read")
        if self._recent(now):  # may still be being written
            return ModelFile(name, path, now.size, target=target, pending=WRITING)
        return self._read(name, path, real, now, target)

    def _recent(self, seen: _Seen) -> bool:
        return time.time_ns() - seen.mtime_ns < self.settle_seconds * 1e9

    def _read(self, name: str, path: Path, real: Path, now: _Seen, target: Path | None) -> ModelFile:
        info = header_facts(name, path, real, now.size, target)  # stat'ed by the pass: not again
        if self._recent(now):
            # asked for now (a load): a failure is most likely a partial copy, and nothing is cached
            return replace(info, problem="", pending=WRITING) if info.problem else info
        self._known[real] = (now, info)
        self._dirty = True
        return info

    def read_now(self, f: ModelFile) -> ModelFile:
        """``f`` with its header read now if it is pending (to load it); blocking."""
        if not f.pending:
            return f
        name = f.name
        with self._lock:
            try:
                real = f.path.resolve(strict=True)
                st = real.stat()
            except OSError:
                return f
            info = self._read(name, f.path, real, _Seen(st.st_size, st.st_mtime_ns), real if f.path.is_symlink() else None)
            self._snapshot = {**self._snapshot, name: info}
            return info

    # ---- the cache file --------------------------------------------------------------------

    def _load_cache(self) -> None:
        if self.cache_file is None:
            return
        try:
            raw = json.loads(self.cache_file.read_text(encoding="utf-8"))
            if raw.get("version") != CACHE_VERSION:
                return
            for key, item in raw["files"].items():
                seen = _Seen(int(item.pop("size")), int(item.pop("mtime_ns")))
                info = ModelFile(**{**item, "path": Path(item["path"]), "target": None})
                self._known[Path(key)] = (seen, info)
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a damaged cache is only a slower start
            log.warning("model header cache %s is unreadable (%s); reading the headers again", self.cache_file, exc)
            self._known.clear()

    def _save_cache(self) -> None:
        if self.cache_file is None:
            return
        files = {}
        for real, (seen, info) in self._known.items():
            item = {k: v for k, v in asdict(info).items() if k != "target"}
            files[str(real)] = {**item, "path": str(info.path), "size": seen.size, "mtime_ns": seen.mtime_ns}
        tmp = self.cache_file.with_name(self.cache_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": files}), encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.cache_file)
            self._dirty = False
        except OSError as exc:  # a full disk costs the cache, not discovery
            log.warning("cannot write the model header cache %s (%s)", self.cache_file, exc)


def check_model_name(name: str) -> None:
    """Reject names that could not be a file stem in a models folder (paths, traversal)."""
    from enclaved.errors import InvalidArgument

    if not name:
        raise InvalidArgument("model name is empty; give a model's name (its file stem, see `enclave models`)")
    if not _NAME.match(name):
        raise InvalidArgument(
            "model name must be a file stem in a models folder (letters, digits, . _ + -), not a path; see `enclave models`"
        )
