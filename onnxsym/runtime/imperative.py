"""`mx.nd.<Op>`: one registered op run imperatively as a cached one-op ORT graph."""
from collections import OrderedDict

import numpy as np

from ..base import MXNetError, MXNetForwardError, MXNetIndexError
from ..util import is_np_shape
from ..lower.to_onnx import infer_all, lower_symbol
from ..ops.params import moving_average_factors
from ..ops.registry import bind_inputs, get_op, split_call
from ..symbol.infer import check_float_inputs
from ..symbol.node import Node
from ..symbol.symbol import Symbol
from .device import touch
from .ndarray import NDArray, defer, pending_of
from .sparse import is_sparse, sparse_result
from . import rng, tape
from .ort import create_session, run_error
from .pyops import raise_pending

__all__ = ["invoke"]

_CACHE = OrderedDict()
_CACHE_SIZE = 256


class _Compiled:
    """One op's cached session: its input names, output names, aux-state updates (train mode: input name ->
    (output name, momentum)), whether it samples, and the custom op kernels the session calls (kept alive)."""

    def __init__(self, session, names, lowered):
        self.session, self.names, self.output_names = session, names, lowered.output_names
        self.aux_updates = [(name, output, lowered.aux_momentum.get(name))
                            for name, output in lowered.aux_updates.items()]
        self.samples = rng.has_sampling(lowered.model)
        self.kernels = lowered.kernels


def _op_symbol(op, params, arrays):
    """The one-op Symbol of an mx.nd call, with its input shapes and dtypes."""
    names = op.input_names()
    variables = [(Node(None, name), 0) for name in names]
    node = Node(op, op.op_name.lower(), params, variables)
    symbol = Symbol([(node, i) for i in range(op.num_visible_outputs())])
    return (symbol, {n: a.shape for n, a in zip(names, arrays)},
            {n: np.dtype(a.dtype) for n, a in zip(names, arrays)})


def _compiled(op, params, arrays, ctx, train):
    # (the shape semantics are part of the key: under mx.np_shape a full reduction is 0-d, outside it (1,))
    key = (type(op), tuple(sorted(params.items())), tuple((a.shape, a.dtype) for a in arrays), ctx, train,
           is_np_shape())
    entry = _CACHE.get(key)
    if entry is not None and not rng.is_stale(entry.session):
        _CACHE.move_to_end(key)
        return entry
    names = op.input_names()
    symbol, shapes, dtypes = _op_symbol(op, params, arrays)
    check_float_inputs(symbol.outputs, dtypes)
    lowered = lower_symbol(symbol, shapes, dtypes, train_mode=train)
    entry = _Compiled(create_session(lowered.model, ctx), list(names), lowered)
    _CACHE[key] = entry
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return entry


def _deferred(op, params, slots, ctx, holder, out):
    """The results of a call whose error MXNet's engine would deliver at the next read (an invalid sampling
    parameter, or an input carrying such an error): arrays of the op's output shapes that raise it when read."""
    symbol, shapes, dtypes = _op_symbol(op, params, slots)
    _, entry_shapes, entry_dtypes = infer_all(symbol, shapes, dtypes)
    keys = [(id(node), index) for node, index in symbol.outputs]
    if out is not None:
        outs = out if isinstance(out, (list, tuple)) else [out]
        for dst in outs:
            dst._pending = holder
        return out
    arrays = [NDArray(np.zeros(entry_shapes[k], entry_dtypes[k]), ctx) for k in keys]
    for array in arrays:
        array._pending = holder
    return arrays[0] if len(arrays) == 1 else arrays


def invoke(func_name, args, kwargs, out=None, ctx=None):
    """Run op `func_name` on NDArrays; returns an NDArray (or a list for several outputs). `ctx`: the device of an
    op with no input arrays (creation ops); otherwise the first input's."""
    opcls = get_op(func_name)
    kwargs = dict(kwargs)
    kwargs.pop("name", None)
    inputs, named, params = split_call(opcls, args, kwargs, lambda v: isinstance(v, NDArray))
    op = opcls.from_attrs(params)
    slots = bind_inputs(op, opcls.op_name, inputs, named)
    if op.in_place_variant is not None and slots and out is not None and \
            (out[0] if isinstance(out, (list, tuple)) else out) is slots[0]:
        op = op.in_place_variant(**op.params())     # out= overwrites input 0 before the kernel reads it again
    missing = [n for n, a in zip(op.input_names(), slots) if a is None]
    if missing:
        raise MXNetError("%s needs input(s) %s" % (opcls.op_name, ", ".join(missing)))
    for name, array in zip(op.input_names(), slots):
        if 0 in array.shape and not is_np_shape():
            # MXNet 1.x (legacy shape mode) reads a 0 dimension as unknown: "Operator ... inferring shapes failed"
            raise MXNetError("Operator %s: input '%s' has shape %s with a zero dimension; MXNet 1.x reads 0 as an "
                             "unknown dimension and runs no operator on zero-size arrays"
                             % (opcls.op_name, name, array.shape))
    ctx = slots[0].context if slots else ctx
    # train mode (mx.autograd.record() / train_mode()): Dropout drops, BatchNorm uses and updates batch statistics
    train = tape.is_training()
    holder = pending_of(slots)
    if holder is None:
        try:
            entry = _compiled(op, params, slots, ctx, train)
        except MXNetForwardError as err:
            err.__context__ = err.__cause__ = None     # (no frames kept: the arrays alone keep it alive)
            holder = defer(err.with_traceback(None))
    if holder is not None:
        return _deferred(op, params, slots, ctx, holder, out)
    updates = [output for _, output, _ in entry.aux_updates]
    try:
        results = entry.session.run(entry.output_names + updates, {n: a._data for n, a in zip(entry.names, slots)})
    except Exception as err:
        error = run_error(err)
        if not isinstance(error, MXNetIndexError):
            raise error from None
        # an index out of bounds, found while running: MXNet's engine raises it at the next read
        return _deferred(op, params, slots, ctx, defer(error), out)
    raise_pending()
    results, updated = results[:len(entry.output_names)], results[len(entry.output_names):]
    for (name, _, momentum), value in zip(entry.aux_updates, updated):
        state = slots[entry.names.index(name)]._data
        # MXNet updates an op's moving statistics when it runs imperatively: state * m + batch * (1 - m)
        if momentum is None:
            state[...] = value
        else:
            keep, take = moving_average_factors(momentum, state.dtype)
            state[...] = state * keep + value * take
        touch(state)
    if out is not None:
        outs = out if isinstance(out, (list, tuple)) else [out]
        for dst, value in zip(outs, results):
            tape.check_in_place(dst)
            if is_sparse(dst):
                dst._assign_dense(value)
            else:
                dst[:] = value
        tape.record_op(op, params, slots, outs, train, entry.samples)
        return out
    arrays = [NDArray(np.asarray(r, order="C"), ctx) for r in results]
    if opcls.op_name == "cast_storage" or any(is_sparse(a) for a in slots):
        arrays[0] = sparse_result(opcls.op_name, op.params(), slots, arrays[0])
    tape.record_op(op, params, slots, arrays, train, entry.samples)
    return arrays[0] if len(arrays) == 1 else arrays
