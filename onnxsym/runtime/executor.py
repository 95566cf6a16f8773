"""Executor: a bound Symbol running as one ORT session, with arrays bound zero-copy through IOBinding."""
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from .._shapes import user_shape
from ..base import MXNetError, MXNetIndexError
from ..context import Context, current_context
from ..util import is_np_shape
from ..lower.to_onnx import is_static, lower_symbol
from ..symbol.infer import check_float_inputs
from .ndarray import NDArray, defer, host_buffer
from .sparse import argument_stypes, gradient_stypes, is_sparse, sparse_array
from .binding import BoundRun
from .folding import FoldedRuns
from . import monitoring, rng
from .ort import create_session, shrink_arena

__all__ = ["Executor", "bind", "simple_bind"]

GRAD_REQS = ("write", "add", "null", "inplace")
_COMPILED = OrderedDict()      # (graph, shapes, dtypes, ctx) -> (lowered, session, weak refs to the graph's outputs)
_COMPILED_SIZE = 64


def _compile(symbol, shapes, dtypes, ctx):
    key = (tuple((id(n), i) for n, i in symbol.outputs), tuple(sorted(shapes.items())),
           tuple(sorted((k, np.dtype(v).str) for k, v in dtypes.items())), ctx, is_np_shape())
    entry = _COMPILED.get(key)
    if entry is not None and all(ref() is node for ref, (node, _) in zip(entry[2], symbol.outputs)):
        _COMPILED.move_to_end(key)
        return entry[0], entry[1]
    check_float_inputs(symbol.outputs, dtypes)
    lowered = lower_symbol(symbol, shapes, dtypes)
    session = create_session(lowered.model, ctx)
    # An entry lives while its graph's output nodes do (their ids are in the key): nobody can bind a dropped graph
    # again, and its session would only hold memory (~3.5 MB with custom ops' Python kernels).
    refs = [weakref.ref(node, _forget(key)) for node, _ in symbol.outputs]
    _COMPILED[key] = (lowered, session, refs)
    if len(_COMPILED) > _COMPILED_SIZE:
        _COMPILED.popitem(last=False)
    return lowered, session


def _forget(key):
    def callback(dead):
        entry = _COMPILED.get(key)
        if entry is not None and any(ref is dead for ref in entry[2]):
            _COMPILED.pop(key, None)
    return callback


def _array_list(values, names, what, allow_missing):
    if isinstance(values, (list, tuple)):
        if len(values) != len(names):
            raise ValueError("Length of %s does not match the number of arguments: %d given for %d (%s)"
                             % (what, len(values), len(names), ", ".join(names)))
        arrays = list(values)
    elif isinstance(values, dict):
        arrays = []
        for name in names:
            if name in values:
                arrays.append(values[name])
            elif allow_missing:
                arrays.append(None)
            else:
                raise ValueError("key `%s` is missing in `%s`" % (name, what))
    else:
        raise TypeError("Only accept list of NDArrays or dict of str to NDArray for %s" % what)
    for name, array in zip(names, arrays):
        if array is not None and not isinstance(array, NDArray):
            raise TypeError("%s['%s'] must be an NDArray, got %s" % (what, name, type(array).__name__))
    return arrays


def _grad_reqs(grad_req, names, strict=False):
    if isinstance(grad_req, str):
        reqs = [grad_req] * len(names)
    elif isinstance(grad_req, (list, tuple)):
        if len(grad_req) != len(names):
            raise ValueError("grad_req list has %d entries for %d arguments" % (len(grad_req), len(names)))
        reqs = list(grad_req)
    elif isinstance(grad_req, dict):
        unknown = [k for k in grad_req if k not in names]
        if unknown and strict:      # simple_bind: MXNet's C layer refuses them
            raise ValueError("grad_req names unknown arguments: %s" % ", ".join(unknown))
        if unknown:
            # bind: MXNet reads the entries of the symbol's arguments and ignores the others (its tests pass a
            # 'b' for a no_bias Convolution); a warning points at a misspelt name
            warnings.warn("grad_req names %s, which %s not an argument of the symbol (arguments: %s): ignored"
                          % (", ".join(unknown), "is" if len(unknown) == 1 else "are", ", ".join(names)),
                          stacklevel=3)
        reqs = [grad_req.get(n, "null") for n in names]
    else:
        raise TypeError("grad_req must be a str, list or dict, got %s" % type(grad_req).__name__)
    for name, req in zip(names, reqs):
        if req not in GRAD_REQS:
            raise ValueError("grad_req '%s' for argument '%s' is not one of %s" % (req, name, ", ".join(GRAD_REQS)))
    return ["write" if r == "inplace" else r for r in reqs]


def bind(symbol, ctx, args, args_grad=None, grad_req="write", aux_states=None, shared_exec=None):
    arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
    arg_arrays = _array_list(args, arg_names, "args", allow_missing=False)
    grad_arrays = ([None] * len(arg_names) if args_grad is None
                   else _array_list(args_grad, arg_names, "args_grad", allow_missing=True))
    aux_arrays = _array_list(aux_states if aux_states is not None else [], aux_names, "aux_states",
                             allow_missing=False)
    reqs = _grad_reqs(grad_req, arg_names)
    reqs = ["null" if g is None else r for g, r in zip(grad_arrays, reqs)]
    return Executor(symbol, ctx, arg_arrays, grad_arrays, reqs, aux_arrays)


def _check_bind_shape(name, shape):
    """simple_bind allocates what it is given: every dimension must be known (MXNet fails with an OverflowError on
    -1 and "cannot decide shapes" on (); 0 stays MXNet's unknown dimension, reported with the undecided shapes)."""
    shape = user_shape(shape, name, "simple_bind")
    if not shape:
        raise MXNetError("simple_bind: the shape given for '%s' is (): give its full shape (MXNet 1.x reads () as "
                         "an unknown shape)" % name)
    if min(shape) < 0:
        raise MXNetError("simple_bind: the shape %s given for '%s' has a negative dimension: give every dimension"
                         % (shape, name))


def simple_bind(symbol, ctx, grad_req="write", type_dict=None, shared_arg_names=None, shared_exec=None,
                shared_buffer=None, shapes=None, stype_dict=None):
    """Allocate every array from the inferred shapes (zeros). With a `shared_buffer` dict, as MXNet's simple_bind:
    - aux states are `shared_exec`'s own arrays, and so are the arguments named in `shared_arg_names` (with their
      gradients): their shapes and dtypes must equal the inferred ones (MXNetError naming the array otherwise);
    - other arguments (and gradients) reuse the memory of `shared_buffer[name]` when it is large enough, else get
      a new array that is stored back into `shared_buffer`.
    Without `shared_buffer` every array is new (MXNet then shares only scratch memory with `shared_exec`).
    Storage types: an argument's is `stype_dict`'s or its variable's (stype=), its gradient's MXNet's inferred one
    (runtime/sparse.py)."""
    names = symbol.list_arguments() + symbol.list_auxiliary_states()
    # MXNet reads only tuple values as shapes: other keywords that name no argument (test code passes an op's own
    # attributes, axis=-1, mode='clip') are ignored; a non-tuple shape of an argument is refused here
    shapes = {name: shape for name, shape in (shapes or {}).items() if name in names or isinstance(shape, tuple)}
    for name, shape in shapes.items():
        _check_bind_shape(name, shape)
    arg_shapes, _, aux_shapes = symbol.infer_shape_partial(**shapes)
    unknown = ["%s: %s" % (n, s) for n, s in zip(names, list(arg_shapes) + list(aux_shapes)) if not s or 0 in s]
    if unknown:
        raise MXNetError("simple_bind: cannot decide the shapes of the following arguments (0s in shape means "
                         "unknown dimensions); give them as keyword arguments: %s" % ", ".join(unknown))
    arg_types, _, aux_types = symbol.infer_type(**(type_dict or {}))
    if arg_types is None:
        defaults = {n: np.float32 for n in symbol.list_arguments()}
        defaults.update(type_dict or {})
        arg_types, _, aux_types = symbol.infer_type(**defaults)
    arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
    reqs = _grad_reqs(grad_req, arg_names, strict=True)
    ctx = ctx or current_context()
    if shared_arg_names is not None and not isinstance(shared_arg_names, list):
        raise ValueError("shared_arg_names in simple_bind must be a list or None")
    if shared_buffer is not None and not isinstance(shared_buffer, dict):
        raise ValueError("shared_buffer in simple_bind must be dict or None")
    if shared_buffer is None:
        shared_exec = None
    shared_names = set(shared_arg_names or ())

    def from_shared_exec(table, name, kind, shape, dtype):
        array = table.get(name)
        if array is None:
            raise MXNetError("simple_bind: shared_exec has no %s '%s' to share" % (kind, name))
        if tuple(array.shape) != tuple(shape) or np.dtype(array.dtype) != np.dtype(dtype):
            raise MXNetError("simple_bind: the inferred shape %s (%s) of %s '%s' does not match shared_exec's "
                             "array %s (%s), so it cannot be shared" % (tuple(shape), np.dtype(dtype).name, kind,
                                                                       name, tuple(array.shape),
                                                                       np.dtype(array.dtype).name))
        return array

    arg_stypes = argument_stypes(symbol, stype_dict)
    grad_stypes = gradient_stypes(symbol, arg_stypes)

    def reshape_or_create(key, shape, dtype):
        stype = grad_stypes[key[len("grad of "):]] if key.startswith("grad of ") else arg_stypes[key]
        if stype != "default":
            return sparse_array(stype, np.zeros(shape, dtype), ctx)     # (sparse arrays are not pooled)
        if shared_buffer is None:
            return NDArray(np.zeros(shape, dtype), ctx)
        pooled = shared_buffer.get(key)
        size = int(np.prod(shape))
        if pooled is not None and pooled.size >= size and np.dtype(pooled.dtype) == np.dtype(dtype):
            return NDArray(pooled._data.reshape(-1)[:size].reshape(shape), ctx)
        shared_buffer[key] = NDArray(np.zeros(shape, dtype), ctx)
        return shared_buffer[key]

    args, grads = [], []
    for name, shape, dtype, req in zip(arg_names, arg_shapes, arg_types, reqs):
        if name in shared_names and shared_exec is not None:
            args.append(from_shared_exec(shared_exec.arg_dict, name, "argument", shape, dtype))
            grads.append(None if req == "null" else
                         from_shared_exec(shared_exec.grad_dict, name, "gradient of argument", shape, dtype))
        elif name in shared_names:
            args.append(sparse_array(arg_stypes[name], np.zeros(shape, dtype), ctx))
            grads.append(None if req == "null" else sparse_array(grad_stypes[name], np.zeros(shape, dtype), ctx))
        else:
            args.append(reshape_or_create(name, shape, dtype))
            grads.append(None if req == "null" else reshape_or_create("grad of " + name, shape, dtype))
    if shared_exec is not None:
        aux = [from_shared_exec(shared_exec.aux_dict, n, "auxiliary state", s, t)
               for n, s, t in zip(aux_names, aux_shapes, aux_types)]
    else:
        aux = [NDArray(np.zeros(s, t), ctx) for s, t in zip(aux_shapes, aux_types)]
    # the arguments whose shapes were inferred are the parameters (MXNet's convention: simple_bind is given the
    # data's shapes): with the auxiliary states, the constants of inference forwards while nothing writes them
    # (runtime/folding.py); given every shape, the executor finds its constants out at its second forward
    inferred = [n for n in arg_names if n not in shapes]
    return Executor(symbol, ctx, args, grads, reqs, aux, frozen=inferred + list(aux_names) if inferred else None)


class Executor:
    """Runs a bound symbol. `arg_dict`, `aux_dict` and `outputs` are NDArrays bound zero-copy to the ORT
    session, so `exe.arg_dict['data'][:] = batch; exe.forward()` needs no rebuild."""

    def __init__(self, symbol, ctx, arg_arrays, grad_arrays, grad_reqs, aux_arrays, output_pool=None, frozen=None):
        """`frozen`: the parameters and auxiliary states (a Module's, simple_bind's), which inference forwards take
        as constants while nothing writes them (runtime/folding.py; other executors find theirs out)."""
        self._symbol = symbol
        self._ctx = Context(ctx) if ctx is not None else current_context()
        self.arg_arrays = list(arg_arrays)
        self.grad_arrays = list(grad_arrays)
        self.aux_arrays = list(aux_arrays)
        self._arg_names = symbol.list_arguments()
        # checked again here for callers that build executors directly (Module)
        self._grad_req = dict(zip(self._arg_names, _grad_reqs(list(grad_reqs), self._arg_names)))
        self._aux_names = symbol.list_auxiliary_states()
        self._out_names = symbol.list_outputs()
        names = self._arg_names + self._aux_names
        arrays = self.arg_arrays + self.aux_arrays
        self._check_unique(names)
        shapes = {n: a.shape for n, a in zip(names, arrays)}
        dtypes = {n: np.dtype(a.dtype) for n, a in zip(names, arrays)}
        self._lowered, self._session = _compile(symbol, shapes, dtypes, self._ctx)
        # a graph that samples, with gradients asked for: an inference forward runs the differentiable graph, so
        # that backward differentiates the draws the outputs show (running it again would draw others)
        self._differentiates = any(r != "null" for r in self._grad_req.values())
        self._samples_for_backward = rng.has_sampling(self._lowered.model) and self._differentiates
        self._check_grad_shapes()
        self.outputs = []
        for i, (node, index) in enumerate(symbol.outputs):
            key = (id(node), index)
            shape, dtype = self._lowered.entry_shapes[key], self._lowered.entry_dtypes[key]
            pooled = output_pool[i] if output_pool is not None else None
            if pooled is not None and is_static(shape) and pooled.size >= int(np.prod(shape)) and \
                    np.dtype(pooled.dtype) == np.dtype(dtype):
                # Executor.reshape: the outputs live in the memory of the original executor's (as MXNet's)
                self.outputs.append(NDArray(pooled._data.reshape(-1)[:int(np.prod(shape))].reshape(shape),
                                            self._ctx))
                continue
            # (a shape decided at each run, imported ONNX graphs: an empty array until the first forward)
            self.outputs.append(NDArray(np.zeros(shape if is_static(shape) else (0,), dtype), self._ctx))
        self._by_name = dict(zip(names, arrays))
        self._shapes, self._dtypes = shapes, dtypes
        self._bind_io()
        self._frozen = list(frozen) if frozen is not None else None
        self._folding = FoldedRuns(self._lowered, self._ctx, self._by_name, self._output_bindings, frozen) \
            if FoldedRuns.applies(self._lowered, self._ctx, self._forward_aux) else None
        self._monitor = None
        self._training = None       # TrainingGraph, built at the first forward(is_train=True)
        self._inference_grad = None  # the same with the ops in inference mode, for backward after forward()
        self._probe = None          # a session telling the shapes ORT decides at each run (imported graphs)
        self._pending = None        # what backward differentiates: "train", "inference" (to run again), "inference-kept"

    def __del__(self):
        # The IOBinding points into the session: release it first (attribute order would free the session
        # first once the compile cache has dropped it).
        for name in ("_pending", "_folding", "_bound", "_training", "_inference_grad", "_session"):
            self.__dict__.pop(name, None)

    @staticmethod
    def _check_unique(names):
        seen = set()
        for name in names:
            if name in seen:
                raise MXNetError("The symbol has two inputs named '%s'; input names must be unique" % name)
            seen.add(name)

    def _check_grad_shapes(self):
        for name, arr, grad in zip(self._symbol.list_arguments(), self.arg_arrays, self.grad_arrays):
            if grad is not None and grad.shape != arr.shape:
                raise MXNetError("Gradient array for argument '%s' has shape %s, expected %s"
                                 % (name, grad.shape, arr.shape))

    def _bind_io(self):
        inputs = []
        for name in self._lowered.input_names:
            array = self._by_name[name]
            if not host_buffer(array).flags.c_contiguous:
                array._data = np.asarray(array._data, order="C")
            inputs.append((name, host_buffer(array)))
        # Ops that write auxiliary states in their forward (the optimizer updates' FMutateInputs: update_aux
        # without momentum) do so in an inference forward too: their new values land in scratch buffers, copied
        # into the aux arrays after the run (ORT must not write an input it is still reading).
        self._forward_aux = [(output, np.zeros_like(host_buffer(self._by_name[name])), self._by_name[name])
                             for name, output in self._lowered.aux_updates.items()
                             if self._lowered.aux_momentum.get(name) is None]
        self._bound = BoundRun(self._session, self._ctx, inputs, self._output_bindings() +
                               [(output, scratch, False) for output, scratch, _ in self._forward_aux])

    def _output_bindings(self):
        """[(output name, host buffer of a static shape or the NDArray, on_device)] as BoundRun binds them."""
        shapes = [self._lowered.entry_shapes[(id(node), index)] for node, index in self._symbol.outputs]
        return [(name, host_buffer(out) if is_static(shape) else out, True)
                for name, out, shape in zip(self._lowered.output_names, self.outputs, shapes)]

    # ----- dictionaries -----
    @property
    def arg_dict(self):
        return dict(zip(self._symbol.list_arguments(), self.arg_arrays))

    @property
    def grad_dict(self):
        return dict(zip(self._symbol.list_arguments(), self.grad_arrays))

    @property
    def aux_dict(self):
        return dict(zip(self._symbol.list_auxiliary_states(), self.aux_arrays))

    @property
    def output_dict(self):
        return dict(zip(self._symbol.list_outputs(), self.outputs))

    # ----- running -----
    def forward(self, is_train=False, **kwargs):
        """Run the graph on the bound arrays (after copying any `name=array` keyword arguments into them).

        is_train=True runs the training graph: BatchNorm uses batch statistics and updates the moving ones in
        aux_dict, Dropout drops, and the activations are kept for `backward`. An index out of bounds found while
        running (take with mode='raise', gather_nd) is raised, as MXNet's engine raises it, when the outputs are
        next read (or by mx.nd.waitall())."""
        if kwargs:
            self._copy_inputs(kwargs)
        return self._run_forward(is_train)

    def forward_borrowing(self, buffers):
        """An inference forward reading `buffers` {argument name: host numpy array of that argument's shape and
        dtype, C-contiguous} in place of those arguments' arrays, which keep their values: Module.predict's batches
        without a copy. False, with nothing run, where it cannot (a device, a monitor, an inference forward kept
        for backward, a buffer of another shape or dtype): the caller copies them in and runs forward()."""
        if self._bound.device is not None or self._monitor is not None or self._samples_for_backward:
            return False
        for name, buffer in buffers.items():
            array = self._by_name.get(name)
            if type(array) is not NDArray or not isinstance(buffer, np.ndarray) or \
                    buffer.dtype != array._data.dtype or buffer.shape != array._data.shape or \
                    not buffer.flags.c_contiguous:
                return False
        self._run_forward(False, buffers)
        return True

    def end_borrowing(self):
        """After forwards by forward_borrowing: the sessions read the arguments' arrays again (and hold no batch)."""
        for bound in (self._bound, self._folding and self._folding.bound):
            if bound is not None:
                bound.end_borrowing()

    def _run_forward(self, is_train, borrowed=None):
        for out in self.outputs:
            out._pending = None
        try:
            outputs = self._forward(is_train, borrowed)
            if self._monitor is not None:
                monitoring.after_forward(self, is_train)
            return outputs
        except MXNetIndexError as err:
            self._pending = None        # nothing to differentiate: a backward runs the forward again
            err.__context__ = err.__cause__ = None
            holder = defer(err.with_traceback(None))
            for out in self.outputs:
                out._pending = holder
            return self.outputs

    def _forward(self, is_train, borrowed):
        if is_train:
            return self._forward_train()
        if self._samples_for_backward:
            return self.forward_for_backward()
        self._pending = "inference"
        if self._folding is not None and self._monitor is None and self._folding.run(borrowed):
            return self.outputs
        if rng.is_stale(self._session):
            # reseeded since the session was made: a new one samples from the new stream
            self._session = create_session(self._lowered.model, self._ctx)
            self._bind_io()
        # the first run left to this session where a folded one may take over next gives its arena back: otherwise
        # the process keeps the activations' arena of a session it no longer runs (serving ResNet-18: 649 -> 544
        # MiB peak); not later ones (cooldown, inputs that all change): a shrunk arena is allocated again at the
        # next run, 10-25 % of a ResNet-18 forward
        self._bound.run(shrink_arena() if self._folding is not None and self._folding.declined == 1 else None,
                        borrowed)
        for _, scratch, array in self._forward_aux:
            array[:] = scratch
        return self.outputs

    def forward_for_backward(self):
        """An inference forward (BatchNorm's moving statistics, no Dropout) run in the differentiable graph, kept
        for backward: what forward() then backward() computes, without running the forward twice."""
        self._training_graph(train_mode=False).forward()
        self._pending = "inference-kept"
        return self.outputs

    def _copy_inputs(self, kwargs):
        arg_dict = self._by_name
        for name, array in kwargs.items():
            if not isinstance(array, (NDArray, np.ndarray)):
                raise ValueError("only accept keyword argument of NDArrays and numpy.ndarray, got %s for '%s'"
                                 % (type(array).__name__, name))
            if name not in arg_dict:
                raise TypeError("Unknown argument %s (arguments: %s)" % (name, ", ".join(arg_dict)))
            if arg_dict[name].shape != array.shape:
                raise ValueError("Shape not match! Argument %s, need: %s, received: %s"
                                 % (name, arg_dict[name].shape, array.shape))
            arg_dict[name][:] = array

    def _training_graph(self, train_mode=True):
        """The training graph (built at the first use), or with train_mode=False the differentiable graph of an
        inference forward."""
        attribute = "_training" if train_mode else "_inference_grad"
        graph = getattr(self, attribute)
        if graph is not None and graph.is_stale():
            graph = None        # reseeded since it was made (mx.random.seed): made again below
        # Shapes ONNX Runtime decides at each run (imported ONNX graphs: data-dependent shapes, shapes ONNX's
        # inference cannot tell): the gradient rules need static ones, so a run on the bound inputs gives them, and
        # the training graph is made for those (again when a later batch gives others).
        run_shapes = self._run_time_shapes() if self._lowered.run_time_shapes else None
        if graph is not None and getattr(graph, "run_shapes", None) != run_shapes:
            graph = None
        # outputs of such shapes: the training graph writes into buffers of the shapes it was made for (an
        # inference forward in between gives the NDArrays its own arrays: they take the graph's back)
        dynamic = [(out, run_shapes[node.output_name(index)]) for out, (node, index) in
                   zip(self.outputs, self._symbol.outputs) if node.output_name(index) in run_shapes] \
            if run_shapes else []
        if graph is None:
            from ..autograd import make_training  # lazy: start-up time (only training graphs need it)
            for out, shape in dynamic:
                out._data = np.zeros(shape, out.dtype)
            wrt = [n for n, r in self._grad_req.items() if r != "null"]
            graph = make_training(self._symbol, self._shapes, self._dtypes, wrt, self._ctx, self, train_mode,
                                  run_shapes)
            if graph.lowered.run_time_shapes:
                raise MXNetError("forward(is_train=True)/backward: this graph has shapes that ONNX Runtime decides "
                                 "at each run and a run does not show (an imported ONNX model's data-dependent "
                                 "shapes); onnxsym's gradients need static shapes: import it with input_shapes that "
                                 "fix them, or run it for inference")
            graph.run_shapes = run_shapes
            graph.output_buffers = [out._data for out, _ in dynamic]
            setattr(self, attribute, graph)
        else:
            for (out, _), buffer in zip(dynamic, graph.output_buffers):
                out._data = buffer
        return graph

    def _run_time_shapes(self):
        """{entry name: shape} of the entries ONNX Runtime decides at each run, from an inference run on the bound
        inputs (in a session of the inference graph that outputs them too, made at the first call)."""
        lowered = self._lowered
        if self._probe is None or rng.is_stale(self._probe):
            import onnx
            model = onnx.ModelProto()
            model.CopyFrom(lowered.model)
            present = {o.name for o in model.graph.output}
            for value, dtype in lowered.run_time_values.values():
                if value not in present:
                    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype or np.float32))
                    model.graph.output.append(onnx.helper.make_tensor_value_info(value, elem, None))
                    present.add(value)
            self._probe = create_session(model, self._ctx)
        feed = {name: self._by_name[name].asnumpy() for name in lowered.input_names}
        names = list(lowered.run_time_values)
        outs = self._probe.run([lowered.run_time_values[n][0] for n in names], feed)
        return {name: tuple(int(d) for d in out.shape) for name, out in zip(names, outs)}

    def forward_backward(self):
        """forward(is_train=True) then backward() (loss heads only), in one run that writes the gradients straight
        into grad_arrays where the training graph can (FusedTraining.forward_backward: Module.fit's step, no
        second set of gradient buffers, no copy); elsewhere, and for a run that raises, the two calls."""
        if self._monitor is None and self._differentiates:
            graph = self._training_graph()
            if graph.direct_applies():
                for out in self.outputs:
                    out._pending = None
                try:
                    graph.forward_backward()
                    self._pending = "train"
                    return
                except MXNetIndexError:
                    pass        # (forward() defers it to the outputs, as MXNet's engine raises it)
        self.forward(is_train=True)
        self.backward()

    def _forward_train(self):
        self._training_graph().forward()
        self._pending = "train"
        return self.outputs

    def backward(self, out_grads=None, is_train=True):
        """Gradients of the last forward into grad_arrays ('write' replaces, 'add' accumulates).

        Loss heads (SoftmaxOutput, MakeLoss, *RegressionOutput) need no out_grads; any other output needs its
        head gradient in `out_grads` (an NDArray, or a list in output order). As in MXNet, backward may run
        several times after one forward (each call computes the gradients again from its out_grads);
        BatchNorm's moving statistics are updated here, once per call after a training forward. After an
        inference forward (is_train=False) it differentiates that forward (BatchNorm with its moving statistics,
        no Dropout), running it again in a differentiable graph. With no forward before it, a training forward
        runs first."""
        if not self._differentiates and not self.aux_arrays:
            return      # nothing to differentiate: MXNet's backward graph is empty and needs no head gradient
        if self._pending is None:
            # MXNet runs a backward with no forward before it on whatever its buffers hold (right for ops whose
            # gradient needs no forward value, as test_repeat's); here the forward runs first, so it is right always
            self.forward(is_train=is_train)
        if self._pending == "inference":
            graph = self._training_graph(train_mode=False)
            graph.forward()
            self._pending = "inference-kept"
        else:
            graph = self._training if self._pending == "train" else self._inference_grad
        graph.backward(self._head_gradients(graph, out_grads))
        if self._monitor is not None:
            monitoring.after_backward(self, out_grads)

    def _head_gradients(self, graph, out_grads):
        if out_grads is not None and not isinstance(out_grads, (list, tuple)):
            out_grads = [out_grads]
        heads = {}
        for position in graph.lowered.head_outputs:
            label = self._out_names[position]
            if out_grads is None or position >= len(out_grads) or out_grads[position] is None:
                raise MXNetError("backward: output '%s' is not a loss, so it needs a head gradient. Pass out_grads "
                                 "(one NDArray per output), or wrap the output in MakeLoss to minimise it."
                                 % label)
            grad = out_grads[position]
            if not isinstance(grad, (NDArray, np.ndarray)):
                raise TypeError("out_grads must be NDArrays, got %s for output '%s'" % (type(grad).__name__, label))
            grad = grad.asnumpy() if isinstance(grad, NDArray) else np.asarray(grad)
            if grad.shape != self.outputs[position].shape:
                raise MXNetError("backward: out_grads for output '%s' has shape %s, the output has shape %s"
                                 % (label, grad.shape, self.outputs[position].shape))
            name = graph.lowered.output_names[position]
            heads[name] = grad.astype(self.outputs[position]._data.dtype, copy=False)
        return heads

    def set_monitor_callback(self, callback, monitor_all=False):
        """Call callback(name, array) with every operator's outputs after each forward and its input gradients
        after each backward, under MXNet's names and in its order (monitor_all: the operators' inputs too); see
        runtime/monitoring.py. As MXNet's, `name` is bytes (py_str reads it) and `array` also works as a handle:
        NDArray(ctypes.cast(array, NDArrayHandle)) gives it back."""
        self._monitor = {"callback": callback, "monitor_all": bool(monitor_all)}

    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        """Copy parameter values into the bound arrays (cast to their dtype); the shapes must be equal."""
        for params, bound, kind in ((arg_params, self.arg_dict, "arguments"),
                                    (aux_params or {}, self.aux_dict, "auxiliary states")):
            for name, array in params.items():
                if name not in bound:
                    if not allow_extra_params:
                        raise ValueError('Find name "%s" that is not in the %s' % (name, kind))
                    continue
                dst = bound[name]
                if tuple(dst.shape) != tuple(array.shape):
                    raise MXNetError("copy_params_from: '%s' has shape %s, the bound array %s"
                                     % (name, tuple(array.shape), tuple(dst.shape)))
                dst[:] = array.astype(dst.dtype)

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **kwargs):
        """A new executor for new input shapes, sharing the memory of arrays whose size allows it."""
        arg_shapes, _, aux_shapes = self._symbol.infer_shape(**kwargs)
        if arg_shapes is None:
            raise ValueError("Insufficient argument shapes provided.")

        def resized(name, kind, arr, shape):
            if arr.shape == shape:
                return arr
            if not (partial_shaping or (kind == "arg" and name in kwargs)):
                raise MXNetError("Shape of unspecified %s: %s changed from %s to %s. This can cause the new "
                                 "executor to not share parameters with the old one. Please check for error in "
                                 "network. If this is intended, set partial_shaping=True to suppress this "
                                 "warning." % (kind, name, arr.shape, shape))
            size = int(np.prod(shape))
            if is_sparse(arr):      # (a sparse array has no flat memory to view: a new one of its storage type)
                return sparse_array(arr.stype, np.zeros(shape, arr._data.dtype), arr.context)
            if size > arr.size:
                if not allow_up_sizing:
                    raise MXNetError("New shape of %s: %s %s is larger than original %s. First making a big "
                                     "executor and then down sizing it is more efficient than the reverse. If you "
                                     "really want to up size, set allow_up_sizing=True to enable allocation of "
                                     "new arrays." % (kind, name, shape, arr.shape))
                return NDArray(np.zeros(shape, arr._data.dtype), arr.context)
            return NDArray(arr._data.reshape(-1)[:size].reshape(shape), arr.context)

        names = self._symbol.list_arguments()
        args = [resized(n, "arg", a, s) for n, a, s in zip(names, self.arg_arrays, arg_shapes)]
        grads = [None if g is None else resized(n, "arg", g, s)
                 for n, g, s in zip(names, self.grad_arrays, arg_shapes)]
        aux = [resized(n, "aux", a, s)
               for n, a, s in zip(self._symbol.list_auxiliary_states(), self.aux_arrays, aux_shapes)]
        reqs = [self._grad_req[n] for n in names]
        return Executor(self._symbol, self._ctx, args, grads, reqs, aux, output_pool=self.outputs,
                        frozen=self._frozen)

    def debug_str(self):
        return self._symbol.debug_str()
