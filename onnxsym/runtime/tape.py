"""Imperative autograd (MXNet's mx.autograd on NDArrays): a tape of the ops run while recording, differentiated
as one graph.

While `mx.autograd.record()` is on, every op that `mx.nd` runs on an array that needs a gradient (a variable:
`attach_grad`/`mark_variables`, or the output of a recorded op) is written to the tape: the op, its attributes and
its inputs (the variable or recorded output they are, or the buffer of a constant). `backward(heads)` turns the part
of the tape the heads depend on into a Symbol (variables and constants as its arguments), binds it once per tape
structure (op sequence, attributes, shapes, dtypes: a training loop that repeats its steps reuses the executor and
its ONNX Runtime sessions) and runs forward and backward there; gradients land in the variables' `.grad` as their
grad_req says. The values differentiated are those the recorded ops read (the inputs' buffers, kept by reference
as MXNet keeps its arrays: writing into a recorded array in place before backward is refused).

Ops that sample (random draws) are constants of the gradient graph (their recorded outputs): running them again
would draw other values, and they pass no gradient anyway. Under record() (train mode by default) mx.nd runs ops in
train mode, as MXNet does: BatchNorm uses and updates batch statistics, and the gradient graph runs in train mode
too; Dropout in train mode is refused while recording (its mask would be drawn again).
"""
from collections import OrderedDict

import numpy as np

from ..base import MXNetError
from ..symbol.node import Node, topo_order
from ..symbol.symbol import Symbol
from .executor import Executor
from .ndarray import NDArray

__all__ = ["is_recording", "is_training", "set_recording", "set_training", "record_op", "mark_variables",
           "backward", "grad", "get_symbol", "Variable", "check_in_place"]

_STATE = {"recording": False, "training": False}
_EXECUTORS = OrderedDict()       # tape structure -> Executor
_EXECUTORS_SIZE = 32


def is_recording():
    return _STATE["recording"]


def is_training():
    return _STATE["training"]


def set_recording(is_recording):  # noqa: A002 - MXNet's name
    previous = _STATE["recording"]
    _STATE["recording"] = bool(is_recording)
    return previous


def set_training(train_mode):
    previous = _STATE["training"]
    _STATE["training"] = bool(train_mode)
    return previous


class Variable:
    """A leaf of the tape: an array whose gradient is asked for (`grad` buffer, `req` 'write'/'add'/'null')."""

    def __init__(self, grad, req):
        self.grad, self.req = grad, req


class TapeNode:
    """One recorded op call: the op, its attributes, and per input either ('var', array, Variable),
    ('out', TapeNode, index) or ('const', buffer); a sampling op keeps the buffers it wrote (`outputs`: its draws
    are constants of the gradient graph)."""

    def __init__(self, op, params, inputs, outputs, training):
        self.op, self.params, self.inputs, self.outputs, self.training = op, params, inputs, outputs, training


def _entry(array):
    """How the tape refers to an input array."""
    mark = getattr(array, "_ag", None)
    if isinstance(mark, Variable):
        return ("var", array, mark)
    if isinstance(mark, tuple):
        return ("out",) + mark
    return ("const", array._data)


def record_op(op, params, inputs, outputs, training, samples):
    """Called by mx.nd after each op (run in train mode or not; `samples`: its graph drew random values): when
    recording and some input needs a gradient, the call goes on the tape and its outputs refer to it."""
    if not _STATE["recording"]:
        return
    entries = [_entry(a) for a in inputs]
    if all(e[0] == "const" for e in entries):
        return
    if samples and not op.samples:
        # Dropout in train mode: its gradient needs the mask it drew, which running the op again would not give
        raise MXNetError("mx.autograd: %s in train mode draws random values, and onnxsym cannot differentiate that "
                         "draw imperatively yet; record it with autograd.record(train_mode=False) or run the model "
                         "as a Symbol (Executor/Module), whose training graphs differentiate it" % op.op_name)
    node = TapeNode(op, params, entries, [o._data for o in outputs] if op.samples else None, training)
    for index, out in enumerate(outputs):
        out._ag = (node, index)


def check_in_place(array):
    """An in-place write (`out=`, `x[:] = ...`, `+=`) into an array the tape reads would change what backward
    differentiates: refused while recording, as MXNet does."""
    if _STATE["recording"] and getattr(array, "_ag", None) is not None:
        raise MXNetError("Inplace operations (+=, -=, x[:]=, etc) are not supported when recording with autograd.")


def mark_variables(variables, gradients, grad_reqs="write"):
    """Mark NDArrays as variables whose gradients backward computes into `gradients`."""
    if isinstance(variables, NDArray):
        variables, gradients = [variables], [gradients]
    if isinstance(grad_reqs, str):
        grad_reqs = [grad_reqs] * len(variables)
    if len(variables) != len(gradients) or len(variables) != len(grad_reqs):
        raise ValueError("mark_variables: %d variables, %d gradients and %d grad_reqs"
                         % (len(variables), len(gradients), len(grad_reqs)))
    for var, gradient, req in zip(variables, gradients, grad_reqs):
        if req not in ("write", "add", "null"):
            raise ValueError("grad_req must be one of 'write', 'add', 'null', got %r" % (req,))
        var._ag = Variable(gradient, req)


class _Graph:
    """The recorded graph behind `heads` as a Symbol, with the values of its arguments (`values`: name -> buffer)
    and `key`, its structure (ops, attributes, argument shapes and dtypes, wiring) for the executor cache."""

    def __init__(self, heads):
        self.variables = []        # (argument name, Variable)
        self.values = {}
        self._arguments = {}
        self._built = {}
        parts = []
        outputs = []
        for head in heads:
            mark = getattr(head, "_ag", None)
            if not isinstance(mark, (tuple, Variable)):
                raise MXNetError("Cannot differentiate node because it is not in a computational graph. You need "
                                 "to set is_recording to true or use autograd.record() to save computational "
                                 "graphs for backward. If you want to differentiate the same graph twice, you need "
                                 "to pass retain_graph=True to backward.")
            outputs.append(self._symbol_entry(_entry(head), parts))
        self.symbol = Symbol(outputs)
        modes = {part[2] for part in parts if len(part) == 3 and isinstance(part[0], type)}
        if len(modes) > 1:
            raise MXNetError("mx.autograd: backward over ops recorded both in train mode and in predict mode is not "
                             "supported (record them in one mode)")
        self.training = modes == {True}
        self.key = (tuple(parts), _wiring(self.symbol))

    def _argument(self, key, value, parts, variable=None):
        if key not in self._arguments:
            name = "ag%d" % len(self._arguments)
            self._arguments[key] = (Node(None, name), 0)
            self.values[name] = value
            parts.append((value.shape, value.dtype.str, variable is not None and variable.req != "null"))
            if variable is not None:
                self.variables.append((name, variable))
        return self._arguments[key]

    def _symbol_entry(self, entry, parts):
        kind = entry[0]
        if kind == "var":
            return self._argument(("var", id(entry[1])), entry[1]._data, parts, entry[2])
        if kind == "const":
            return self._argument(("const", id(entry[1])), entry[1], parts)
        node, index = entry[1], entry[2]
        op = node.op.replay() if node.op.samples else node.op
        if op is None:           # a sampling op: its recorded draw is a constant here
            return self._argument(("const", id(node.outputs[index])), node.outputs[index], parts)
        if id(node) not in self._built:
            inputs = [self._symbol_entry(e, parts) for e in node.inputs]
            if op is not node.op:   # the replay of a sampling op reads what it drew
                inputs += [self._argument(("const", id(o)), o, parts) for o in node.outputs[:1]]
            self._built[id(node)] = Node(op, "%s%d" % (type(op).op_name.lower(), len(self._built)),
                                         node.params, inputs)
            parts.append((type(op), tuple(sorted(node.params.items())), node.training))
        return self._built[id(node)], index


def _executor(graph):
    """The cached executor of this tape structure, with the graph's current values copied in."""
    key = graph.key
    names = graph.symbol.list_arguments()
    aux_names = graph.symbol.list_auxiliary_states()
    values = graph.values
    exe = _EXECUTORS.get(key)
    if exe is None:
        wanted = {name for name, variable in graph.variables if variable.req != "null"}
        args = [NDArray(np.array(values[n], order="C")) for n in names]
        grads = [NDArray(np.zeros(values[n].shape, values[n].dtype))
                 if n in wanted and np.dtype(values[n].dtype).kind == "f" else None for n in names]
        aux = [NDArray(np.array(values[n], order="C")) for n in aux_names]
        exe = Executor(graph.symbol, None, args, grads, ["null" if g is None else "write" for g in grads], aux)
        _EXECUTORS[key] = exe
        if len(_EXECUTORS) > _EXECUTORS_SIZE:
            _EXECUTORS.popitem(last=False)
    else:
        _EXECUTORS.move_to_end(key)
        for name, array in zip(names + aux_names, exe.arg_arrays + exe.aux_arrays):
            array[:] = values[name]
    return exe


def _wiring(symbol):
    """How the symbol's nodes connect (by position), for the executor cache key."""
    nodes = topo_order(symbol.outputs)
    position = {id(n): i for i, n in enumerate(nodes)}
    return tuple((n.name if n.is_variable else None, tuple((position[id(s)], i) for s, i in
                                                             ([] if n.is_variable else n.inputs)))
                 for n in nodes) + (tuple((position[id(n)], i) for n, i in symbol.outputs),)


def _run(heads, head_grads, train_mode):
    """(graph, {variable name: gradient array}) of sum(head_grads * heads)."""
    graph = _Graph(heads)
    if head_grads is None:
        head_grads = [None] * len(heads)
    elif isinstance(head_grads, NDArray):
        head_grads = [head_grads]
    if len(head_grads) != len(heads):
        raise ValueError("heads and head_grads must have the same length: %d and %d" % (len(heads), len(head_grads)))
    heads_values = [np.ones(h.shape, h._data.dtype) if g is None else g._data.astype(h._data.dtype)
                    for h, g in zip(heads, head_grads)]
    # the gradient of the forward that ran: in train mode (BatchNorm's batch statistics) or not
    exe = _executor(graph)
    if graph.training:
        exe.forward(is_train=True)
    else:
        exe.forward_for_backward()
    exe.backward([NDArray(v) for v in heads_values])
    return graph, exe.grad_dict


def backward(heads, head_grads=None, retain_graph=False, train_mode=True):
    """Gradients of the heads (times head_grads, ones by default) into the variables' grad arrays."""
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    graph, grads = _run(heads, head_grads, train_mode)
    for name, variable in graph.variables:
        gradient = grads.get(name)
        if variable.req == "null" or variable.grad is None:
            continue
        if gradient is None:        # an integer variable, or none reached it
            if variable.req == "write":
                variable.grad[:] = 0
            continue
        if variable.req == "add":
            variable.grad[:] = variable.grad._data + gradient._data
        else:
            variable.grad[:] = gradient._data


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False, train_mode=True):
    """The gradients of the heads with respect to `variables` (marked NDArrays), as new NDArrays."""
    if create_graph:
        raise NotImplementedError("autograd.grad(create_graph=True): higher-order gradients of imperative code are "
                                  "not supported by onnxsym; build the graph symbolically instead")
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    single = isinstance(variables, NDArray)
    variables = [variables] if single else list(variables)
    for var in variables:
        if not isinstance(getattr(var, "_ag", None), Variable):
            raise MXNetError("autograd.grad: every variable must be marked (attach_grad or mark_variables)")
    graph, grads = _run(heads, head_grads, train_mode)
    names = {id(variable): name for name, variable in graph.variables}
    out = []
    for var in variables:
        gradient = grads.get(names.get(id(var._ag)))
        out.append(NDArray(np.zeros(var.shape, var._data.dtype) if gradient is None else gradient._data.copy(),
                           var.context))
    return out[0] if single else out


def get_symbol(x):
    """The recorded graph that computed `x`, as a Symbol (its arguments named ag0, ag1, ...)."""
    return _Graph([x]).symbol

