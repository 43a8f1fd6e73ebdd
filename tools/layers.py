"""edgecc's layers: their order, the imports between files, and a picture of them.

The layer order is defined here, once (`LAYERS`, bottom first). A module may import modules of
its own layer or of layers below it, never above; `tests/test_layering.py` checks every import of
every module under edgecc/, passes/ and targets/ (module-level and inside functions; imports
under `if TYPE_CHECKING:` never run and do not count) against it, and checks that no two files import each other through any chain, except a package's
`__init__` importing its own submodules for registration (the line says `(registration)`).

    python3 tools/layers.py            # check, and draw docs/layers.png
    python3 tools/layers.py --check    # check only
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it is installed as
SOURCE_FOLDERS = {"edgecc": "edgecc", "passes": "edgecc.passes", "targets": "edgecc.targets"}

#: (layer, description, module prefixes), bottom first; a module belongs to the layer of its longest prefix
LAYERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("base", "errors, atomic files, output comparison",
     ("edgecc.errors", "edgecc._files", "edgecc.compare")),
    ("ir", "the IR, its op registry, integer arithmetic of quantized ops",
     ("edgecc.ir",)),
    ("frontend", "ONNX -> IR", ("edgecc.frontend",)),
    ("passes", "IR -> IR", ("edgecc.passes",)),
    ("targets", "hardware identity, toolchains, policy", ("edgecc.targets",)),
    ("runtime", "load and run built libraries (native, emulated, deploy runner)", ("edgecc.runtime",)),
    ("lower", "kernel plan, TE/TIR kernels, schedule rules, Relax module, build", ("edgecc.lower",)),
    ("records", "tuning logs and the tuned-schedule lookup handed to lowering",
     ("edgecc.tune.database", "edgecc.tune.apply")),
    ("driver", "the compile pipeline", ("edgecc.driver", "edgecc")),
    ("workflows", "quantization and tuning, which drive the driver", ("edgecc.quant", "edgecc.tune")),
    ("cli", "argument parsing and presentation", ("edgecc.cli", "edgecc.__main__", "edgecc.progress")),
]
LAYER_RANK = {name: rank for rank, (name, _, _) in enumerate(LAYERS)}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a module or package of the scanned tree)
    line: int
    registration: bool  # a package __init__ importing its own submodule for registration

    def where(self, modules: dict[str, Path]) -> str:
        path = modules[self.source]
        return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{self.line}"


def layer_of(module: str) -> str:
    best = max((p for _, _, prefixes in LAYERS for p in prefixes if module == p or module.startswith(p + ".")),
               key=len, default=None)
    if best is None:
        raise KeyError(f"module {module} is in no layer: add it to tools/layers.py LAYERS")
    return next(name for name, _, prefixes in LAYERS if best in prefixes)


def find_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every .py file of the source folders."""
    modules = {}
    for folder, package in SOURCE_FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    package = module if _is_package(module, modules) else module.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{node.module}" if node.module else package


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The scanned module `name` is, or lies in (None for third-party modules)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for annotations only,
    which never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(module: str, modules: dict[str, Path]) -> list[Import]:
    """Every import of edgecc modules in `module`, at module level and inside functions (imports
    under `if TYPE_CHECKING:` are for annotations only and do not count)."""
    path = modules[module]
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in _runtime_nodes(ast.parse(source, str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, modules)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        if not targets:
            continue
        text = "\n".join(lines[node.lineno - 1:node.end_lineno])
        for name in targets:
            target = _known(name, modules)
            if target is None or target == module:
                continue
            registration = (_is_package(module, modules) and target.startswith(module + ".")
                            and "(registration)" in text)
            found.append(Import(module, target, node.lineno, registration))
    return found


def all_imports(modules: dict[str, Path] | None = None) -> list[Import]:
    modules = modules if modules is not None else find_modules()
    return [imp for module in modules for imp in imports_of(module, modules)]


def upward_imports(imports: list[Import]) -> list[Import]:
    """Imports of a module in a higher layer than the importing one."""
    return [i for i in imports if LAYER_RANK[layer_of(i.target)] > LAYER_RANK[layer_of(i.source)]]


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of files that import each other through some chain (registration imports left out)."""
    import networkx as nx

    graph = nx.DiGraph((i.source, i.target) for i in imports if not i.registration)
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def problems(modules: dict[str, Path] | None = None) -> list[str]:
    """One line per upward import and per import cycle; empty when the layering holds."""
    modules = modules if modules is not None else find_modules()
    imports = all_imports(modules)
    lines = [f"{i.where(modules)}: {i.source} ({layer_of(i.source)}) imports {i.target} ({layer_of(i.target)}), "
             f"a higher layer" for i in upward_imports(imports)]
    lines += ["import cycle: " + " <-> ".join(cycle) for cycle in import_cycles(imports)]
    return lines


# ----- the picture ------------------------------------------------------------------------------
def _boxes(modules: dict[str, Path]) -> dict[str, str]:
    """Module -> box label: the folder its file lies in (top-level files of edgecc/ are boxes of their
    own); a folder whose files lie in several layers is split, the smaller parts naming their files."""
    groups: dict[tuple[str, str], list[str]] = {}
    for module, path in modules.items():
        folder = path.parent.relative_to(ROOT if path.is_relative_to(ROOT) else path.parents[2]).as_posix()
        key = (path.name if folder == "edgecc" else folder + "/", layer_of(module))
        groups.setdefault(key, []).append(module)
    largest = {}
    for (folder, _), members in groups.items():
        largest[folder] = max(largest.get(folder, 0), len(members))
    labels = {}
    for (folder, _), members in groups.items():
        label = f"edgecc/{folder}" if folder.endswith(".py") else folder
        if len(members) < largest[folder]:
            label = folder + "{" + ",".join(sorted(modules[m].stem for m in members)) + "}"
        labels.update({m: label for m in members})
    return labels


def draw(path: Path, modules: dict[str, Path] | None = None) -> None:
    """Folders as boxes, one row per layer (bottom layer at the bottom), imports as arrows
    (width grows with the number of imports; red when an import runs upward)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    modules = modules if modules is not None else find_modules()
    imports = all_imports(modules)
    label = _boxes(modules)
    boxes = {label[m]: layer_of(m) for m in modules}
    counts = Counter((label[i.source], label[i.target]) for i in imports)
    graph = nx.DiGraph()
    graph.add_nodes_from(boxes)
    for (a, b), n in counts.items():
        if a != b:
            graph.add_edge(a, b, weight=n, upward=LAYER_RANK[boxes[b]] > LAYER_RANK[boxes[a]])
    rows: dict[str, list[str]] = {}
    for box in sorted(boxes):
        rows.setdefault(boxes[box], []).append(box)
    pos = {}
    for name, _, _ in LAYERS:
        row = rows.get(name, [])
        for k, box in enumerate(row):
            pos[box] = ((k + 1) / (len(row) + 1) * 10, LAYER_RANK[name] * 1.4)
    fig, ax = plt.subplots(figsize=(15, 1.1 * len(LAYERS) + 1))
    for name, description, _ in LAYERS:
        ax.text(-0.4, LAYER_RANK[name] * 1.4, f"{name}\n{description}", ha="right", va="center", fontsize=8,
                color="#555555")
    edges = list(graph.edges(data=True))
    nx.draw_networkx_edges(graph, pos, ax=ax, edgelist=[(a, b) for a, b, _ in edges], node_size=2600,
                           width=[0.6 + 0.25 * min(d["weight"], 12) for _, _, d in edges],
                           edge_color=["#d62728" if d["upward"] else "#7f8ca3" for _, _, d in edges],
                           arrowsize=10, connectionstyle="arc3,rad=0.08", alpha=0.75)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7,
                            bbox={"boxstyle": "round,pad=0.35", "fc": "#eaf1fb", "ec": "#3b7dd8"})
    ax.set_xlim(-4.5, 10.5)
    ax.set_title("edgecc layers (bottom first): folders as boxes, imports as arrows (red: upward)")
    ax.axis("off")
    fig.tight_layout()
    sys.path.insert(0, str(ROOT))
    from edgecc._files import atomic_output

    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the layering, draw nothing")
    parser.add_argument("--output", default=str(ROOT / "docs" / "layers.png"), help="where to draw the picture")
    args = parser.parse_args(argv)
    found = problems()
    for line in found:
        print(line)
    if not args.check:
        draw(Path(args.output))
        print(f"wrote {args.output}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
