"""The Tweepy tutorial runs as written: as an example script and as a notebook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_tutorial_script_runs_against_the_local_server():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMKIT_")}
    env["TUTORIAL_STATUSES"] = "15"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tweepy_tutorial.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) >= 15
    assert "received" in proc.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_notebook_runs_top_to_bottom(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    # Committed without outputs (stale outputs and secrets never land in git).
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"
    # Run the kernel from a child process: its ZeroMQ sockets then can't leak into this one.
    script = (
        "import sys, nbformat, nbclient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=120, kernel_name='python3',\n"
        "    resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(nb, sys.argv[3])\n"
    )
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code")
