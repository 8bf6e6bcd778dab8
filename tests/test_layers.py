"""The import arrows point one way (DESIGN.md, "Layout"): every module of xpnet imports
only from its own package and the layers below it, lazily or for typing included."""

from __future__ import annotations

import ast
from pathlib import Path

import xpnet

#: Each top-level part of xpnet and its layer: a part may import from lower layers only.
LAYERS = {
    "backends": 0, "config": 0, "random": 0, "_version": 0, "_limits": 0,
    "_paths": 0, "_numbers": 0,
    "functional": 1, "testing": 1, "_atomic": 1,
    "nn": 2,
    "data": 3, "models": 3, "optim": 3, "onnx": 3,
    "train": 4, "viz": 4,
    "distributed": 5,
    "bench": 6,
    "cli": 7,
    "": 8, "__main__": 9,  # xpnet/__init__.py gathers the public names; python -m xpnet
}  # fmt: skip


def _imports(path: Path, package: str) -> list[str]:
    """The xpnet modules ``path`` imports anywhere in it (functions and TYPE_CHECKING
    blocks included), as absolute dotted names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found += [n for n in names if n.split(".")[0] == "xpnet"]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "xpnet"]
    return found


def _part(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_import_arrows_point_one_way() -> None:
    root = Path(xpnet.__file__).resolve().parent
    wrong = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        own = _part(module)
        assert own in LAYERS, f"{module}: add its part {own!r} to LAYERS"
        for target in _imports(path, package):
            other = _part(target)
            if other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module} imports {target} ({own} is not above {other})")
    assert not wrong, "\n".join(wrong)
