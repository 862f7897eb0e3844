"""Every notebook in notebooks/ runs headlessly from top to bottom without an error.

Each is executed with nbclient on a fresh ``python3`` kernel (ipykernel), in a scratch
directory, with a time limit per cell and in all; outputs are checked for error outputs
and tracebacks on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 60
NOTEBOOK_BUDGET_S = 60.0  # each notebook's cells, all together (kernel start-up excluded)


def test_the_tutorials_are_there() -> None:
    names = [nb.name for nb in NOTEBOOKS]
    assert "01-quickstart.ipynb" in names
    assert "02-simulation.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:  # the 'notebook' extra
        pytest.fail(f"{err.name} is missing: pip install -e '.[notebook]'", pytrace=False)
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own deprecation notice
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # untyped package
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with client.setup_kernel():
        start = time.monotonic()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        elapsed = time.monotonic() - start
    print(f"{path.name}: {len(nb.cells)} cells in {elapsed:.1f} s")
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output.get("name") == "stderr" and "Traceback" in output.get("text", ""):
                problems.append(f"cell {index}: traceback on stderr:\n{output['text']}")
    assert not problems, "\n".join(problems)
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.1f} s"
