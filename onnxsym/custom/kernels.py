"""Kernels of custom-op nodes: what the Python op inside the ORT graph calls, found by the node's `key`.

A kernel holds one CustomOp instance (created once per lowered node, as MXNet creates one per bind) and turns the
numpy arrays ORT hands over into NDArrays for `forward`/`backward`, returning numpy arrays (no list conversion).

A kernel lives as long as the lowered graph whose node calls it (`Lowered.kernels`, kept by the executor, the
compile caches and the training graphs beside their sessions); the registry only finds it by key (weakly), so
binding and freeing graphs leaves nothing behind.
"""
import itertools
import json
import weakref

import numpy as np

from ..base import MXNetError
from ..context import cpu
from ..runtime.ndarray import NDArray
from .operator import get_prop

__all__ = ["Kernel", "new_kernel", "get_kernel"]

_KERNELS = weakref.WeakValueDictionary()    # key -> Kernel of a lowered graph that is still alive
_LOADED = {}        # key -> Kernel rebuilt for a saved model's node (one per distinct key)
_IDS = itertools.count()


def new_kernel(prop, op_type, kwargs, in_shapes, in_dtypes, num_args, is_train):
    """A new kernel, found by its `key` (a JSON string naming the op, its arguments and the mode) while the
    caller keeps it alive."""
    key = json.dumps({"op_type": op_type, "kwargs": dict(kwargs), "train": bool(is_train), "id": next(_IDS)},
                     sort_keys=True)
    kernel = _KERNELS[key] = Kernel(key, prop, op_type, in_shapes, in_dtypes, num_args, is_train)
    return kernel


def get_kernel(key):
    """The kernel of a node key; a key from another process (a saved .onnx) gets a new kernel from the
    registered op type and arguments it names."""
    kernel = _KERNELS.get(key) or _LOADED.get(key)
    if kernel is None:
        try:
            spec = json.loads(key)
            op_type, kwargs, is_train = spec["op_type"], spec["kwargs"], spec["train"]
        except (ValueError, KeyError, TypeError):
            raise MXNetError("Custom op node key %r does not name an op type" % (key,)) from None
        prop_cls = get_prop(op_type)
        if prop_cls is None:
            raise MXNetError("Custom op_type '%s' is not registered: import the module that registers it with "
                             "mx.operator.register('%s')" % (op_type, op_type))
        kernel = _LOADED[key] = Kernel(key, prop_cls(**kwargs), op_type, None, None, None, is_train)
    return kernel


class Kernel:
    def __init__(self, key, prop, op_type, in_shapes, in_dtypes, num_args, is_train):
        self.key = key
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

    def _outputs(self, inputs):
        """Output arrays shaped and typed by the prop for these inputs, zero-filled: an output the user's forward
        never writes is zeros (MXNet leaves it uninitialised memory)."""
        shapes = [list(a.shape) for a in inputs]
        out_shapes = self.prop.infer_shape(shapes[: self.num_args])[1]
        out_types = self.prop.infer_type([a.dtype.type for a in inputs[: self.num_args]])[1]
        return [np.zeros(tuple(s), np.dtype(t)) for s, t in zip(out_shapes, out_types)]

    def placeholder_outputs(self, arrays, forward):
        """Zeros shaped like the outputs, returned to ORT when the user's code raised (the error is re-raised
        after the run)."""
        if not forward:
            first = self.num_outputs
            return tuple(np.zeros_like(a) for a in arrays[first:first + self.num_args])
        try:
            outputs = self._outputs(arrays)
        except Exception:
            outputs = [np.zeros_like(arrays[0])] * self.num_outputs
        return tuple(outputs) + tuple(np.array(a) for a in arrays[self.num_args:])

    def forward(self, *arrays):
        """arrays: arguments then aux states; returns the outputs then the aux states as the forward left them."""
        self._ensure_op(arrays)
        ctx = cpu()
        in_data = [NDArray(np.asarray(a, order="C"), ctx) for a in arrays[: self.num_args]]
        aux = [NDArray(np.asarray(a, order="C"), ctx) for a in arrays[self.num_args:]]
        out_data = [NDArray(o, ctx) for o in self._outputs(arrays)]
        names = self.prop.list_outputs()
        lists = (out_data, aux)
        given = [list(group) for group in lists]
        planned = [[(a.shape, a._data.dtype) for a in group] for group in lists]
        self.op.forward(is_train=self.is_train, req=["write"] * len(out_data), in_data=list(in_data),
                        out_data=given[0], aux=given[1])
        return self._results(lists, planned, given, ("out_data", "aux"),
                             (names, self.prop.list_auxiliary_states()))

    def backward(self, *arrays, req=None):
        """arrays: head gradients (one per output), arguments, aux states (as the forward left them), outputs;
        req: per argument, 'write' or 'null' (no gradient wanted; its in_grad is discarded)."""
        self._ensure_op(arrays[self.num_outputs:])
        ctx = cpu()
        n_out, n_in = self.num_outputs, self.num_args + len(self.prop.list_auxiliary_states())
        wrap = lambda group: [NDArray(np.asarray(a, order="C"), ctx) for a in group]
        out_grad = wrap(arrays[:n_out])
        in_data = wrap(arrays[n_out:n_out + self.num_args])
        aux = wrap(arrays[n_out + self.num_args:n_out + n_in])
        out_data = wrap(arrays[n_out + n_in:])
        in_grad = [NDArray(np.zeros_like(d._data), ctx) for d in in_data]
        given = list(in_grad)
        planned = [(g.shape, g._data.dtype) for g in in_grad]
        self.op.backward(req=list(req or ["write"] * len(in_grad)), out_grad=out_grad, in_data=in_data,
                         out_data=out_data, in_grad=given, aux=aux)
        return self._results((in_grad,), (planned,), (given,), ("in_grad",), (self.prop.list_arguments(),))

    @staticmethod
    def _results(lists, planned, given, list_names, names):
        """The numpy arrays of the op's own NDArrays (`lists`, of the `planned` shapes and dtypes), after the
        user's code had the lists `given`.
        An element the user rebound (`out_data[0] = x`) means assign (MXNet would drop it and leave the output
        unwritten): x's values are copied in when x has the array's shape and a dtype that casts to it. Anything
        else is an MXNetError: a shape ORT did not plan for aborts the process."""
        results = []
        for own, plan, user, list_name, labels in zip(lists, planned, given, list_names, names):
            for index, (array, (shape, dtype)) in enumerate(zip(own, plan)):
                where = "%s[%d]%s" % (list_name, index, " ('%s')" % labels[index] if index < len(labels) else "")
                if index < len(user) and user[index] is not array:
                    _assign_rebound(where, array._data, user[index])
                data = array._data
                if data.shape != shape or data.dtype != dtype:      # the user replaced the array's own buffer
                    raise MXNetError("%s became %s %s; it must stay %s %s" % (where, data.dtype, data.shape,
                                                                               dtype, shape))
                results.append(data)
        return tuple(results)


def _assign_rebound(where, target, value):
    """Copy `value`, which the user's code put in place of the op's own array `target`, into `target`."""
    data = value._data if isinstance(value, NDArray) else value
    given = "an array of shape %s (%s)" % (data.shape, data.dtype) if isinstance(data, np.ndarray) else \
        "a %s" % type(value).__name__
    if not isinstance(data, np.ndarray) or data.shape != target.shape or \
            not np.can_cast(data.dtype, target.dtype, casting="same_kind"):
        raise MXNetError("%s was set to %s; expected an NDArray of shape %s and a dtype that casts to %s "
                         "(or write into it: %s[:] = value)" % (where, given, target.shape, target.dtype,
                                                                 where.split(" ")[0]))
    np.copyto(target, data, casting="same_kind")
