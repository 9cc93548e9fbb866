"""The layout as rules, checked on the source: data flows one way through the stages, no import cycles,
no module over ~500 lines without saying why, and the light modules stay light."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "linguamix"

# Stages in flow order; a module may import its own stage or an earlier one, never a later one.
# tasks sit between the records and the config: a config names tasks, tasks know nothing of configs.
STAGES = [
    ("foundation", {"linguamix", "errors", "hardware", "proportions"}),
    ("languages", {"languages"}),
    ("mixtures", {"mixtures"}),
    ("records", {"records", "timing"}),
    ("store", {"store"}),
    ("tasks", {"tasks"}),
    ("config", {"config"}),
    ("runs", {"runs"}),
    ("data", {"data", "translate"}),
    ("models", {"models", "generate", "subgen", "tinymodel", "fastpath"}),
    ("train", {"trainer", "train"}),
    ("evaluate", {"evaluate"}),
    ("collect", {"collect"}),
    ("analysis", {"analysis", "report"}),
    ("orchestration", {"study"}),
    ("top", {"bench", "demo", "cli", "__main__"}),
]
STAGE_OF = {name: i for i, (_, names) in enumerate(STAGES) for name in names}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        parts = p.relative_to(SRC.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """linguamix modules `name` imports anywhere (top level or inside functions)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base
                if target in mods:
                    out.add(target)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in mods}
    out.discard(name)
    return out


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGE_OF[parts[1] if len(parts) > 1 else parts[0]]


def test_every_module_has_a_stage():
    unplaced = [m for m in _modules() if (m.split(".")[1] if "." in m else m) not in STAGE_OF]
    assert not unplaced, f"place these in STAGES (and in docs/architecture.md): {unplaced}"


def test_no_module_imports_a_later_stage():
    mods = _modules()
    backwards = [f"{m} ({STAGES[_stage(m)][0]}) imports {t} ({STAGES[_stage(t)][0]})"
                 for m, p in mods.items() for t in _imports(m, p, mods) if _stage(t) > _stage(m)]
    assert not backwards, "\n".join(backwards)


def test_no_import_cycles():
    mods = _modules()
    # a package's __init__ re-exporting its submodules is not a cycle between them
    graph = {m: {t for t in _imports(m, p, mods) if mods[t].name != "__init__.py"}
             for m, p in mods.items() if p.name != "__init__.py"}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_modules_stay_small_or_say_why():
    long = []
    for name, path in _modules().items():
        text = path.read_text()
        n = len(text.splitlines())
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > 520 and "lines because" not in doc:
            long.append(f"{name}: {n} lines")
    assert not long, long


@pytest.mark.parametrize("module", ["linguamix.config", "linguamix.runs", "linguamix.tasks", "linguamix.cli",
                                    "linguamix.study.state", "linguamix.analysis.options"])
def test_light_modules_do_not_import_torch(module):
    code = f"import sys, {module}; bad = [m for m in ('torch', 'transformers', 'pandas') if m in sys.modules]; " \
           "print(','.join(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imports {out}"
