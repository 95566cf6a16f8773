"""Creation ops (_zeros, _ones, _full, _arange, _eye, _linspace): numpy references. They have no inputs, so no
gradient to check; tests/test_functional_ops.py compares them and mx.sym.zeros/... with MXNet 1.9.1."""
import numpy as np
import pytest

from .opcase import OpCase, run_case

CASES = [
    OpCase("_zeros", dict(shape=(2, 3)), {}, lambda: np.zeros((2, 3), np.float32)),
    OpCase("_zeros", dict(shape=(4,), dtype="int32"), {}, lambda: np.zeros(4, np.int32)),
    OpCase("_ones", dict(shape=(2, 1, 3), dtype="float64"), {}, lambda: np.ones((2, 1, 3))),
    OpCase("_full", dict(shape=(3, 2), value=-2.5), {}, lambda: np.full((3, 2), -2.5, np.float32)),
    OpCase("_full", dict(shape=(2,), value=7.9, dtype="int32"), {}, lambda: np.array([7, 7], np.int32)),
    OpCase("_arange", dict(start=5), {}, lambda: np.arange(5, dtype=np.float32)),
    OpCase("_arange", dict(start=1, stop=3, step=0.5, repeat=2), {},
           lambda: np.repeat(np.arange(1, 3, 0.5), 2).astype(np.float32)),
    OpCase("_arange", dict(start=10, stop=1, step=-3, dtype="int32"), {}, lambda: np.array([10, 7, 4], np.int32)),
    OpCase("_eye", dict(N=3), {}, lambda: np.eye(3, dtype=np.float32)),
    OpCase("_eye", dict(N=2, M=4, k=-1, dtype="float64"), {}, lambda: np.eye(2, 4, -1)),
    OpCase("_linspace", dict(start=0, stop=2, num=5), {}, lambda: np.linspace(0, 2, 5).astype(np.float32)),
    OpCase("_linspace", dict(start=-1, stop=1, num=4, endpoint=False), {},
           lambda: np.linspace(-1, 1, 4, endpoint=False).astype(np.float32)),
]
GRADIENT_SKIPS = {name: "no inputs: nothing to differentiate" for name in
                  ("_zeros", "_ones", "_full", "_arange", "_eye", "_linspace")}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)
