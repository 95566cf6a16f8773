"""MXNet's deprecated Python operators `mx.operator.PythonOp`, `NumpyOp` and `NDArrayOp` (pre-CustomOp code still
calls them): each instance becomes a CustomOpProp registered under an op_type of its own, so it runs through the
same Python-op machinery as CustomOp (forward and backward inside the graph)."""
import itertools
import warnings

import numpy as np

from ..symbol.symbol import create_symbol
from .operator import CustomOp, CustomOpProp, register

__all__ = ["PythonOp", "NumpyOp", "NDArrayOp"]

_COUNTER = itertools.count()


class PythonOp:
    """Base class of MXNet's legacy Python operators (deprecated there in favour of CustomOp). Override forward,
    backward, infer_shape, list_outputs, list_arguments and need_top_grad."""

    def __init__(self, need_top_grad=True):
        self.info_ = None
        self.need_top_grad_ = need_top_grad
        warnings.warn("PythonOp has been deprecated. Please use CustomOp")

    def __call__(self, *args, **kwargs):
        return self.get_symbol(*args, **kwargs)

    def get_symbol(self, *args, **kwargs):
        """The op applied to the input symbols `args` (keyword `name`)."""
        op_type = "_legacy_%s_%d" % (type(self).__name__, next(_COUNTER))
        register(op_type)(_prop_class(self))
        return create_symbol("Custom", *args, op_type=op_type, name=kwargs.get("name"))

    def forward(self, in_data, out_data):
        out_data[0][:] = in_data[0]

    def backward(self, out_grad, in_data, out_data, in_grad):
        in_grad[0][:] = 1.0

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]]

    def list_outputs(self):
        return ["output"]

    def list_arguments(self):
        return ["data"]

    def need_top_grad(self):
        return self.need_top_grad_

    # how forward/backward see the arrays: numpy copies (NumpyOp) or the NDArrays themselves (NDArrayOp)
    def _view(self, arrays):
        return list(arrays)

    def _write(self, kernel, req, destinations, values):
        for dst, r, value in zip(destinations, req, values):
            if value is not dst:
                kernel.assign(dst, r, value)


class NumpyOp(PythonOp):
    """A legacy operator whose forward/backward compute on numpy arrays."""

    def __init__(self, need_top_grad=True):
        super().__init__(need_top_grad)
        warnings.warn("NumpyOp has been deprecated. Please use CustomOp")

    def _view(self, arrays):
        return [np.array(a.asnumpy()) for a in arrays]


class NDArrayOp(PythonOp):
    """A legacy operator whose forward/backward compute on NDArrays."""

    def __init__(self, need_top_grad=True):
        super().__init__(need_top_grad)
        warnings.warn("NDArrayOp has been deprecated. Please use CustomOp")


def _prop_class(legacy):
    class _Kernel(CustomOp):
        def forward(self, is_train, req, in_data, out_data, aux):
            outs = legacy._view(out_data)
            legacy.forward(in_data=legacy._view(in_data), out_data=outs)
            legacy._write(self, req, out_data, outs)

        def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
            grads = legacy._view(in_grad)
            legacy.backward(out_grad=legacy._view(out_grad), in_data=legacy._view(in_data),
                            out_data=legacy._view(out_data), in_grad=grads)
            legacy._write(self, req, in_grad, grads)

    class _Prop(CustomOpProp):
        def __init__(self):
            super().__init__(need_top_grad=legacy.need_top_grad())

        def list_arguments(self):
            return legacy.list_arguments()

        def list_outputs(self):
            return legacy.list_outputs()

        def infer_shape(self, in_shape):
            ins, outs = legacy.infer_shape(in_shape)
            return ins, outs, []

        def create_operator(self, ctx, in_shapes, in_dtypes):
            return _Kernel()

    return _Prop
