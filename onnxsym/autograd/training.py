"""Training graphs of a bound symbol: the forward in training mode and its gradient, run once per step.

The symbol is lowered in training mode: loss heads contribute a scalar `loss` whose gradient is their MXNet
backward, BatchNorm and Dropout run their training behaviour, aux updates are extra outputs. onnxsym's own
reverse-mode AD (reverse.py) appends the gradient; onnxruntime-training's builders can do it instead as a
cross-check (ONNXSYM_AUTOGRAD=ort-training, ort_training.py). Two ways to run it, chosen per bind, and neither ever
runs the forward twice:
- Fused (every output is a loss head or has no gradient, the usual training graph): one forward+backward graph,
  run by `forward(is_train=True)` with all arrays bound zero-copy; `backward()` copies or adds the gradients.
- Split (some output needs a head gradient from `backward(out_grads)`): the forward part runs at
  `forward(is_train=True)` and returns the activations the backward part reads at `backward`.
"""
import os
import weakref

import numpy as np
import onnx

from ..base import MXNetError
from ..lower.builder import strip_stop_gradients
from ..lower.dtype_passes import float16_as_float32, float64_unfused, float64_without_missing_kernels
from ..lower.to_onnx import lower_symbol
from ..ops.params import moving_average_factors
from ..runtime.binding import BoundRun, copy_on_device
from ..runtime.device import device_of, externally_shared, home_copy, sync_host, touch, version, \
    version_key, versions, watch
from ..runtime.ndarray import host_buffer
from ..runtime import rng
from ..runtime.ort import create_session, run_error
from ..runtime.pyops import raise_pending
from .reverse import gradient_model, value_info

__all__ = ["make_training", "backend", "Training"]

BACKENDS = ("onnxsym", "ort-training")


def backend():
    """Who differentiates: 'onnxsym' (onnxsym's own reverse-mode AD, reverse.py, the default) or 'ort-training'
    (onnxruntime-training's builders, ort_training.py), from the environment variable ONNXSYM_AUTOGRAD."""
    name = os.environ.get("ONNXSYM_AUTOGRAD") or "onnxsym"
    if name not in BACKENDS:
        raise MXNetError("ONNXSYM_AUTOGRAD=%r: use one of %s" % (name, ", ".join(BACKENDS)))
    return name


def make_training(symbol, shapes, dtypes, wrt, ctx, executor, train_mode=True, run_shapes=None):
    """The training graph for `executor` (its arrays are bound in place); train_mode=False: the differentiable
    graph of an inference forward (BatchNorm's moving statistics, no Dropout, no aux updates). Integer arguments
    take no gradient (their gradient arrays get zeros): the rules differentiate real values. run_shapes: the
    shapes of the entries ONNX Runtime decides at run time, as a run on the bound inputs gave them (lower_symbol)."""
    wrt = [name for name in wrt if np.dtype(dtypes[name]).kind in "fc"]
    if backend() == "ort-training":
        return _ort_training(symbol, shapes, dtypes, wrt, ctx, executor, train_mode, run_shapes)
    lowered = _lowered(symbol, shapes, dtypes, train_mode, run_shapes=run_shapes)
    if lowered.head_outputs:
        return SplitTraining(lowered, wrt, ctx, executor)
    own = lambda: gradient_model(lowered.model, [(lowered.loss, None)], list(wrt))
    full, grads, _ = own() if lowered.loss is not None and wrt else (lowered.model, {}, 0)
    return FusedTraining(lowered, full, [name for name in wrt if name in grads], ctx, executor)


def _lowered(symbol, shapes, dtypes, train_mode, ort_training=False, run_shapes=None):
    """The training-mode graph; float16 values are computed in float32 (float16 gradients lose too much), and for
    onnxruntime-training the float64 ops it has no gradient kernels for are rewritten."""
    lowered = lower_symbol(symbol, shapes, dtypes, training=True, train_mode=train_mode,
                           gradients="ort-training" if ort_training else "onnxsym", run_shapes=run_shapes)
    float16_as_float32(lowered.model, keep_outputs={lowered.loss})
    if ort_training:
        float64_without_missing_kernels(lowered.model)
    return lowered


def _ort_training(symbol, shapes, dtypes, wrt, ctx, executor, train_mode, run_shapes):
    from . import ort_training  # lazy: closes a cycle (it builds on Training); the backend needs the training build
    ort_training.check_training_build()
    lowered = _lowered(symbol, shapes, dtypes, train_mode, ort_training=True, run_shapes=run_shapes)
    ort_training.prepare(lowered)
    loss_type = next((o.type.tensor_type.elem_type for o in lowered.model.graph.output if o.name == lowered.loss),
                     onnx.TensorProto.FLOAT)
    # GradientGraphBuilder seeds the loss gradient with a float32 1.0, so other loss dtypes go the split way.
    if lowered.head_outputs or loss_type != onnx.TensorProto.FLOAT:
        return ort_training.OrtSplitTraining(lowered, wrt, ctx, executor)
    full, built = ort_training.fused_gradient_model(lowered, wrt) if lowered.loss is not None and wrt \
        else (lowered.model, [])
    return FusedTraining(lowered, full, built, ctx, executor)


class Training:
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
                self._backward_aux.append((target, buffer) + moving_average_factors(momentum, target.dtype))

    @property
    def executor(self):
        return self._executor()

    def direct_applies(self):
        """Whether forward_backward() runs (FusedTraining's, where it can write the gradients in place)."""
        return False

    def is_stale(self):
        """Whether a session of this graph samples with seeds from before the last mx.random.seed."""
        return any(rng.is_stale(self.__dict__.get(name)) for name in ("session", "forward_session",
                                                                       "backward_session"))

    def __del__(self):
        for name in ("_state", "_bound", "_buffered", "_direct", "io", "agent"):
            self.__dict__.pop(name, None)
        self.__dict__.pop("_run", None)
        self.__dict__.pop("session", None)

    def _write_forward_aux(self):
        """Aux states written by the forward (custom ops)."""
        for target, buffer in self._forward_aux:
            target[...] = buffer
            touch(target)

    def _update_moving_aux(self):
        """Moving averages (BatchNorm): updated in the backward pass, once per backward() call, from the batch
        statistics of the last training forward (MXNet 1.x: a training forward alone leaves them unchanged)."""
        for target, batch, keep, take in self._backward_aux:
            target[...] = target * keep + batch * take
            touch(target)

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
            touch(array._data)


class FusedTraining(Training):
    """One forward+backward graph, every array bound through IOBinding. Its gradients land in buffers of their own
    and reach the gradient arrays at backward(), as in MXNet: a training forward alone leaves them unchanged, and
    each backward() writes or adds them again. forward_backward() (Module.fit's step) has the run write them
    straight into the gradient arrays where that gives the same arrays: no second set of buffers, no copy."""

    def __init__(self, lowered, full, wrt, ctx, executor):
        super().__init__(lowered, executor)
        self.wrt = list(wrt)
        full = float64_unfused(strip_stop_gradients(full))
        self.session = create_session(full, ctx, keep_identities=True)
        self._ctx, self._samples = ctx, rng.has_sampling(full)
        ex = executor
        self._inputs = [(i.name, host_buffer(ex._by_name[i.name])) for i in full.graph.input]
        by_output = dict(zip(lowered.output_names, ex.outputs))
        self._outputs = []      # (name, host buffer, or for a gradient its argument's name, on_device)
        for value in full.graph.output:
            name = value.name
            on_device = True            # (where there is a device: outputs and gradients stay there)
            if name in by_output:
                target = host_buffer(by_output[name])
            elif name in lowered.aux_updates.values():
                aux = next(a for a, o in lowered.aux_updates.items() if o == name)
                target, on_device = self.aux_buffers[aux], False
            elif name.endswith("_grad") and name[:-5] in ex._grad_req:
                target = name[:-5]
            else:
                target = None                        # the loss, or anything else: ORT allocates it
            self._outputs.append((name, target, on_device))
        self.grad_buffers = {}
        self._buffered = self._direct = None        # the two ways to run it, each made at its first use
        self._keys = self._direct_state = None      # after a forward_backward: the gradients' write counts
        self._direct_ok = None
        self._plan = self._unreached = None
        self._zeroed = {}

    def _run_binding(self, gradient_target):
        outputs = [(name, gradient_target(target) if isinstance(target, str) else target, on_device)
                   for name, target, on_device in self._outputs]
        return BoundRun(self.session, self._ctx, self._inputs, outputs)

    def _gradient_array(self, name):
        ex = self.executor
        return host_buffer(ex.grad_arrays[ex._arg_names.index(name)])

    @property
    def _bound(self):
        """The run into the gradient buffers (made, with them, at the first forward or backward)."""
        if self._buffered is None:
            def buffer(name):
                self.grad_buffers[name] = np.zeros_like(self._gradient_array(name))
                return self.grad_buffers[name]
            self._buffered = self._run_binding(buffer)
        return self._buffered

    def direct_applies(self):
        """Whether forward_backward can write the gradients in place: on the host, every gradient 'write', and no
        sampling (a backward() after it whose gradients were overwritten runs the graph again: same numbers)."""
        if self._direct_ok is None:     # (grad_req and the context are fixed at bind)
            ex = self.executor
            self._direct_ok = device_of(self._ctx) is None and not self._samples and \
                all(ex._grad_req[name] == "write" for name in self.wrt)
        return self._direct_ok

    def forward_backward(self):
        """forward() then backward() with the gradients written by the run into the gradient arrays."""
        if self._direct is None:
            self._direct = self._run_binding(self._gradient_array)
            for name in self.wrt:
                watch(self._gradient_array(name))
            self._keys = [version_key(self._gradient_array(name)) for name in self.wrt]
        self._direct.run()
        self._write_forward_aux()
        self._direct_state = versions(self._keys)
        self._finish_backward()

    def forward(self):
        self._direct_state = None
        self._bound.run()
        self._write_forward_aux()

    def _gradients_kept(self):
        """After forward_backward: whether the gradient arrays still hold its gradients (nothing wrote them since);
        if not, the buffered run computes them again (the inputs as they are now: after an update() in between,
        with the new weights, as MXNet's backward reads the weights in place)."""
        if versions(self._keys) == self._direct_state and not any(externally_shared(k) for k in self._keys):
            return True
        self._direct_state = None
        self._bound.run()
        return False

    def backward(self, head_grads):
        """The gradients of the last forward: every output is a loss head (head gradients do not matter), so each
        call gives the same ones ('write' copies them, 'add' adds them again; unreachable arguments get zeros)."""
        if device_of(self._ctx) is not None:
            return self._backward_on_device()
        if self._direct_state is not None and self._gradients_kept():
            return self._finish_backward()
        if self._plan is None:
            self._bound                 # (made with the gradient buffers)
            ex, buffers = self.executor, self.grad_buffers
            grads = dict(zip(ex._arg_names, ex.grad_arrays))
            self._plan = ([(grads[n]._data, buffers[n]) for n in self.wrt if ex._grad_req[n] == "write"],
                          [(grads[n]._data, buffers[n]) for n in self.wrt if ex._grad_req[n] == "add"])
        writes, adds = self._plan
        for target, value in writes:
            np.copyto(target, value)
            touch(target)
        for target, value in adds:
            target += value
            touch(target)
        self._finish_backward()

    def _finish_backward(self):
        """What each backward() does besides the gradients of `wrt`: zeros for the 'write' arrays of arguments the
        loss does not reach, and the moving statistics."""
        if self._unreached is None:
            ex = self.executor
            self._unreached = [host_buffer(array) for name, array in zip(ex._arg_names, ex.grad_arrays)
                               if ex._grad_req[name] == "write" and array is not None and name not in self.wrt]
        for target in self._unreached:
            target[...] = 0
            touch(target)
        self._update_moving_aux()

    def _backward_on_device(self):
        """As backward, with the gradients on the device: 'write' copies device to device (the gradient arrays'
        device buffers then hold the newest values), 'add' and the zeros of unreachable arguments go through the
        host."""
        ex = self.executor
        grads = dict(zip(ex._arg_names, ex.grad_arrays))
        device = self._bound.device
        for name, req in ex._grad_req.items():
            array = grads[name]
            if req == "null" or array is None:
                continue
            if name not in self.wrt:
                host = host_buffer(array)
                if req == "write" and (version(host) is None or version(host) != self._zeroed.get(name)):
                    array[:] = 0        # (once: not again while nothing wrote the array since)
                    self._zeroed[name] = version(host)
                continue
            scratch = self._bound.device_outputs[name + "_grad"][1]
            if req == "write":
                copy_on_device(scratch, home_copy(host_buffer(array), device))
            else:
                sync_host(scratch.host)
                array._data[...] += scratch.host
                touch(host_buffer(array))
        self._update_moving_aux()


class SplitTraining(Training):
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
        full, grads, n_forward = gradient_model(with_heads, seeds, list(wrt))
        self.wrt = [name for name in wrt if name in grads]
        full = float64_unfused(strip_stop_gradients(full))
        forward_model, backward_model, self.saved = _cut(full, n_forward, [o.name for o in graph.output],
                                                         [n + "_grad" for n in self.wrt])
        self.forward_session = create_session(forward_model, ctx)
        self.backward_session = create_session(backward_model, ctx) if self.wrt else None
        self.forward_inputs = [i.name for i in forward_model.graph.input]
        self.forward_outputs = [o.name for o in forward_model.graph.output]
        self.backward_inputs = [i.name for i in backward_model.graph.input]
        self._head_of = {head: output for output, head in self.heads.items()}
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
            touch(out._data)
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
                elif name in self._head_of:
                    output = self._head_of[name]
                    feeds[name] = np.asarray(head_grads[output], self.output_dtypes[output], order="C") \
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
