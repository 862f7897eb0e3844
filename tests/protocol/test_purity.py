"""protocol/ stays sans-IO: no I/O, clock, global randomness, async code or printing."""

from __future__ import annotations

import ast
import pathlib

import pytest

PROTOCOL = pathlib.Path(__file__).resolve().parents[2] / "peerpigeon" / "protocol"

BANNED_MODULES = {
    "asyncio",
    "anyio",
    "trio",
    "socket",
    "selectors",
    "threading",
    "multiprocessing",
    "subprocess",
    "time",
    "random",
    "secrets",
    "aiortc",
    "aioice",
    "websockets",
    "urllib",
    "http",
    "requests",
    "ipywidgets",
    "anywidget",
    "sqlite3",
    "logging",
    "os",
    "uuid",
}
BANNED_CALLS = {"print", "open", "input", "id", "hash"}


def _modules() -> list[pathlib.Path]:
    return sorted(PROTOCOL.rglob("*.py"))


def _violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in BANNED_MODULES:
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.AsyncFunctionDef | ast.Await):
            found.append(f"{path.name}:{node.lineno} async code")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in BANNED_CALLS
        ):
            found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
        if (
            isinstance(node, ast.While)
            and isinstance(node.test, ast.Constant)
            and node.test.value is True
        ):
            found.append(f"{path.name}:{node.lineno} while True")
    return found


def test_protocol_package_exists() -> None:
    assert len(_modules()) >= 5


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_module_is_pure(path: pathlib.Path) -> None:
    assert _violations(path) == []


def test_checker_catches_a_violation(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random as r\nasync def f():\n    print(1)\n")
    assert len(_violations(bad)) == 4  # time, random, async def, print
