"""The registry is complete: every op has a checked forward case, a generated sym/nd function and docs."""
import dataclasses
import importlib
import pathlib

import pytest

import onnxsym as mx
from onnxsym.ops.registry import all_ops, fluent_methods, names
from . import opcase

HERE = pathlib.Path(__file__).parent


def _import_case_modules():
    for path in sorted(HERE.glob("test_*.py")):
        if path.stem != "test_registry":
            importlib.import_module("tests.ops." + path.stem)


def test_every_registered_op_has_a_forward_case():
    _import_case_modules()
    missing = sorted(set(all_ops()) - opcase.COVERED)
    assert not missing, "ops without an OpCase: %s" % ", ".join(missing)


@pytest.mark.parametrize("name", sorted(names()))
def test_generated_functions_exist(name):
    target_sym = mx.sym._internal if name.startswith("_") else mx.sym
    target_nd = mx.nd._internal if name.startswith("_") else mx.nd
    assert callable(getattr(target_sym, name)) and callable(getattr(target_nd, name))
    opcls = names()[name]
    assert opcls.__doc__ and opcls.op_name in all_ops()
    for field in dataclasses.fields(opcls):
        assert field.name in opcls._kinds


def test_fluent_methods_exist_on_symbol_and_ndarray():
    for method in fluent_methods():
        assert callable(getattr(mx.sym.Symbol, method)), method
        assert callable(getattr(mx.nd.NDArray, method)), method


def test_contrib_namespace():
    for name in names():
        if name.startswith("_contrib_"):
            assert callable(getattr(mx.sym.contrib, name[len("_contrib_"):]))
