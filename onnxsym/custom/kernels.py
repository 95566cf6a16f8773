"""Kernels of custom-op nodes: what the Python op inside the ORT graph calls, found by the node's `key`.

A kernel holds one CustomOp instance (created once per lowered node, as MXNet creates one per bind) and turns the
numpy arrays ORT hands over into NDArrays for `forward`/`backward`, returning numpy arrays (no list conversion).
"""
import itertools
import json

import numpy as np

from ..base import MXNetError
from ..context import cpu

__all__ = ["Kernel", "new_kernel", "get_kernel"]

_KERNELS = {}
_IDS = itertools.count()


def new_kernel(prop, op_type, kwargs, in_shapes, in_dtypes, num_args, is_train):
    """Register a kernel; returns its key (a JSON string naming the op, its arguments and the mode)."""
    key = json.dumps({"op_type": op_type, "kwargs": dict(kwargs), "train": bool(is_train), "id": next(_IDS)},
                     sort_keys=True)
    _KERNELS[key] = Kernel(prop, op_type, in_shapes, in_dtypes, num_args, is_train)
    return key


def get_kernel(key):
    """The kernel of a node key; a key from another process (a saved .onnx) gets a new kernel from the
    registered op type and arguments it names."""
    kernel = _KERNELS.get(key)
    if kernel is None:
        try:
            spec = json.loads(key)
            op_type, kwargs, is_train = spec["op_type"], spec["kwargs"], spec["train"]
        except (ValueError, KeyError, TypeError):
            raise MXNetError("Custom op node key %r does not name an op type" % (key,)) from None
        from .operator import get_prop
        prop_cls = get_prop(op_type)
        if prop_cls is None:
            raise MXNetError("Custom op_type '%s' is not registered: import the module that registers it with "
                             "mx.operator.register('%s')" % (op_type, op_type))
        kernel = _KERNELS[key] = Kernel(prop_cls(**kwargs), op_type, None, None, None, is_train)
    return kernel


class Kernel:
    def __init__(self, prop, op_type, in_shapes, in_dtypes, num_args, is_train):
        self.prop = prop
        self.op_type = op_type
        self.num_args = num_args if num_args is not None else len(prop.list_arguments())
        self.is_train = is_train
        self.num_outputs = len(prop.list_outputs())
        self._op = None
        if in_shapes is not None:
            self._op = prop.create_operator(cpu(), [list(s) for s in in_shapes],
                                            [np.dtype(t).type for t in in_dtypes])

    @property
    def op(self):
        """The CustomOp (created at the first call for kernels rebuilt from a saved model's key)."""
        return self._op

    def _ensure_op(self, arrays):
        if self._op is None:
            self._op = self.prop.create_operator(cpu(), [list(a.shape) for a in arrays[: self.num_args]],
                                                 [a.dtype.type for a in arrays[: self.num_args]])

    def _outputs(self, inputs, fill=np.empty):
        """Output arrays shaped and typed by the prop for these inputs (uninitialised, as MXNet's out_data)."""
        shapes = [list(a.shape) for a in inputs]
        out_shapes = self.prop.infer_shape(shapes[: self.num_args])[1]
        out_types = self.prop.infer_type([a.dtype.type for a in inputs[: self.num_args]])[1]
        return [fill(tuple(s), np.dtype(t)) for s, t in zip(out_shapes, out_types)]

    def placeholder_outputs(self, arrays, forward):
        """Zeros shaped like the outputs, returned to ORT when the user's code raised (the error is re-raised
        after the run)."""
        if not forward:
            first = self.num_outputs
            return tuple(np.zeros_like(a) for a in arrays[first:first + self.num_args])
        try:
            outputs = self._outputs(arrays, np.zeros)
        except Exception:
            outputs = [np.zeros_like(arrays[0])] * self.num_outputs
        return tuple(outputs) + tuple(np.array(a) for a in arrays[self.num_args:])

    def forward(self, *arrays):
        """arrays: arguments then aux states; returns the outputs then the aux states as the forward left them."""
        from ..runtime.ndarray import NDArray
        self._ensure_op(arrays)
        ctx = cpu()
        in_data = [NDArray(np.ascontiguousarray(a), ctx) for a in arrays[: self.num_args]]
        aux = [NDArray(np.ascontiguousarray(a), ctx) for a in arrays[self.num_args:]]
        out_data = [NDArray(o, ctx) for o in self._outputs(arrays)]
        expected = [(o.shape, o.dtype) for o in out_data + aux]
        self.op.forward(is_train=self.is_train, req=["write"] * len(out_data), in_data=list(in_data),
                        out_data=list(out_data), aux=list(aux))
        return self._results(out_data + aux, expected, ["out_data[%d]" % i for i in range(len(out_data))] +
                             ["aux[%d]" % i for i in range(len(aux))])

    def backward(self, *arrays, req=None):
        """arrays: head gradients (one per output), arguments, aux states (as the forward left them), outputs;
        req: per argument, 'write' or 'null' (no gradient wanted; its in_grad is discarded)."""
        from ..runtime.ndarray import NDArray
        self._ensure_op(arrays[self.num_outputs:])
        ctx = cpu()
        n_out, n_in = self.num_outputs, self.num_args + len(self.prop.list_auxiliary_states())
        wrap = lambda group: [NDArray(np.ascontiguousarray(a), ctx) for a in group]
        out_grad = wrap(arrays[:n_out])
        in_data = wrap(arrays[n_out:n_out + self.num_args])
        aux = wrap(arrays[n_out + self.num_args:n_out + n_in])
        out_data = wrap(arrays[n_out + n_in:])
        in_grad = [NDArray(np.zeros_like(d._data), ctx) for d in in_data]
        expected = [(g.shape, g.dtype) for g in in_grad]
        self.op.backward(req=list(req or ["write"] * len(in_grad)), out_grad=out_grad, in_data=in_data,
                         out_data=out_data, in_grad=list(in_grad), aux=aux)
        return self._results(in_grad, expected, ["in_grad[%d]" % i for i in range(len(in_grad))])

    def _results(self, arrays, expected, names):
        """The arrays handed to the user's code, as they are now (rebinding a list element does nothing, as in
        MXNet, where the lists hold the op's own arrays). A shape or dtype ORT did not plan for would abort the
        process, so it is an error here."""
        results = []
        for array, (shape, dtype), name in zip(arrays, expected, names):
            data = array._data
            if data.shape != shape or data.dtype != dtype:
                raise MXNetError("%s of custom op '%s' became %s %s; it must stay %s %s (write into it with "
                                 "self.assign or [:])" % (name, self.op_type, data.dtype, data.shape, dtype, shape))
            results.append(data)
        return tuple(results)
