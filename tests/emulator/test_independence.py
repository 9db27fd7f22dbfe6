"""The emulator stands for Microsoft: it must not share code (or a currency list) with the product."""

from __future__ import annotations

import ast
from pathlib import Path

import include.msads_emulator

EMULATOR = Path(include.msads_emulator.__file__).parent
PRODUCT = "include.msads_capi"


def imported_modules(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_emulator_module_imports_the_product():
    modules = sorted(EMULATOR.rglob("*.py"))
    assert len(modules) > 10
    offending = {
        path.name: [m for m in imported_modules(path.read_text(encoding="utf-8"))
                    if m == PRODUCT or m.startswith(PRODUCT + ".")]
        for path in modules}
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_check_sees_product_imports():
    assert imported_modules("from include.msads_capi.codes import CURRENCIES") == [
        "include.msads_capi.codes", "include.msads_capi.codes.CURRENCIES"]
    assert imported_modules("import include.msads_capi") == ["include.msads_capi"]
    assert "include.msads_capi" in imported_modules("from include import msads_capi")
