"""Layers import only downward, and no two files import each other (tools/layers.py defines the
order and does the checking; this test runs it over edgecc/, passes/ and targets/)."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def layers():
    spec = importlib.util.spec_from_file_location("layers", os.path.join(ROOT, "tools", "layers.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["layers"] = module
    spec.loader.exec_module(module)
    return module


def test_every_module_has_a_layer(layers):
    modules = layers.find_modules()
    assert "edgecc.passes.fuse" in modules and "edgecc.targets.arm" in modules and "edgecc.lower.plan" in modules
    for module in modules:
        layers.layer_of(module)  # KeyError names a module missing from LAYERS


def test_no_import_runs_upward(layers):
    modules = layers.find_modules()
    upward = [f"{i.where(modules)}: {i.source} -> {i.target}" for i in layers.upward_imports(layers.all_imports(modules))]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_files(layers):
    cycles = layers.import_cycles(layers.all_imports())
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_checker_finds_upward_imports_cycles_and_function_level_imports(layers, tmp_path):
    """A small tree with one of each problem: the checker must report exactly those."""
    files = {
        "edgecc/__init__.py": "",
        "edgecc/errors.py": "",
        "edgecc/lower/__init__.py": "from . import rules  # noqa: F401  (registration)\n",
        "edgecc/lower/rules.py": "from . import helper\n",
        "edgecc/lower/helper.py": "def f():\n    from edgecc.tune import tasks\n    from edgecc.lower import rules\n",
        "edgecc/lower/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from edgecc.driver import X\n",
        "edgecc/tune/__init__.py": "",
        "edgecc/tune/tasks.py": "import edgecc.driver\nfrom edgecc.lower import typed\n",
        "edgecc/driver.py": "from .errors import *\n",
        "passes/__init__.py": "",
        "targets/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = layers.find_modules(tmp_path)
    imports = layers.all_imports(modules)
    upward = {(i.source, i.target) for i in layers.upward_imports(imports)}
    assert upward == {("edgecc.lower.helper", "edgecc.tune.tasks")}
    assert layers.import_cycles(imports) == [["edgecc.lower.helper", "edgecc.lower.rules"]]
