"""Symbol + parameters -> a training `.onnx`: the forward, onnxsym's backward and optionally an SGD or Adam update,
as one plain ONNX model that any ONNX Runtime (1.17+) runs. On-device training without onnxruntime-training's
artifacts.

Inputs: the data inputs, the labels, every parameter and auxiliary state, and with an optimizer `learning_rate`
(a 0-d array); Adam also takes `step` (0-d, the 1-based update count t) and its states `<param>_adam_mean` /
`<param>_adam_var`. Starting values of everything but data, labels, learning_rate and step go to `<file>.npz` beside
the model (`np.load` reads them; Adam's states start at zero). Outputs: the symbol's outputs, `<param>_grad` for
every parameter, and with an optimizer `<name>_new` for every parameter, optimizer state and auxiliary state
(BatchNorm's moving statistics, as MXNet updates them, from the batch statistics `<aux>_batch`); feed the `_new`
values back as the next step's inputs. The updates are MXNet's `sgd_update` and `adam_update` (with the bias
correction of MXNet's Adam optimizer): g = clip(rescale_grad * grad, clip_gradient) + wd * param (sgd) or
clip(rescale_grad * grad + wd * param, clip_gradient) (adam); optimizer_params: rescale_grad, wd, clip_gradient,
and for Adam beta1, beta2, epsilon (MXNet's defaults).
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
from onnxsym.ops.params import float_param, moving_average_factors
from onnxsym.lower.to_onnx import lower_symbol

from .onnx_export import _load_inputs, _warn_python_ops, data_inputs

__all__ = ["export_training_model", "state_path", "OPTIMIZERS"]

OPTIMIZERS = (None, "sgd", "adam")
_DEFAULTS = {"sgd": {"rescale_grad": 1.0, "wd": 0.0, "clip_gradient": None},
             "adam": {"rescale_grad": 1.0, "wd": 0.0, "clip_gradient": None, "beta1": 0.9, "beta2": 0.999,
                      "epsilon": 1e-8}}


def export_training_model(sym, params, in_shapes, in_types=np.float32, onnx_file_path="train.onnx",
                          optimizer=None, optimizer_params=None):
    """Write the training graph of `sym` (its loss heads give MXNet's backward) with `params` (arg and aux arrays,
    or a .params path) to onnx_file_path and return the path. in_shapes / in_types: one per data input, as
    export_model; labels take the shapes shape inference gives them. optimizer: None (gradients only), 'sgd' or
    'adam', with optimizer_params as the module docstring lists."""
    if optimizer not in OPTIMIZERS:
        raise MXNetError("export_training_model: optimizer=%r; use one of %s" % (optimizer, OPTIMIZERS))
    settings = dict(_DEFAULTS.get(optimizer, {}))
    unknown = sorted(set(optimizer_params or {}) - set(settings))
    if unknown:
        raise MXNetError("export_training_model: optimizer_params %s are not settings of %s (it takes %s)"
                         % (unknown, optimizer, sorted(settings) or "none"))
    settings.update(optimizer_params or {})
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
    model, grads, _ = gradient_model(lowered.model, [(lowered.loss, None)], trainable)
    model = float64_unfused(strip_stop_gradients(model))
    graph = model.graph
    if optimizer is not None:
        _append_update(graph, lowered, grads, arrays, optimizer, settings)
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


def _append_update(graph, lowered, grads, arrays, optimizer, settings):
    """param_new from param and param_grad (SGD or Adam, MXNet's formulas); aux_new = aux * momentum +
    batch_statistic * (1 - momentum)."""
    dtypes = {name: array.dtype for name, array in arrays.items()}
    rate_dtype = next(iter(dtypes.values()), np.dtype(np.float32))
    graph.input.append(helper.make_tensor_value_info("learning_rate", onnx_dtype(rate_dtype), []))
    if optimizer == "adam":
        graph.input.append(helper.make_tensor_value_info("step", onnx_dtype(rate_dtype), []))
    for name in grads:
        dtype = dtypes[name]
        rate = "learning_rate" if dtype == rate_dtype else _cast(graph, "learning_rate", dtype, name)
        emit = _Emitter(graph, name, dtype)
        grad = emit("Mul", name + "_grad", emit.const("rescale_grad", settings["rescale_grad"]))
        decay = lambda g: emit("Add", g, emit("Mul", name, emit.const("wd", settings["wd"])))
        if optimizer == "sgd":       # sgd_update: clip the rescaled gradient, then add the weight decay
            step = emit("Mul", rate, decay(_clipped(emit, grad, settings["clip_gradient"])))
        else:                        # adam_update: decay, then clip; the rate bias-corrected as MXNet's Adam
            beta1, beta2 = settings["beta1"], settings["beta2"]
            grad = _clipped(emit, decay(grad), settings["clip_gradient"])
            step_count = "step" if dtype == rate_dtype else _cast(graph, "step", dtype, name, "step")
            mean = _state(graph, arrays, name + "_adam_mean", dtype)
            var = _state(graph, arrays, name + "_adam_var", dtype)
            new_mean = emit("Add", emit("Mul", mean, emit.const("beta1", beta1)),
                            emit("Mul", grad, emit.const("one_minus_beta1", 1, minus=beta1)), out=mean + "_new")
            new_var = emit("Add", emit("Mul", var, emit.const("beta2", beta2)),
                           emit("Mul", emit("Mul", grad, emit.const("one_minus_beta2", 1, minus=beta2)), grad),
                           out=var + "_new")
            one = emit.const("one", 1)
            correction = emit("Div", emit("Sqrt", emit("Sub", one, emit("Pow", emit.const("beta2", beta2),
                                                                           step_count))),
                              emit("Sub", one, emit("Pow", emit.const("beta1", beta1), step_count)))
            ratio = emit("Div", new_mean, emit("Add", emit("Sqrt", new_var), emit.const("epsilon",
                                                                                          settings["epsilon"])))
            step = emit("Mul", emit("Mul", rate, correction), ratio)
            for state in (mean, var):
                graph.output.append(helper.make_tensor_value_info(state + "_new", onnx_dtype(dtype),
                                                                  list(arrays[name].shape)))
        graph.node.append(helper.make_node("Sub", [name, step], [name + "_new"], name=name + "/" + optimizer))
        graph.output.append(helper.make_tensor_value_info(name + "_new", onnx_dtype(dtype),
                                                          list(arrays[name].shape)))
    for aux, batch in lowered.aux_updates.items():
        momentum = lowered.aux_momentum.get(aux)
        dtype = dtypes[aux]
        if batch == aux + "_new":       # the lowering's output of the batch statistic: `<aux>_batch` here
            batch = _rename(graph, batch, aux + "_batch")
        if momentum is None:
            graph.node.append(helper.make_node("Identity", [batch], [aux + "_new"], name=aux + "/update"))
        else:
            factors = zip(("momentum", "one_minus_momentum"), moving_average_factors(momentum, dtype))
            keep, take = (numpy_helper.from_array(np.asarray(v, dtype), "%s/%s" % (aux, k)) for k, v in factors)
            graph.initializer.extend([keep, take])
            graph.node.append(helper.make_node("Mul", [aux, keep.name], [aux + "/kept"], name=aux + "/kept"))
            graph.node.append(helper.make_node("Mul", [batch, take.name], [aux + "/taken"], name=aux + "/taken"))
            graph.node.append(helper.make_node("Add", [aux + "/kept", aux + "/taken"], [aux + "_new"],
                                               name=aux + "/update"))
        graph.output.append(helper.make_tensor_value_info(aux + "_new", onnx_dtype(dtype), list(arrays[aux].shape)))


class _Emitter:
    """Nodes of one parameter's update, named under it; constants in its dtype, one initializer each."""

    def __init__(self, graph, scope, dtype):
        self.graph, self.scope, self.dtype, self.count = graph, scope, dtype, 0

    def const(self, key, value, minus=None):
        """An initializer of `value` (`value - minus`) as MXNet's update kernels see their float parameters: float32
        values cast to the parameter's dtype (and subtracted in it: adam_update's ``1 - beta1``)."""
        name = "%s/%s" % (self.scope, key)
        if not any(t.name == name for t in self.graph.initializer):
            value = float_param(value, self.dtype)
            if minus is not None:
                value = value - float_param(minus, self.dtype)
            self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, self.dtype), name))
        return name

    def __call__(self, op_type, *inputs, out=None):
        self.count += 1
        out = out or "%s/update_%d" % (self.scope, self.count)
        self.graph.node.append(helper.make_node(op_type, list(inputs), [out], name=out))
        return out


def _clipped(emit, grad, bound):
    """MXNet's kernels clip only for a truthy, non-negative bound."""
    if not bound or bound < 0:
        return grad
    return emit("Clip", grad, emit.const("clip_low", -bound), emit.const("clip_high", bound))


def _state(graph, arrays, name, dtype):
    """An optimizer state input (zeros in the .npz)."""
    shape = arrays[name.rsplit("_adam_", 1)[0]].shape
    arrays[name] = np.zeros(shape, dtype)
    graph.input.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
    return name


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


def _cast(graph, value, dtype, scope, what="learning_rate"):
    out = "%s/%s" % (scope, what)
    graph.node.append(helper.make_node("Cast", [value], [out], name=out, to=onnx_dtype(dtype)))
    return out
