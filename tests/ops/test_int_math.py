"""Unary math on integer arrays against MXNet 1.9.1 (fixtures/make_int_math_fixtures.py): computed in double and
truncated back to the integer type, as MXNet does; ops ONNX Runtime has no float64 kernel for refuse integers with
a clear error (DEVIATIONS.md)."""
import json
import os

import pytest

import onnxsym as mx
from onnxsym.ops.elemwise import _FLOAT_ONLY

from ..fixtures.int_math_cases import OPS, VALUES, run

with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "mxnet", "int_math.json")) as _h:
    RECORDED = json.load(_h)["cases"]


@pytest.mark.parametrize("dtype", sorted(VALUES))
@pytest.mark.parametrize("op", OPS)
def test_integer_math_as_mxnet(op, dtype):
    got = run(mx, dtype, op)
    if op in _FLOAT_ONLY:
        assert got == ["error", "MXNetError"]
        with pytest.raises(mx.MXNetError, match="takes floating-point input, got %s" % dtype):
            getattr(mx.nd, op)(mx.nd.array(VALUES[dtype], dtype=dtype))
    else:
        assert got == RECORDED["%s/%s" % (dtype, op)]
