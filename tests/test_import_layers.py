"""The package's imports, function-level ones included, run downward only: no circle, and no import against the
layer order declared once here (docs/design.md and CONTRIBUTING.md describe the same order)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inceptionzoo"

# lowest first; a module may import modules of its own layer or below. Names are dotted paths below the package;
# a folder name stands for every module inside it
LAYERS = (
    ("_registry", "_validation", "sizes", "checkpoint", "precision", "preprocessing", "images"),
    ("layers", "complexity"),  # complexity counts fused branches one by one (layers.branches_one_by_one)
    ("hub",),
    ("_features", "_builder"),
    ("models",),
    ("deploy",),
    ("_factory",),
    ("fid",),
    ("train",),
    ("cli", "__init__", "__main__"),
)
# imports that the order allows but that would tie a layer to another's internals
FORBIDDEN = (("models", "hub"), ("hub", "models"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(name == member or name.startswith(member + ".") for member in members):
            return index
    raise AssertionError(f"inceptionzoo.{name} is in no layer of test_import_layers.LAYERS: add it there")


def imports_of(path: Path, modules: set[str], source: str | None = None) -> set[str]:
    """The package's modules that ``path`` (or ``source`` as if it were that file) imports anywhere in its body,
    inside functions too."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                prefix = ".".join(["inceptionzoo", *base])
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.startswith("inceptionzoo."):
                inner = target.removeprefix("inceptionzoo.")
                if inner in modules:
                    found.add(inner)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_no_import_runs_against_the_layer_order():
    wrong = []
    for module, imported in import_graph().items():
        for target in sorted(imported):
            if module in ("__init__", "__main__") or target.startswith(module + "."):
                continue  # the lazy public API and a package's own submodules
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} imports {target}, a layer above it")
            for low, high in FORBIDDEN:
                if layer_of(module) == layer_of(low) and module.split(".")[0] == low and target.startswith(high):
                    wrong.append(f"{module} imports {target}: {low} must not know {high}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    graph = import_graph()
    circles = set()

    def visit(node: str, path: list[str]) -> None:
        for target in graph.get(node, ()):
            if target in path:
                circle = path[path.index(target) :]
                start = circle.index(min(circle))
                circles.add(" -> ".join(circle[start:] + circle[:start]))
            elif len(path) < 12:
                visit(target, [*path, target])

    for module in graph:
        visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(sorted(circles))


@pytest.mark.parametrize("wrong_import", ["from ..train import fit", "from ..deploy import quantize"])
def test_an_upward_import_is_caught(wrong_import):
    """The check itself: a model file that imported training or deployment code would fail it."""
    module = "models.toy_family"
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")} | {"train", "deploy"}
    imported = imports_of(PACKAGE / "models" / "toy_family.py", modules, source=wrong_import)
    assert imported and all(layer_of(target) > layer_of(module) for target in imported)
