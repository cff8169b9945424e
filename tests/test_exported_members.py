"""The public surface is pinned: ``streamkit.__all__`` is exactly what the package exposes."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import types

import streamkit


def test_all_is_sorted_and_exactly_the_public_names():
    public = sorted(
        name
        for name, value in vars(streamkit).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations
    )
    # __version__ is public by convention though it starts with an underscore
    assert list(streamkit.__all__) == sorted(streamkit.__all__)
    assert sorted(set(streamkit.__all__) - {"__version__"}) == public
    for name in streamkit.__all__:
        assert getattr(streamkit, name) is not None


def test_every_module_declares_all_and_exports_only_what_it_has():
    for info in pkgutil.walk_packages(streamkit.__path__, prefix="streamkit."):
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), f"{info.name} does not declare __all__"
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{info.name}.__all__ names {missing}, which it does not define"


def test_import_streamkit_does_not_import_optional_dependencies():
    import subprocess
    import sys

    code = "import sys, streamkit; print(sorted(m for m in ('ipywidgets', 'IPython') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
