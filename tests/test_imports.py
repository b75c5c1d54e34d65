"""`qa --help` stays fast: the CLI module imports no heavy dependency."""

from __future__ import annotations

import subprocess
import sys

import qa

HEAVY = ("chromadb", "llama_index", "gradio", "slack_bolt", "openai", "torch", "sentence_transformers")


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    code = "import sys, qa.cli; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_public_api_is_exported() -> None:
    for name in qa.__all__:
        assert hasattr(qa, name), name
    public = {n for n in vars(qa) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(qa.__all__)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the qa modules it imports when run, at the top or inside a function (a lazy import is still a dependency)."""
    import ast
    from pathlib import Path

    root = Path(qa.__file__).parent
    names = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = graph.setdefault(name, set())
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
                       for n in ast.walk(block)}  # `if TYPE_CHECKING:` imports are for the type checker, not run
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            found = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module for a in node.names]
            for dep in found:
                while dep not in names and "." in dep:
                    dep = dep.rsplit(".", 1)[0]
                if dep in names and dep != name and not name.startswith(dep + "."):
                    deps.add(dep)
    return graph


def test_the_import_graph_has_no_cycles_and_front_ends_sit_on_top() -> None:
    graph = _import_graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
    front_ends = ("qa.cli", "qa.ui", "qa.slack", "qa.api", "qa.eval", "qa.check", "qa.local_llm")
    for name, deps in graph.items():
        if not name.startswith(front_ends):
            assert not {d for d in deps if d.startswith(front_ends)}, f"{name} imports a front end"
