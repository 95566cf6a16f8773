"""Training graphs of a bound symbol: the forward in training mode and its gradient, run once per step.

The symbol is lowered in training mode: loss heads contribute a scalar `loss` whose gradient is their MXNet
backward, BatchNorm and Dropout run their training behaviour, aux updates are extra outputs. Two ways to run it,
chosen per bind, and neither ever runs the forward twice:
- Fused (every output is a loss head or has no gradient, the usual training graph): onnxruntime-training's
  GradientGraphBuilder makes one forward+backward graph, run by `forward(is_train=True)` with all arrays bound
  zero-copy (gradients land in the gradient arrays); `backward()` then only applies grad_req 'add'.
- Split (some output needs a head gradient from `backward(out_grads)`): OrtModuleGraphBuilder + TrainingAgent
  run the forward part at `forward(is_train=True)` and keep the activations until `backward` (ORT_NOTES.md §3).
"""
import json
import os
import re
import weakref

import numpy as np
import onnx

from ..base import MXNetError
from ..custom.kernels import get_kernel
from ..lower.builder import ATEN_DOMAIN, PYTHON_GRAD_PREFIX, STOP_GRADIENT_KEY, \
    aten_python_ops, python_op_dtypes, python_op_name, strip_stop_gradients
from ..lower.dtype_passes import float16_as_float32, float64_unfused, float64_without_missing_kernels
from ..lower.to_onnx import lower_symbol
from ..runtime.ort import C, create_session, ort_message, quiet_logging, run_error, session_options
from ..runtime.pyops import has_pending, raise_pending
from .reverse import gradient_model, value_info

__all__ = ["make_training"]

# Inputs the builders cannot differentiate: unreachable from the outputs, or not consumed at all (BatchNorm's
# gamma with fix_gamma). Both get zero gradients.
_UNREACHABLE = re.compile(r"Cannot compute the partial derivative for '([^']+)'|(\S+) couldn't find the consumer node")
_REGISTERED = []
# ONNX ops whose output differs between two runs on the same inputs
_RANDOM_OPS = {"Dropout", "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
               "Bernoulli"}
_CPU = C.OrtDevice(C.OrtDevice.cpu(), C.OrtDevice.default_memory(), 0)


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


def backend():
    """Who differentiates: 'onnxsym' (onnxsym's own reverse-mode AD, autograd/reverse.py) or 'ort-training'
    (onnxruntime-training's builders), from the environment variable ONNXSYM_AUTOGRAD."""
    name = os.environ.get("ONNXSYM_AUTOGRAD", "ort-training")
    if name not in ("onnxsym", "ort-training"):
        raise MXNetError("ONNXSYM_AUTOGRAD=%r: use 'onnxsym' or 'ort-training'" % name)
    return name


def make_training(symbol, shapes, dtypes, wrt, ctx, executor, train_mode=True):
    """The training graph for `executor` (its arrays are bound in place); train_mode=False: the differentiable
    graph of an inference forward (BatchNorm's moving statistics, no Dropout, no aux updates)."""
    own = backend() == "onnxsym"
    if not own:
        _register_stop_gradient()
    lowered = lower_symbol(symbol, shapes, dtypes, training=True, train_mode=train_mode)
    float16_as_float32(lowered.model, keep_outputs={lowered.loss})
    float64_without_missing_kernels(lowered.model)
    if own:
        if lowered.head_outputs:
            return OwnSplitTraining(lowered, wrt, ctx, executor)
        return FusedTraining(lowered, wrt, ctx, executor, own=True)
    _register_python_gradients(lowered.model)
    loss_type = next((o.type.tensor_type.elem_type for o in lowered.model.graph.output if o.name == lowered.loss),
                     onnx.TensorProto.FLOAT)
    # GradientGraphBuilder seeds the loss gradient with a float32 1.0, so other loss dtypes go the split way.
    if lowered.head_outputs or loss_type != onnx.TensorProto.FLOAT:
        return SplitTraining(lowered, wrt, ctx, executor)
    return FusedTraining(lowered, wrt, ctx, executor)


class _Training:
    def __init__(self, lowered, executor):
        self.lowered = lowered
        # A weak reference: no executor <-> graph cycle, so that objects die by reference counting in the order
        # __del__ gives (ORT's IOBinding and TrainingAgent must go before the session they point into).
        self._executor = weakref.ref(executor)
        self.output_dtypes = {o.name: onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                              for o in lowered.model.graph.output}
        self.aux_buffers = {name: np.zeros_like(executor._by_name[name]._data) for name in lowered.aux_updates}
        self._forward_aux, self._backward_aux = [], []
        for name, buffer in self.aux_buffers.items():
            target = executor._by_name[name]._data
            momentum = lowered.aux_momentum.get(name)
            if momentum is None:
                self._forward_aux.append((target, buffer))
            else:       # the same scalars as MXNet's update: state * m + batch * (1 - m), in the state's dtype
                self._backward_aux.append((target, buffer, target.dtype.type(momentum),
                                           target.dtype.type(1 - momentum)))

    @property
    def executor(self):
        return self._executor()

    def __del__(self):
        for name in ("_state", "io", "agent"):
            self.__dict__.pop(name, None)
        self.__dict__.pop("_run", None)
        self.__dict__.pop("session", None)

    def _write_forward_aux(self):
        """Aux states written by the forward (custom ops)."""
        for target, buffer in self._forward_aux:
            target[...] = buffer

    def _update_moving_aux(self):
        """Moving averages (BatchNorm): updated in the backward pass, once per backward() call, from the batch
        statistics of the last training forward (MXNet 1.x: a training forward alone leaves them unchanged)."""
        for target, batch, keep, take in self._backward_aux:
            target[...] = target * keep + batch * take

    def _store_grads(self, grads):
        """grads: {argument name: array or None}; 'write' replaces, 'add' accumulates, unreachable -> zeros."""
        ex = self.executor
        for name, array in zip(ex._arg_names, ex.grad_arrays):
            req = ex._grad_req[name]
            if req == "null" or array is None:
                continue
            grad = grads.get(name)
            if req == "add":
                if grad is not None:
                    array._data += grad
            elif grad is None:
                array._data[...] = 0
            else:
                array._data[...] = grad


class FusedTraining(_Training):
    """One forward+backward graph, every array bound through IOBinding."""

    def __init__(self, lowered, wrt, ctx, executor, own=False):
        super().__init__(lowered, executor)
        model = lowered.model
        if lowered.loss is None or not wrt:
            self.wrt = []
            full = model
        elif own:
            full, grads = gradient_model(model, [(lowered.loss, None)], list(wrt))
            self.wrt = [name for name in wrt if name in grads]
        else:
            builder, self.wrt = _build(lambda names: self._builder(model, names), wrt)
            full = onnx.load_from_string(builder.get_model()) if self.wrt else model
        full = float64_unfused(strip_stop_gradients(full))
        self.session = create_session(full, ctx)
        ex = executor
        io = self.session.io_binding()
        names = {i.name for i in full.graph.input}
        for name in names:
            io.bind_cpu_input(name, ex._by_name[name]._data)
        by_output = dict(zip(lowered.output_names, ex.outputs))
        # Gradients land in buffers of their own and reach the gradient arrays at backward(), as in MXNet: a
        # training forward alone leaves them unchanged, and each backward() writes or adds them again.
        self.grad_buffers = {}
        for value in full.graph.output:
            name = value.name
            if name in by_output:
                target = by_output[name]._data
            elif name in lowered.aux_updates.values():
                aux = next(a for a, o in lowered.aux_updates.items() if o == name)
                target = self.aux_buffers[aux]
            elif name.endswith("_grad") and name[:-5] in ex._grad_req:
                arg = name[:-5]
                grad = ex.grad_arrays[ex._arg_names.index(arg)]
                target = self.grad_buffers[arg] = np.zeros_like(grad._data)
            else:
                io.bind_output(name, "cpu")         # the loss, or anything else: ORT allocates it
                continue
            io.bind_output(name, "cpu", 0, target.dtype, list(target.shape), target.ctypes.data)
        self.io = io
        self._run = self.session._sess.run_with_iobinding
        self._plan = None

    def _builder(self, model, wrt):
        loss = self.lowered.loss
        builder = C.GradientGraphBuilder(model.SerializeToString(), {loss}, set(wrt), loss, session_options())
        builder.build()
        return builder

    def forward(self):
        try:
            self._run(self.io._iobinding, None)
        except Exception as err:
            raise run_error(err) from None
        raise_pending()
        self._write_forward_aux()

    def backward(self, head_grads):
        """The gradients of the last forward: every output is a loss head (head gradients do not matter), so each
        call gives the same ones ('write' copies them, 'add' adds them again; unreachable arguments get zeros)."""
        if self._plan is None:
            ex = self.executor
            grads = dict(zip(ex._arg_names, ex.grad_arrays))
            reqs = ex._grad_req
            self._plan = ([(grads[n]._data, self.grad_buffers[n]) for n in self.wrt if reqs[n] == "write"],
                          [(grads[n]._data, self.grad_buffers[n]) for n in self.wrt if reqs[n] == "add"],
                          [grads[n]._data for n, r in reqs.items()
                           if r == "write" and grads[n] is not None and n not in self.wrt])
        writes, adds, zeros = self._plan
        for target, value in writes:
            np.copyto(target, value)
        for target, value in adds:
            target += value
        for target in zeros:
            target[...] = 0
        self._update_moving_aux()


class SplitTraining(_Training):
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
        self.agent = C.TrainingAgent(self.session._sess, self.input_names, [_CPU] * len(self.output_names),
                                     self.grad_names, [_CPU] * len(self.grad_names), 0)

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
            inputs.push_back(C.OrtValue.ortvalue_from_numpy(ex._by_name[name]._data, _CPU))
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
            array = np.ascontiguousarray(head_grads[name]) if name in head_grads else \
                np.ones((), self.output_dtypes[name])
            keep.append(array)
            grads_in.push_back(C.OrtValue.ortvalue_from_numpy(array, _CPU))
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


class OwnSplitTraining(_Training):
    """Some outputs take head gradients (onnxsym's AD): the gradient graph cut in two sessions. The forward part
    runs at forward(is_train=True) and returns, besides the outputs, the activations the backward part reads;
    backward(out_grads) runs the backward part on them and the head gradients (any number of times)."""

    def __init__(self, lowered, wrt, ctx, executor):
        super().__init__(lowered, executor)
        model = lowered.model
        graph = model.graph
        self.heads = {}
        seeds = [(lowered.loss, None)] if lowered.loss is not None else []
        for position in lowered.head_outputs:
            name = lowered.output_names[position]
            head = name + "_head_grad"
            self.heads[name] = head
            seeds.append((name, head))
        with_heads = onnx.ModelProto()
        with_heads.CopyFrom(model)
        for name, head in self.heads.items():
            value = next(o for o in graph.output if o.name == name)
            entry = with_heads.graph.input.add()
            entry.CopyFrom(value)
            entry.name = head
        full, grads = gradient_model(with_heads, seeds, list(wrt))
        self.wrt = [name for name in wrt if name in grads]
        full = float64_unfused(strip_stop_gradients(full))
        forward_model, backward_model, self.saved = _cut(full, len(graph.node), [o.name for o in graph.output],
                                                         [n + "_grad" for n in self.wrt])
        self.forward_session = create_session(forward_model, ctx)
        self.backward_session = create_session(backward_model, ctx) if self.wrt else None
        self.forward_inputs = [i.name for i in forward_model.graph.input]
        self.forward_outputs = [o.name for o in forward_model.graph.output]
        self.backward_inputs = [i.name for i in backward_model.graph.input]
        self._saved_values = None

    def forward(self):
        ex = self.executor
        feeds = {name: ex._by_name[name]._data for name in self.forward_inputs}
        try:
            values = self.forward_session.run(None, feeds)
        except Exception as err:
            raise run_error(err) from None
        raise_pending()
        values = dict(zip(self.forward_outputs, values))
        for name, out in zip(self.lowered.output_names, ex.outputs):
            out._data[...] = values[name]
        for aux, output in self.lowered.aux_updates.items():
            self.aux_buffers[aux][...] = values[output]
        self._write_forward_aux()
        self._saved_values = {name: values[name] for name in self.saved}

    def backward(self, head_grads):
        if self._saved_values is None:
            raise MXNetError("backward() needs a forward(is_train=True) first")
        grads = {}
        if self.backward_session is not None:
            ex = self.executor
            feeds = {}
            for name in self.backward_inputs:
                if name in self._saved_values:
                    feeds[name] = self._saved_values[name]
                elif name in self.heads.values():
                    output = next(o for o, h in self.heads.items() if h == name)
                    feeds[name] = np.ascontiguousarray(head_grads[output], dtype=self.output_dtypes[output]) \
                        if output in head_grads else np.ones(self._saved_shape(output), self.output_dtypes[output])
                else:
                    feeds[name] = ex._by_name[name]._data
            try:
                values = self.backward_session.run(None, feeds)
            except Exception as err:
                raise run_error(err) from None
            raise_pending()
            by_name = dict(zip([o.name for o in self.backward_session.get_outputs()], values))
            grads = {name: by_name[name + "_grad"] for name in self.wrt}
        self._store_grads(grads)
        self._update_moving_aux()

    def _saved_shape(self, output):
        ex = self.executor
        return ex.outputs[self.lowered.output_names.index(output)].shape


def _cut(model, n_forward, forward_outputs, backward_outputs):
    """(forward model, backward model, saved names): the first `n_forward` nodes and the rest, the values the
    backward part reads from the forward part becoming outputs of one and inputs of the other."""
    graph = model.graph
    forward_nodes, backward_nodes = list(graph.node[:n_forward]), list(graph.node[n_forward:])
    produced = {name for node in forward_nodes for name in node.output}
    types = {v.name: v for v in list(graph.value_info) + list(graph.output) + list(graph.input)}
    read = [name for node in backward_nodes for name in node.input if name]
    saved = sorted({name for name in read if name in produced and name not in forward_outputs} |
                   {name for name in read if name in produced and name in forward_outputs})
    graph_inputs = {i.name: i for i in graph.input}
    forward_reads = {name for node in forward_nodes for name in node.input}

    inferred = value_info(model)

    def typed(name):
        if name in types:
            return types[name]
        if name in inferred:
            shape, dtype = inferred[name]
            return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(dtype),
                                                      list(shape) if shape is not None else None)
        raise MXNetError("the gradient graph needs the type of %s to split it" % name)

    forward = onnx.helper.make_graph(
        forward_nodes, graph.name + "_forward", [i for i in graph.input if i.name not in _head_names(graph)],
        [typed(n) for n in forward_outputs] + [typed(n) for n in saved if n not in forward_outputs],
        [t for t in graph.initializer if t.name in forward_reads], value_info=list(graph.value_info))
    backward_reads = set(read)
    backward_inputs = [typed(n) for n in saved] + [graph_inputs[n] for n in graph_inputs if n in backward_reads]
    backward = onnx.helper.make_graph(
        backward_nodes, graph.name + "_backward", backward_inputs,
        [typed(n) for n in backward_outputs], [t for t in graph.initializer if t.name in backward_reads],
        value_info=list(graph.value_info))
    opsets = list(model.opset_import)
    make = lambda g: onnx.helper.make_model(g, opset_imports=opsets, ir_version=model.ir_version,
                                           functions=list(model.functions))
    return make(forward), make(backward), saved


def _head_names(graph):
    return {i.name for i in graph.input if i.name.endswith("_head_grad")}
