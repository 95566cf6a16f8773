"""The split forward/backward training graph of a bound symbol (ORT_NOTES.md §3).

The symbol is lowered in training mode (loss heads contribute a scalar `loss` whose gradient is their MXNet
backward, BatchNorm/Dropout run their training behaviour, aux updates are extra outputs). OrtModuleGraphBuilder
differentiates it; a TrainingAgent runs the forward part when `forward(is_train=True)` is called and keeps the
activations until `backward`, so the forward never runs twice.
"""
import re

import numpy as np
import onnx

from ..base import MXNetError
from ..lower.builder import STOP_GRADIENT_KEY, strip_stop_gradients
from ..lower.to_onnx import lower_symbol
from ..runtime.ort import C, create_session, ort_message, quiet_logging

__all__ = ["TrainingGraph"]

# Inputs the builder cannot differentiate: unreachable from the outputs, or not consumed at all (BatchNorm's
# gamma with fix_gamma). Both get zero gradients.
_UNREACHABLE = re.compile(r"Cannot compute the partial derivative for '([^']+)'|(\S+) couldn't find the consumer node")
_REGISTERED = []


def _register_stop_gradient():
    if not _REGISTERED:     # process-global, first registration wins (ORT_NOTES.md top)
        C.register_custom_stop_gradient_edges(STOP_GRADIENT_KEY, {0})
        _REGISTERED.append(True)


def _build(model_bytes, wrt):
    """OrtModuleGraphBuilder on `model_bytes` for the inputs `wrt`; unreachable ones are dropped (zero grads)."""
    wrt = list(wrt)
    while True:
        config = C.OrtModuleGraphBuilderConfiguration()
        config.initializer_names = []
        config.initializer_names_to_train = []
        config.input_names_require_grad = wrt
        config.build_gradient_graph = True
        builder = C.OrtModuleGraphBuilder()
        try:
            with quiet_logging():
                builder.initialize(model_bytes, config)
                builder.build(C.TrainingGraphTransformerConfiguration())
        except RuntimeError as err:
            match = _UNREACHABLE.search(str(err))
            name = match and (match.group(1) or match.group(2))
            if name in wrt:
                wrt.remove(name)
                continue
            raise MXNetError("onnxruntime-training could not build the gradient graph: %s" % ort_message(err)) \
                from None
        return builder, wrt


class TrainingGraph:
    """Forward (training mode) and backward of one symbol for fixed input shapes and dtypes."""

    def __init__(self, symbol, shapes, dtypes, wrt, ctx):
        _register_stop_gradient()
        self.lowered = lower_symbol(symbol, shapes, dtypes, training=True)
        builder, self.wrt = _build(self.lowered.model.SerializeToString(), wrt)
        info = builder.get_graph_info()
        model = strip_stop_gradients(onnx.load_from_string(builder.get_gradient_model()))
        self.session = create_session(model, ctx)
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = list(info.user_output_names)
        self.grad_names = [o.name for o in model.graph.output]
        skip = set(info.output_grad_indices_non_differentiable)
        self.differentiable = [i for i in range(len(self.output_names)) if i not in skip]
        self.grad_of = {name: grad for name, grad in info.user_input_grad_names.items()}
        device = C.OrtDevice(C.OrtDevice.cpu(), C.OrtDevice.default_memory(), 0)
        self._device = device
        self.agent = C.TrainingAgent(self.session._sess, self.input_names, [device] * len(self.output_names),
                                     self.grad_names, [device] * len(self.grad_names), 0)
        self.output_shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim]
                              for o in self.lowered.model.graph.output}
        self.output_dtypes = {o.name: onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                              for o in self.lowered.model.graph.output}

    def value(self, array):
        return C.OrtValue.ortvalue_from_numpy(array, self._device)

    def forward(self, feeds):
        """Run the forward part on {input name: contiguous numpy array}. Returns ({output name: array view of
        ORT memory}, state for backward)."""
        inputs = C.OrtValueVector()
        for name in self.input_names:
            inputs.push_back(self.value(feeds[name]))
        outputs = C.OrtValueVector()
        state = C.PartialGraphExecutionState()
        try:
            self.agent.run_forward(inputs, outputs, state, C.OrtValueCache())
        except Exception as err:
            raise MXNetError("ONNX Runtime failed in the training forward: %s" % err) from None
        return {name: outputs[i].numpy() for i, name in enumerate(self.output_names)}, (state, inputs, outputs)

    def backward(self, state, head_grads):
        """Run the backward part with {output name: gradient array} for the differentiable outputs. Returns
        {input name: gradient array} for the inputs in `wrt`."""
        state, _inputs, _outputs = state
        grads_in = C.OrtValueVector()
        keep = []
        for index in self.differentiable:
            array = np.ascontiguousarray(head_grads[self.output_names[index]])
            keep.append(array)
            grads_in.push_back(self.value(array))
        grads_out = C.OrtValueVector()
        try:
            self.agent.run_backward(grads_in, grads_out, state)
        except Exception as err:
            raise MXNetError("ONNX Runtime failed in the backward pass: %s" % err) from None
        by_grad_name = {name: grads_out[i].numpy() for i, name in enumerate(self.grad_names)}
        return {name: by_grad_name[grad] for name, grad in self.grad_of.items() if grad in by_grad_name}
