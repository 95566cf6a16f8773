"""Symbol + parameters -> a training `.onnx`: the forward, onnxsym's backward and optionally an SGD update, as one
plain ONNX model that any ONNX Runtime (1.17+) runs. On-device training without onnxruntime-training's artifacts.

Inputs: the data inputs, the labels, `learning_rate` (a 0-d array, with optimizer='sgd'), and every parameter
and auxiliary state; their starting values go to `<file>.npz` beside the model (`np.load` reads them). Outputs: the symbol's outputs, `<param>_grad` for every parameter, and with
optimizer='sgd' `<param>_new` = param - learning_rate * grad and `<aux>_new` (BatchNorm's moving statistics, as
MXNet updates them, from the batch statistics `<aux>_batch`); feed the `_new` values back as the next step's
inputs.
"""
import io
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxsym._files import atomic_write
from onnxsym.autograd.reverse import gradient_model
from onnxsym.base import MXNetError
from onnxsym.lower.builder import onnx_dtype, strip_stop_gradients
from onnxsym.lower.dtype_passes import float16_as_float32, float64_unfused
from onnxsym.lower.to_onnx import lower_symbol

from .onnx_export import _load_inputs, _warn_python_ops, data_inputs

__all__ = ["export_training_model", "state_path", "OPTIMIZERS"]

OPTIMIZERS = (None, "sgd")


def export_training_model(sym, params, in_shapes, in_types=np.float32, onnx_file_path="train.onnx",
                          optimizer=None):
    """Write the training graph of `sym` (its loss heads give MXNet's backward) with `params` (arg and aux arrays,
    or a .params path) to onnx_file_path and return the path. in_shapes / in_types: one per data input, as
    export_model; labels take the shapes shape inference gives them. optimizer: None (gradients only) or 'sgd'."""
    if optimizer not in OPTIMIZERS:
        raise MXNetError("export_training_model: optimizer=%r; use one of %s" % (optimizer, OPTIMIZERS))
    sym, params = _load_inputs(sym, params)
    names = data_inputs(sym, params)
    in_shapes = [tuple(s) for s in in_shapes]
    if len(in_shapes) != len(names):
        raise MXNetError("export_training_model: %d shapes given for the %d data inputs %s"
                         % (len(in_shapes), len(names), names))
    in_types = in_types if isinstance(in_types, (list, tuple)) else [in_types] * len(names)
    arrays = {name: value.asnumpy() for name, value in params.items()}
    shapes = dict(zip(names, in_shapes))
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    if arg_shapes is None:
        raise MXNetError("export_training_model: shape inference could not decide every input from %s" % shapes)
    all_shapes = dict(zip(sym.list_arguments(), arg_shapes))
    all_shapes.update(zip(sym.list_auxiliary_states(), aux_shapes))
    dtypes = dict(zip(names, (np.dtype(t) for t in in_types)))
    dtypes.update({name: array.dtype for name, array in arrays.items()})
    missing = [n for n in sym.list_auxiliary_states() if n not in arrays]
    if missing:
        raise MXNetError("export_training_model: no values for the auxiliary states %s" % missing)
    lowered = lower_symbol(sym, all_shapes, dtypes, training=True)
    if lowered.loss is None:
        raise MXNetError("export_training_model: the symbol has no loss head (SoftmaxOutput, MakeLoss, ...) to "
                         "differentiate")
    float16_as_float32(lowered.model, keep_outputs={lowered.loss})
    trainable = [n for n in sym.list_arguments() if n in arrays]
    model, grads = gradient_model(lowered.model, [(lowered.loss, None)], trainable)
    model = float64_unfused(strip_stop_gradients(model))
    graph = model.graph
    if optimizer == "sgd":
        _append_sgd(graph, lowered, grads, arrays)
    inputs = {i.name for i in graph.input}
    _warn_python_ops(model)
    onnx.checker.check_model(model)
    atomic_write(onnx_file_path, model.SerializeToString(), "wb")
    state = io.BytesIO()
    np.savez(state, **{name: array for name, array in arrays.items() if name in inputs})
    atomic_write(state_path(onnx_file_path), state.getvalue(), "wb")
    return onnx_file_path


def state_path(onnx_file_path):
    """Where the starting parameters of a training file go: `train.onnx` -> `train.npz` (numpy, no pickle)."""
    return os.path.splitext(os.fspath(onnx_file_path))[0] + ".npz"


def _append_sgd(graph, lowered, grads, arrays):
    """param_new = param - learning_rate * param_grad; aux_new = aux * momentum + batch_statistic * (1 - momentum)."""
    dtypes = {name: array.dtype for name, array in arrays.items()}
    rate_dtype = next(iter(dtypes.values()), np.dtype(np.float32))
    graph.input.append(helper.make_tensor_value_info("learning_rate", onnx_dtype(rate_dtype), []))
    for name in grads:
        rate = "learning_rate" if dtypes[name] == rate_dtype else _cast(graph, "learning_rate", dtypes[name], name)
        step = name + "/sgd_step"
        graph.node.append(helper.make_node("Mul", [rate, name + "_grad"], [step], name=step))
        graph.node.append(helper.make_node("Sub", [name, step], [name + "_new"], name=name + "/sgd"))
        graph.output.append(helper.make_tensor_value_info(name + "_new", onnx_dtype(dtypes[name]),
                                                          list(arrays[name].shape)))
    for aux, batch in lowered.aux_updates.items():
        momentum = lowered.aux_momentum.get(aux)
        dtype = dtypes[aux]
        if batch == aux + "_new":       # the lowering's output of the batch statistic: `<aux>_batch` here
            batch = _rename(graph, batch, aux + "_batch")
        if momentum is None:
            graph.node.append(helper.make_node("Identity", [batch], [aux + "_new"], name=aux + "/update"))
        else:
            keep, take = (numpy_helper.from_array(np.asarray(v, dtype), "%s/%s" % (aux, k))
                          for k, v in (("momentum", momentum), ("one_minus_momentum", 1 - momentum)))
            graph.initializer.extend([keep, take])
            graph.node.append(helper.make_node("Mul", [aux, keep.name], [aux + "/kept"], name=aux + "/kept"))
            graph.node.append(helper.make_node("Mul", [batch, take.name], [aux + "/taken"], name=aux + "/taken"))
            graph.node.append(helper.make_node("Add", [aux + "/kept", aux + "/taken"], [aux + "_new"],
                                               name=aux + "/update"))
        graph.output.append(helper.make_tensor_value_info(aux + "_new", onnx_dtype(dtype), list(arrays[aux].shape)))


def _rename(graph, old, new):
    for node in graph.node:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name == old:
                    seq[i] = new
    for value in list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    return new


def _cast(graph, value, dtype, scope):
    out = "%s/learning_rate" % scope
    graph.node.append(helper.make_node("Cast", [value], [out], name=out, to=onnx_dtype(dtype)))
    return out
