"""The onnxruntime-training backend (ONNXSYM_AUTOGRAD=ort-training): gradients built by onnxruntime-training's
GradientGraphBuilder (fused step) and OrtModuleGraphBuilder + TrainingAgent (split step, ORT_NOTES.md section 3).

Kept as a cross-check of onnxsym's own AD (reverse.py); it needs the training build of ONNX Runtime
(`onnxruntime-training-cpu` 1.19.2, the last published, Python <= 3.12) installed in place of `onnxruntime`.
"""
import json
import re

import numpy as np
import onnx

from ..base import MXNetError
from ..custom.kernels import get_kernel
from ..lower.builder import ATEN_DOMAIN, PYTHON_GRAD_PREFIX, STOP_GRADIENT_KEY, \
    aten_python_ops, python_op_dtypes, python_op_name, strip_stop_gradients
from ..lower.dtype_passes import float64_unfused
from ..runtime.device import touch
from ..runtime.ort import C, create_session, ort, ort_message, quiet_logging, run_error, session_options
from ..runtime.pyops import has_pending, raise_pending
from .training import Training

__all__ = ["check_training_build", "prepare", "fused_gradient_model", "OrtSplitTraining"]

# Inputs the builders cannot differentiate: unreachable from the outputs, or not consumed at all (BatchNorm's
# gamma with fix_gamma). Both get zero gradients.
_UNREACHABLE = re.compile(r"Cannot compute the partial derivative for '([^']+)'|(\S+) couldn't find the consumer node")
_REGISTERED = []
# ONNX ops whose output differs between two runs on the same inputs
_RANDOM_OPS = {"Dropout", "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
               "Bernoulli"}


def check_training_build():
    """MXNetError unless the installed onnxruntime is the training build this backend drives."""
    if not hasattr(C, "GradientGraphBuilder") or not hasattr(C, "TrainingAgent"):
        raise MXNetError("ONNXSYM_AUTOGRAD=ort-training needs the training build of ONNX Runtime, but the installed "
                         "onnxruntime %s is the plain one: in a separate virtual environment (Python <= 3.12), "
                         "pip install onnxruntime-training-cpu==1.19.2 instead of onnxruntime, or unset "
                         "ONNXSYM_AUTOGRAD to use onnxsym's own gradients" % ort.__version__)


def _cpu_device():
    return C.OrtDevice(C.OrtDevice.cpu(), C.OrtDevice.default_memory(), 0)


def _register_stop_gradient():
    if not _REGISTERED:     # process-global, first registration wins (ORT_NOTES.md top)
        C.register_custom_stop_gradient_edges(STOP_GRADIENT_KEY, {0})
        _REGISTERED.append(True)


def _build(make, wrt):
    """Run a gradient builder `make(wrt)`, dropping inputs it cannot differentiate (they get zero gradients)."""
    wrt = list(wrt)
    while True:
        try:
            with quiet_logging():
                return make(wrt), wrt
        except RuntimeError as err:
            match = _UNREACHABLE.search(str(err))
            name = match and (match.group(1) or match.group(2))
            if name in wrt:
                wrt.remove(name)
                continue
            raise MXNetError("onnxruntime-training could not build the gradient graph: %s" % ort_message(err)) \
                from None


def _transformer_configuration():
    """OrtModuleGraphBuilder's graph transformations, without cast propagation: by default it moves Casts to float16
    up the graph (FLOOD_FILL), which undoes the float32 computation of float16 graphs (dtype_passes.py) and runs
    float16 gradient kernels that are missing (ReluGrad, SliceGrad) or wrong (TanhGrad gave garbage)."""
    config = C.TrainingGraphTransformerConfiguration()
    config.propagate_cast_ops_config.strategy = C.PropagateCastOpsStrategy.NONE
    config.propagate_cast_ops_config.level = -1
    return config


def _attribute_definition(name, value):
    attribute = C.GradientNodeAttributeDefinition()
    attribute.name, attribute.value_json, attribute.dtype, attribute.is_tensor = name, json.dumps(value), "string", False
    return attribute


def _register_python_gradients(model):
    """Each custom-op node's backward: its Python backward as one node taking (head gradients, arguments, aux
    states, outputs) and giving the arguments' gradients. The aux states are the forward's updated ones (its
    outputs after the real outputs): MXNet's backward sees the arrays the forward wrote. Registered per node key
    (process-global, first registration wins)."""
    for op_type, key, n_inputs, n_outputs in aten_python_ops(model):
        kernel = get_kernel(key)
        in_names, out_names = python_op_dtypes(op_type)
        n_out = kernel.num_outputs
        node = C.GradientNodeDefinition()
        node.op_type, node.domain = "ATen", ATEN_DOMAIN
        node.inputs = (["GO(%d)" % i for i in range(n_out)] + ["I(%d)" % i for i in range(kernel.num_args)]
                       + ["O(%d)" % i for i in range(n_out, n_outputs)] + ["O(%d)" % i for i in range(n_out)])
        node.outputs = ["GI(%d)" % i for i in range(kernel.num_args)]
        grad_type = python_op_name(PYTHON_GRAD_PREFIX, out_names[:n_out] + in_names + out_names[:n_out],
                                   in_names[:kernel.num_args])
        node.attributes = [_attribute_definition("operator", grad_type), _attribute_definition("overload_name", key)]
        C.register_gradient_definition("%s::ATen::%s::%s" % (ATEN_DOMAIN, op_type, key), [node])


def prepare(lowered):
    """Registrations the builders need for this graph (stop-gradient edges, custom ops' backward nodes)."""
    check_training_build()
    _register_stop_gradient()
    _register_python_gradients(lowered.model)


def fused_gradient_model(lowered, wrt):
    """(forward+backward model, the wrt names it differentiates) from GradientGraphBuilder."""
    model, loss = lowered.model, lowered.loss

    def make(names):
        builder = C.GradientGraphBuilder(model.SerializeToString(), {loss}, set(names), loss, session_options())
        builder.build()
        return builder
    builder, built = _build(make, wrt)
    full = onnx.load_from_string(builder.get_model()) if built else model
    return full, built


class OrtSplitTraining(Training):
    """Forward and backward as two runs of one session (TrainingAgent), activations kept in between."""

    def __init__(self, lowered, wrt, ctx, executor):
        super().__init__(lowered, executor)
        builder, self.wrt = _build(lambda names: self._builder(lowered.model, names), wrt)
        info = builder.get_graph_info()
        model = float64_unfused(strip_stop_gradients(onnx.load_from_string(builder.get_gradient_model())))
        self.session = create_session(model, ctx)
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = list(info.user_output_names)
        self.grad_names = [o.name for o in model.graph.output]
        skip = set(info.output_grad_indices_non_differentiable)
        self.differentiable = [i for i in range(len(self.output_names)) if i not in skip]
        self.grad_of = dict(info.user_input_grad_names)
        self.agent = C.TrainingAgent(self.session._sess, self.input_names, [_cpu_device()] * len(self.output_names),
                                     self.grad_names, [_cpu_device()] * len(self.grad_names), 0)

    @staticmethod
    def _builder(model, wrt):
        config = C.OrtModuleGraphBuilderConfiguration()
        config.initializer_names = []
        config.initializer_names_to_train = []
        config.input_names_require_grad = wrt
        config.build_gradient_graph = True
        builder = C.OrtModuleGraphBuilder()
        builder.initialize(model.SerializeToString(), config)
        builder.build(_transformer_configuration())
        return builder

    def _run_forward(self):
        """The forward part; ORT keeps its activations in the returned state until one backward run."""
        ex = self.executor
        inputs = C.OrtValueVector()
        for name in self.input_names:
            inputs.push_back(C.OrtValue.ortvalue_from_numpy(ex._by_name[name]._data, _cpu_device()))
        outputs = C.OrtValueVector()
        state = C.PartialGraphExecutionState()
        try:
            self.agent.run_forward(inputs, outputs, state, C.OrtValueCache())
            failure = None
        except Exception as err:
            failure = err
        if failure is not None or has_pending():
            # ORT's execution state must not outlive the session, so no traceback may keep it alive.
            state = inputs = outputs = None
            if failure is not None:
                raise run_error(failure) from None
            raise_pending()
        return state, inputs, outputs

    def forward(self):
        self._state = None
        state, inputs, outputs = self._run_forward()
        values = {name: outputs[i].numpy() for i, name in enumerate(self.output_names)}
        ex = self.executor
        for name, out in zip(self.lowered.output_names, ex.outputs):
            out._data[...] = values[name]
            touch(out._data)
        for aux, output in self.lowered.aux_updates.items():
            self.aux_buffers[aux][...] = values[output]
        self._write_forward_aux()
        self._state = (state, inputs, outputs)

    def _replayable(self):
        """A second backward() after one forward needs the activations again, and ORT's state serves one backward
        run: the forward part runs again, which gives the same activations unless the graph draws random numbers
        (Dropout masks) or its forward wrote aux states (custom ops) that it reads."""
        model = self.lowered.model
        random = [n.op_type for n in model.graph.node if n.op_type in _RANDOM_OPS]
        if random or self._forward_aux:
            raise MXNetError("backward() was already called for this forward(is_train=True), and the graph %s, so "
                             "its activations cannot be recomputed for another backward; run forward(is_train=True) "
                             "again first" % ("draws random numbers (%s)" % ", ".join(sorted(set(random))) if random
                                              else "writes auxiliary states in its forward"))
        return self._run_forward()

    def backward(self, head_grads):
        pending, self._state = self._state, None
        if pending is None:
            pending = self._replayable()
        state = pending[0]
        grads_in = C.OrtValueVector()
        keep = []
        for index in self.differentiable:
            name = self.output_names[index]
            array = np.asarray(head_grads[name], order="C") if name in head_grads else \
                np.ones((), self.output_dtypes[name])
            keep.append(array)
            grads_in.push_back(C.OrtValue.ortvalue_from_numpy(array, _cpu_device()))
        grads_out = C.OrtValueVector()
        try:
            self.agent.run_backward(grads_in, grads_out, state)
            failure = None
        except Exception as err:
            failure = err
        state = pending = None
        if failure is not None:
            raise run_error(failure) from None
        raise_pending()
        by_grad_name = {name: grads_out[i].numpy() for i, name in enumerate(self.grad_names)}
        self._store_grads({name: by_grad_name[grad] for name, grad in self.grad_of.items() if grad in by_grad_name})
        self._update_moving_aux()
