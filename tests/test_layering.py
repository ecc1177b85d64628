"""The layering's second half, which import-linter cannot see: a project import hidden inside a function.

``lint-imports`` (run by bin/test, contracts in pyproject.toml) checks the layers and that there are no
import cycles, in-function imports included. But an import made inside a function is also how a cycle gets
hidden from a reader, so the project's own modules are imported at the top of a module, except where a
registry must defer one (a broker adapter built only when configured)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("orders", "tradingdesk")
# module -> why it may import a project module inside a function
REGISTRIES: dict[str, str] = {}


def _inner_project_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.relative_to(root)}:{node.lineno} {function.name}() imports {name}"
                      for name in names if name.split(".")[0] in PROJECT]
    return found


def test_project_modules_are_imported_at_the_top_of_a_module():
    offenders = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in REGISTRIES:
                offenders += _inner_project_imports(path)
    assert offenders == [], "\n".join(offenders)


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path):
    sample = tmp_path / "orders" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("import os\n\n\ndef f():\n    import json\n    from orders.services.orders import order_submit\n"
                      "    return order_submit, json, os\n")
    assert _inner_project_imports(sample, tmp_path) == ["orders/sample.py:6 f() imports orders.services.orders"]


# -- one writer of an order's status ---------------------------------------------------------------------

WRITER = "orders/services/transitions.py"
OWN_STATUS = ("alert", "approval")         # rows with a status of their own, not an order's or a leg's


def _status_writes(path: Path) -> list[str]:
    """Assignments of ``status`` to an order or an exit leg: ``x.status = …`` (an alert's and an approval
    request's are their own), and
    ``status=`` given to ``Order(…)``, ``ExitLeg(…)`` or a queryset of either being updated or created."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if (isinstance(element, ast.Attribute) and element.attr == "status"
                            and not any(own in ast.unparse(element.value).lower() for own in OWN_STATUS)):
                        found.append(f"{where} {ast.unparse(element)} = …")
        elif isinstance(node, ast.Call) and any(k.arg == "status" for k in node.keywords):
            called = ast.unparse(node.func)
            writes = called in ("Order", "ExitLeg") or called.rsplit(".", 1)[-1] in (
                "update", "create", "get_or_create", "update_or_create")
            if writes and called.split(".")[0] in ("Order", "ExitLeg"):
                found.append(f"{where} {called}(status=…)")
    return found


def test_only_the_transition_writer_assigns_an_order_or_leg_status():
    writes = []
    for path in sorted((ROOT / "orders").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if relative != WRITER and "migrations" not in path.parts and "brokers" not in path.parts:
            writes += _status_writes(path)
    assert writes == [], "\n".join(writes)
    assert _status_writes(ROOT / WRITER), "the writer itself must be seen by the search"
