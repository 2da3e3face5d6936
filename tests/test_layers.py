"""The layer rule of docs/ARCHITECTURE.md: a module imports only from its own layer or the layers
below it. Deployment (archives, spaCy) thus needs neither the trainer nor the CLI."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "structkd_plugin"

# Lowest first; a module's layer is its subpackage, or its own name for a top-level module.
LAYERS = [
    {"__init__", "config", "file_safety", "progress", "weights"},
    {"structures"},
    {"data"},
    {"modules"},
    {"models"},
    {"archival"},
    {"distillation"},
    {"training"},
    {"spacy_components"},
    {"commands", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def layer_of(module: str) -> str:
    """`structkd_plugin.models.tagger` -> "models"; `structkd_plugin` -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """The structkd_plugin modules `path` imports, anywhere in it, with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("structkd_plugin"):
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("structkd_plugin")]
    return found


def test_every_module_belongs_to_a_layer():
    names = {path.stem if path.parent == PACKAGE else path.relative_to(PACKAGE).parts[0] for path in PACKAGE.rglob("*.py")}
    assert names <= set(RANK), f"modules in no layer: {sorted(names - set(RANK))}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        source = layer_of(".".join(relative.parts).removesuffix(".__init__"))
        for module, line in imports_of(path):
            if RANK[layer_of(module)] > RANK[source]:
                upward.append(f"{relative}.py:{line} ({source}) imports {module} ({layer_of(module)})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from structkd_plugin.commands.cli import cli\n")
    assert imports_of(module) == [("structkd_plugin.commands.cli", 2)]
    assert RANK[layer_of("structkd_plugin.commands.cli")] > RANK[layer_of("structkd_plugin.models.tagger")]


def test_distillation_names_no_model_class():
    """Distillation sees models through the `Model` API and their typed scores only."""
    allowed = {"structkd_plugin.models.model", "structkd_plugin.models.scores"}
    named = [
        f"{path.name}:{line} imports {module}"
        for path in sorted((PACKAGE / "distillation").rglob("*.py"))
        for module, line in imports_of(path)
        if module.startswith("structkd_plugin.models") and module not in allowed
    ]
    assert not named, "\n".join(named)
