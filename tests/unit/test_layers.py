"""The layout is a rule, not a description: these tests fail on an import across it.

- the contract (``enclave_contract``) imports neither side; the daemon (``enclaved``) never
  imports the client (``enclave``) and the client never imports the daemon;
- inside the daemon each layer imports only the layers below it
  (transport → services → domain → engine → llama), with ``errors`` under all of them and the
  audit log beside them (transport, services and domain may record; the audit log imports no
  layer); only the engine touches ``llama``, and not its remote engines (``engine/remote/``),
  and services see only the engine's public types;
- in the client only the connection (``enclave.protocol``, ``enclave.convert``) and the
  scripting side (``enclave.cli``, ``enclave.client``, ``enclave.audit_cli``) see the generated
  stubs; screens and widgets see neither the stubs nor the connection: they are fed view models
  and messages;
- no import cycle anywhere, ``if TYPE_CHECKING:`` imports included;
- no module over 500 lines.

Imports are read from the source with ``ast`` (inside functions too), so a lazy import cannot
slip past. The checker itself is tested on small trees made here, so these tests can fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [ROOT / "proto", ROOT / "server", ROOT / "tui"]
PACKAGES = ("enclave_contract", "enclaved", "enclave")
MAX_LINES = 500

# Daemon layers, top first. A module may import its own layer and any layer below it.
LAYERS = ["enclaved.transport", "enclaved.services", "enclaved.domain", "enclaved.engine", "enclaved.llama"]
# Beside the layers: the audit log may be imported by transport, services and domain, and
# imports no layer itself; errors may be imported by anything in the daemon.
AUDIT = "enclaved.audit"
AUDIT_USERS = LAYERS[:3]
ROOT_MODULES = (
    "enclaved",
    "enclaved.cli",
    "enclaved.daemon",
    "enclaved.limits",
    "enclaved.sdnotify",
)  # the composition root (and the process limits it sets) wires every layer
SHARED = ("enclaved", "enclaved.errors")
# Remote engines (engine/remote/) speak HTTP to another machine: they never touch llama.cpp.
REMOTE = "enclaved.engine.remote"  # the version, and the errors every layer raises
# The client: who may import the generated stubs, and what screens and widgets may not reach.
STUBS = "enclave_contract.v1"
STUB_USERS = (
    "enclave.protocol",
    "enclave.convert",
    "enclave.cli",
    "enclave.client",
    "enclave.audit_cli",
    "enclave.agent_cli",
    "enclave.keys_cli",
    "enclave.team_cli",
)
VIEW_SIDE = ("enclave.screens", "enclave.widgets", "enclave.views", "enclave.messages")
CONNECTION = ("enclave.protocol", "enclave.convert")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(roots: list[Path], packages: tuple[str, ...]) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for root in roots:
        for package in packages:
            for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
                modules[module_name(path, root)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every first-party module that ``name`` imports, resolved to a module we have."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def add(target: str, line: int) -> None:
        # `from a.b import c` imports module a.b.c if there is one, else the names of a.b
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and Import(name, target, line) not in found:
            found.append(Import(name, target, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                add(f"{module}.{alias.name}", node.lineno)
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if _within(module, layer):
            return i
    return None


def violations(imp: Import) -> str | None:
    """Why this import breaks the rules, or None."""
    src, dst = imp.source, imp.target
    src_pkg, dst_pkg = src.split(".")[0], dst.split(".")[0]
    if src_pkg == "enclave_contract" and dst_pkg != "enclave_contract":
        return "the contract imports neither the daemon nor the client"
    if {src_pkg, dst_pkg} == {"enclaved", "enclave"}:
        return "the daemon and the client never import each other; share it through enclave_contract"
    if src_pkg == "enclave":
        if _within(dst, STUBS) and src not in STUB_USERS:
            return "only enclave.protocol and enclave.convert see the stubs; take view models from enclave.views"
        if any(_within(src, side) for side in VIEW_SIDE) and dst in CONNECTION:
            return "screens and widgets are fed by the session (messages, view models), never by the connection"
        return None
    if src_pkg != "enclaved" or dst_pkg != "enclaved" or src in ROOT_MODULES or dst in SHARED:
        return None
    if _within(dst, AUDIT):
        if _within(src, AUDIT) or any(_within(src, user) for user in AUDIT_USERS):
            return None
        return f"{src} may not use the audit log; only {', '.join(AUDIT_USERS)} record"
    if _within(src, AUDIT):
        return "the audit log imports no daemon layer"
    s, d = _layer(src), _layer(dst)
    if s is None or d is None:
        return f"{src if s is None else dst} is in no layer; put it in one of {', '.join(LAYERS)}"
    if d < s:
        return f"{LAYERS[s]} may not import {LAYERS[d]}, a layer above it"
    if _within(src, REMOTE) and LAYERS[d] == "enclaved.llama":
        return "remote engines speak HTTP; they never touch llama.cpp"
    if s < d - 1 and LAYERS[d] == "enclaved.llama":
        return f"{LAYERS[s]} may not reach past the engine into llama"
    if LAYERS[s] == "enclaved.services" and LAYERS[d] == "enclaved.engine" and dst != "enclaved.engine":
        return "services use the engine's public types (enclaved.engine) only, never its internals"
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def check(roots: list[Path], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Every broken rule in the tree, one line each (empty when the layout holds)."""
    modules = find_modules(roots, packages)
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            shown = next(path.relative_to(root.parent) for root in roots if path.is_relative_to(root))
            problems.append(f"{shown}: {lines} lines, over {MAX_LINES}; split it")
        for imp in imports_of(name, path, modules):
            edges.setdefault(name, set()).add(imp.target)
            why = violations(imp)
            if why:
                problems.append(f"{name} line {imp.line} imports {imp.target}: {why}")
    for component in cycles(edges):
        problems.append("import cycle: " + " ↔ ".join(component))
    return problems


def test_the_layout_holds() -> None:
    problems = check(SOURCE_ROOTS)
    assert not problems, "\n".join(problems)


def test_every_daemon_module_is_in_a_layer() -> None:
    modules = find_modules(SOURCE_ROOTS, ("enclaved",))
    loose = [m for m in modules if m not in (*ROOT_MODULES, *SHARED) and _layer(m) is None and not _within(m, AUDIT)]
    assert not loose, f"modules in no layer: {loose}"


# ---- the checker itself ---------------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> list[Path]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return [tmp_path / "server", tmp_path / "tui", tmp_path / "proto"]


def test_checker_finds_the_daemon_importing_the_client(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "server/enclaved/__init__.py": "",
            "server/enclaved/transport/__init__.py": "",
            "server/enclaved/transport/lock.py": "def f():\n    from enclave.paths import x\n",
            "tui/enclave/__init__.py": "",
            "tui/enclave/paths.py": "x = 1\n",
        },
    )
    (problem,) = check(roots)
    assert problem.startswith("enclaved.transport.lock line 2 imports enclave.paths: the daemon and the client never import")


def test_checker_finds_a_layer_reaching_up_or_past_the_engine(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "server/enclaved/__init__.py": "",
            "server/enclaved/domain/__init__.py": "",
            "server/enclaved/domain/prompt.py": "from ..llama import Model\n",
            "server/enclaved/engine/__init__.py": "",
            "server/enclaved/services/__init__.py": "",
            "server/enclaved/services/convert.py": "from enclaved.engine.scheduler import Finish\n",
            "server/enclaved/engine/scheduler.py": "from enclaved.services import convert\n\nFinish = 1\n",
            "server/enclaved/llama/__init__.py": "Model = 1\n",
        },
    )
    problems = check(roots)
    assert "enclaved.domain.prompt line 1 imports enclaved.llama: enclaved.domain may not reach past the engine into llama" in problems
    assert (
        "enclaved.engine.scheduler line 1 imports enclaved.services.convert: enclaved.engine may not import enclaved.services, a layer above it"
        in problems
    )
    assert (
        "enclaved.services.convert line 1 imports enclaved.engine.scheduler: services use the engine's public types (enclaved.engine) only, never its internals"
        in problems
    )
    assert "import cycle: enclaved.engine.scheduler ↔ enclaved.services.convert" in problems


def test_checker_finds_a_remote_engine_touching_llama(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "server/enclaved/__init__.py": "",
            "server/enclaved/engine/__init__.py": "",
            "server/enclaved/engine/remote/__init__.py": "",
            "server/enclaved/engine/remote/client.py": "from enclaved.llama import Model\n",
            "server/enclaved/llama/__init__.py": "Model = 1\n",
        },
    )
    (problem,) = check(roots)
    assert problem == "enclaved.engine.remote.client line 1 imports enclaved.llama: remote engines speak HTTP; they never touch llama.cpp"


def test_checker_finds_a_cycle_through_type_checking_imports(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "server/enclaved/__init__.py": "",
            "server/enclaved/domain/__init__.py": "",
            "server/enclaved/domain/hub.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .agents import Agent\n",
            "server/enclaved/domain/agents.py": "from .hub import EventHub\n",
        },
    )
    assert check(roots) == ["import cycle: enclaved.domain.agents ↔ enclaved.domain.hub"]


def test_checker_finds_a_widget_reading_protobuf(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "proto/enclave_contract/__init__.py": "",
            "proto/enclave_contract/v1/__init__.py": "",
            "proto/enclave_contract/v1/chat_pb2.py": "ChatEvent = 1\n",
            "tui/enclave/__init__.py": "",
            "tui/enclave/protocol.py": "from enclave_contract.v1 import chat_pb2\n",
            "tui/enclave/widgets/__init__.py": "",
            "tui/enclave/widgets/pane.py": "from enclave_contract.v1 import chat_pb2\nfrom enclave.protocol import x\n",
        },
    )
    assert check(roots) == [
        "enclave.widgets.pane line 1 imports enclave_contract.v1.chat_pb2: only enclave.protocol and enclave.convert see the stubs; take view models from enclave.views",
        "enclave.widgets.pane line 2 imports enclave.protocol: screens and widgets are fed by the session (messages, view models), never by the connection",
    ]


def test_checker_finds_a_long_module(tmp_path: Path) -> None:
    roots = _tree(tmp_path, {"tui/enclave/__init__.py": "", "tui/enclave/app.py": "x = 1\n" * (MAX_LINES + 1)})
    assert check(roots) == [f"tui/enclave/app.py: {MAX_LINES + 1} lines, over {MAX_LINES}; split it"]
