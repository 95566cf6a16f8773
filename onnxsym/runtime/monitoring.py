"""What an executor's monitor callback sees (Executor.set_monitor_callback, mx.monitor.Monitor), under MXNet 1.9.1's
names and in its order.

After a forward: every operator's outputs in graph order (`<node>_output`, ...); with monitor_all, before them each
input, under its source's name and as `<node>_<input>`. After a backward: in reverse graph order, each operator's
gradients with respect to its inputs (`<node>_backward_output` for one input, `<node>_backward_output<i>` for
several), as MXNet's backward nodes produce them: the operator's own share, not the sum over an entry's readers.

The values are computed for the monitor, on the executor's arrays: the forward ones by an executor of the graph's
internal outputs run in the same mode, the backward ones by each operator alone (its inputs from that forward, its
output gradients the sums its readers gave), so they are exact except where random operators (Dropout, sampling)
draw again. Nothing is computed while the callback says it is not collecting (`callback.wanted()` False: what
mx.monitor.Monitor does between toc() and the next tic() of its interval).
"""
import numpy as np

from ..symbol.node import Node, topo_order
from ..symbol.symbol import Group, Symbol
from .ndarray import NDArray

__all__ = ["after_forward", "after_backward"]


def _report(callback, name, value):
    callback(name.encode("utf-8"), value)       # (MXNet's callbacks get C strings: bytes, read with py_str)


def _wanted(callback):
    wanted = getattr(callback, "wanted", None)
    return wanted() if wanted is not None else True


# operators whose inputs MXNet's monitor names input0, input1, ... (no input names registered for it: MXNet 1.9.1's
# test_op_all_names_monitor records act_input0 and softmax_input0 for Activation and SoftmaxActivation)
_UNNAMED_INPUTS = ("Activation", "SoftmaxActivation")


def _input_names(node):
    if node.op.op_name in _UNNAMED_INPUTS:
        return ["input%d" % i for i in range(len(node.inputs))]
    return node.op.input_names()


def _source_name(node, index):
    return node.name if node.is_variable else node.output_name(index)


def after_forward(executor, is_train):
    """Report the forward values of `executor`'s graph to its monitor callback."""
    state = executor._monitor
    if not _wanted(state["callback"]):
        state["values"] = None
        return
    if state.get("internals") is None:
        symbol = executor._symbol
        internals = symbol.get_internals()
        inputs = set(symbol.list_inputs())
        group = Group([internals[i] for i, name in enumerate(internals.list_outputs()) if name not in inputs])
        args = [executor._by_name[n] for n in group.list_arguments()]
        aux = [executor._by_name[n].copy() for n in group.list_auxiliary_states()]    # (its updates stay there)
        state["internals"] = type(executor)(group, executor._ctx, args, [None] * len(args), ["null"] * len(args),
                                            aux)
    internals = state["internals"]
    internals.forward(is_train=is_train)
    values = dict(zip(internals._out_names, internals.outputs))
    values.update((n, executor._by_name[n]) for n in executor._symbol.list_inputs())
    state["values"] = values
    callback, monitor_all = state["callback"], state["monitor_all"]
    for node in topo_order(executor._symbol.outputs):
        if node.is_variable:
            continue
        if monitor_all:
            for (source, index), arg in zip(node.inputs, _input_names(node)):
                name = _source_name(source, index)
                _report(callback, name, values[name])
                _report(callback, "%s_%s" % (node.name, arg), values[name])
        for i in range(node.op.num_visible_outputs()):
            name = node.output_name(i)
            if name in values:
                _report(callback, name, values[name])


def after_backward(executor, out_grads):
    """Report each operator's input gradients of the last backward to the monitor callback."""
    state = executor._monitor
    values = state.get("values")
    if values is None or not _wanted(state["callback"]):
        return
    heads = out_grads if isinstance(out_grads, (list, tuple)) else ([] if out_grads is None else [out_grads])
    totals = {}
    for (node, index), head in zip(executor._symbol.outputs, heads):
        if head is not None:
            totals[_source_name(node, index)] = head if isinstance(head, NDArray) else NDArray(np.asarray(head))
    single = state.setdefault("single", {})
    callback = state["callback"]
    for node in reversed(topo_order(executor._symbol.outputs)):
        if node.is_variable:
            continue
        exe = single.get(id(node))
        if exe is None:
            exe = single[id(node)] = _node_executor(executor, node, values)
        for (source, index), name in zip(node.inputs, exe._monitor_inputs):
            exe._by_name[name]._data[...] = values[_source_name(source, index)].asnumpy()
        outputs = exe.forward(is_train=True)
        exe.backward([totals.get(node.output_name(i), NDArray(np.zeros(o.shape, o.dtype)))
                      for i, o in enumerate(outputs)])
        grads = dict(zip(exe._arg_names, exe.grad_arrays))
        differentiable = [(k, source, index) for k, ((source, index), name)
                          in enumerate(zip(node.inputs, exe._monitor_inputs)) if grads.get(name) is not None]
        for k, source, index in differentiable:
            grad = grads[exe._monitor_inputs[k]].copy()
            label = "%s_backward_output" % node.name if len(differentiable) == 1 else \
                "%s_backward_output%d" % (node.name, k)
            _report(callback, label, grad)
            key = _source_name(source, index)
            totals[key] = grad if key not in totals else NDArray(totals[key].asnumpy() + grad.asnumpy())


def _node_executor(executor, node, values):
    """An executor of `node` alone (fresh input variables, in its order), every argument differentiated."""
    inputs = [(Node(None, "__monitor_in%d" % k), 0) for k in range(len(node.inputs))]
    symbol = Symbol([(Node(node.op, node.name, node.attrs, inputs), i) for i in range(node.op.num_visible_outputs())])
    shapes = {"__monitor_in%d" % k: values[_source_name(s, i)].shape for k, (s, i) in enumerate(node.inputs)}
    types = {"__monitor_in%d" % k: values[_source_name(s, i)].dtype for k, (s, i) in enumerate(node.inputs)}
    exe = symbol.simple_bind(executor._ctx, grad_req={n: ("write" if np.dtype(types[n]).kind in "fc" else "null")
                                                      for n in symbol.list_arguments()},
                             type_dict=types, **shapes)
    exe._monitor_inputs = ["__monitor_in%d" % k for k in range(len(node.inputs))]
    return exe
