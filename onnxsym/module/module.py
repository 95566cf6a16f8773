"""`mx.mod.Module`: a symbol bound for training and inference, as MXNet 1.9.1's python/mxnet/module/module.py.

One executor group per input shape (executor_group.py: one executor per context, each on its share of the batch):
a batch whose shape differs from the bound one (the last batch, variable-length data) gets a group of its own,
cached and sharing every parameter, gradient and auxiliary array, so users never rebind. Parameters live in the
executors' arrays; `get_params` copies them out as MXNet does. On several contexts the update sums the devices'
gradients into each device's gradient arrays, as MXNet's local kvstore does, updates the first device's weights and
copies them to the others.
"""
import logging
import warnings

import numpy as np

from .. import kvstore as _kvstore
from .._files import atomic_write
from ..base import MXNetError
from ..context import cpu
from ..runtime.device import device_of, touch
from ..runtime.ndarray import NDArray
from . import optimizer as _optimizer
from .base_module import BaseModule
from .executor_group import DataParallelExecutorGroup
from .initializer import InitDesc, Uniform
from .io import DataDesc
from .model import load_checkpoint

__all__ = ["Module"]


def _check_input_names(symbol, names, typename, throw):
    args = symbol.list_arguments()
    for name in names:
        if name in args:
            continue
        candidates = [a for a in args if not a.endswith(("_weight", "_bias", "_gamma", "_beta"))]
        msg = ("You created Module with Module(..., %s_names=%s) but input with name '%s' is not found in "
               "symbol.list_arguments(). Did you mean one of:\n\t%s" % (typename, list(names), name,
                                                                          "\n\t".join(candidates)))
        if throw:
            raise ValueError(msg)
        warnings.warn(msg)


def _names_hint(provided, names, kind, symbol):
    """What to do when the iterator's (or bind's) data or label names differ from the Module's: MXNet's message
    says only that they differ."""
    inputs = [a for a in symbol.list_arguments() if not a.endswith(("_weight", "_bias", "_gamma", "_beta"))]
    if kind == "label" and not provided:
        return ("the iterator gives no label, but the symbol expects %s: pass labels to the iterator "
                "(mx.io.NDArrayIter(data, label, batch_size, label_name='%s')), or create the Module with "
                "label_names=None if the symbol has no loss head" % (list(names), names[0]))
    source = "the iterator (or %s_shapes)" % kind
    if len(provided) == 1 and len(names) == 1:
        keyword = "data_name" if kind == "data" else "label_name"
        fix = "name it '%s' (mx.io.NDArrayIter(..., %s='%s'), or that key of a dict)" % (names[0], keyword, names[0])
    else:
        fix = "give it the names %s" % list(names)
    advice = ("%s names its %s %s, but the Module expects %s: %s"
              % (source, kind, provided, list(names), fix))
    if all(name in inputs for name in provided):
        return advice + ", or create the Module with %s_names=%s" % (kind, provided)
    return advice + " (the symbol's inputs: %s)" % ", ".join(inputs)


def _parse_descs(names, shapes, kind, throw, symbol=None):
    """DataDesc list from (name, shape) tuples or DataDescs, checked against the module's names."""
    if shapes is None:
        return None
    descs = [s if isinstance(s, DataDesc) else DataDesc(*s) for s in shapes]
    provided = [d.name for d in descs]
    if sorted(provided) != sorted(names):
        msg = ("Data provided by %s_shapes don't match names specified by %s_names (%s vs. %s)"
               % (kind, kind, provided, list(names)))
        if throw and symbol is not None:
            msg += "; " + _names_hint(provided, list(names), kind, symbol)
        if throw:
            raise ValueError(msg)
        warnings.warn(msg)
    return descs


# The fast SGD path updates the parameter arena in pieces of this many elements: two scratch pieces (512 KB) instead
# of two arena-sized temporaries per step (ResNet-18: 90 MB), and a piece's five arrays stay in the cache between
# its six operations (float32, 431k values (LeNet): 573 us against 715 in pieces of 1 << 18; 2M: 2.5 vs 3.5 ms)
_SGD_CHUNK = 1 << 16


def _sgd_pieces(sizes, lrs, wds):
    """The arena's fast SGD in pieces of at most _SGD_CHUNK values over runs of parameters with the same learning
    rate: [(start, stop, lr, [(begin, end, wd)] relative to start, wd nonzero)] (optimizer.sgd_kernel's stretches;
    no arena-sized arrays of per-value rates: with wd_mult 0 for biases, BatchNorm's gamma and beta, that was an
    array the size of all the parameters; a piece per parameter made the MLP's seven small updates 150 us)."""
    runs, start = [], 0
    for size, lr, wd in zip(sizes, lrs, wds):
        if runs and runs[-1][2] == lr:
            runs[-1][1] = start + size
        else:
            runs.append([start, start + size, lr, []])
        if wd:
            decays = runs[-1][3]
            if decays and decays[-1][1] == start and decays[-1][2] == wd:
                decays[-1][1] = start + size
            else:
                decays.append([start, start + size, wd])
        start += size
    pieces = []
    for first, stop, lr, decays in runs:
        for begin in range(first, stop, _SGD_CHUNK):
            end = min(begin + _SGD_CHUNK, stop)
            pieces.append((begin, end, lr, [(max(b, begin) - begin, min(e, end) - begin, wd)
                                            for b, e, wd in decays if b < end and e > begin]))
    return pieces


def _distributed(store):
    """Whether `store` sums across processes (kvstore_dist's stores; told apart without importing that module,
    which only a distributed store's creation loads)."""
    return getattr(store, "allreduce_arrays", None) is not None


class Module(BaseModule):
    """A symbol with its parameters, bound to input shapes; trains with an optimizer (MXNet Module)."""

    def __init__(self, symbol, data_names=("data",), label_names=("softmax_label",), logger=logging,
                 context=None, work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None,
                 compression_params=None):
        super().__init__(logger=logger)
        context = context if context is not None else cpu()
        self._context = list(context) if isinstance(context, (list, tuple)) else [context]
        if not self._context:
            raise ValueError("Module needs at least one context")
        self._work_load_list = list(work_load_list) if work_load_list is not None else [1] * len(self._context)
        if len(self._work_load_list) != len(self._context):
            raise ValueError("work_load_list has %d entries for %d contexts"
                             % (len(self._work_load_list), len(self._context)))
        self._group2ctxs = group2ctxs
        self._symbol = symbol
        self._data_names = list(data_names) if data_names is not None else []
        self._label_names = list(label_names) if label_names is not None else []
        self._state_names = list(state_names) if state_names is not None else []
        self._fixed_param_names = list(fixed_param_names) if fixed_param_names is not None else []
        _check_input_names(symbol, self._data_names, "data", True)
        _check_input_names(symbol, self._label_names, "label", False)
        _check_input_names(symbol, self._state_names, "state", True)
        _check_input_names(symbol, self._fixed_param_names, "fixed_param", True)
        inputs = set(self._data_names + self._label_names + self._state_names)
        self._param_names = [n for n in symbol.list_arguments() if n not in inputs]
        self._aux_names = symbol.list_auxiliary_states()
        self._output_names = symbol.list_outputs()
        self._arg_params = None
        self._aux_params = None
        self._params_dirty = False
        self._optimizer = None
        self._updater = None
        self._preload_opt_states = None
        self._arena = None          # trainable weights and gradients as views of two flat buffers (fast SGD)
        self._kvstore = None
        self._compression_params = compression_params
        self._reset_bind()

    def _reset_bind(self):
        self.binded = False
        self._exec = None           # the first context's executor (parameters are updated there)
        self._exec_group = None
        self._groups = {}
        self._data_shapes = None
        self._label_shapes = None

    # ----- checkpoints -----
    @staticmethod
    def load(prefix, epoch, load_optimizer_states=False, **kwargs):
        """A Module of the checkpoint `prefix`, `epoch` (parameters set; call bind before use)."""
        sym, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params, mod._aux_params = args, auxs
        mod.params_initialized = True
        if load_optimizer_states:
            mod._preload_opt_states = "%s-%04d.states" % (prefix, epoch)
        return mod

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False, remove_amp_cast=True):
        """prefix-symbol.json, prefix-%04d.params (and prefix-%04d.states with the optimizer's state)."""
        self._symbol.save("%s-symbol.json" % prefix, remove_amp_cast=remove_amp_cast)
        param_name = "%s-%04d.params" % (prefix, epoch)
        self.save_params(param_name)
        logging.info('Saved checkpoint to "%s"', param_name)
        if save_optimizer_states:
            state_name = "%s-%04d.states" % (prefix, epoch)
            self.save_optimizer_states(state_name)
            logging.info('Saved optimizer state to "%s"', state_name)

    # ----- names and shapes -----
    @property
    def data_names(self):
        return self._data_names

    @property
    def label_names(self):
        return self._label_names

    @property
    def output_names(self):
        return self._output_names

    @property
    def data_shapes(self):
        self._check_bound()
        return self._data_shapes

    @property
    def label_shapes(self):
        self._check_bound()
        return self._label_shapes

    @property
    def output_shapes(self):
        self._check_bound()
        return [(n, o.shape) for n, o in zip(self._output_names, self._exec_group.get_outputs())]

    def _check_bound(self):
        if not self.binded:
            raise MXNetError("The module is not bound: call bind(data_shapes, label_shapes) first")

    # ----- parameters -----
    def get_params(self):
        """(arg_params, aux_params): copies of the current parameter values."""
        if not (self.binded and self.params_initialized):
            raise MXNetError("get_params() needs a bound module with initialized parameters")
        if self._params_dirty:
            self._sync_params_from_devices()
        return self._arg_params, self._aux_params

    def _sync_params_from_devices(self):
        self._exec_group.get_params(self._arg_params, self._aux_params)
        self._params_dirty = False

    def _broadcast(self, names):
        """Copy the first device's values of `names` to the other devices' executors."""
        source = self._exec._by_name
        for exe in self._exec_group.execs[1:]:
            for name in names:
                target = exe._by_name.get(name)
                if target is not None and target is not source[name]:
                    target._data[...] = source[name].asnumpy()
                    touch(target._data)

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Initialize the parameters from arg_params/aux_params where given, else with `initializer` (names
        in sorted order, dispatching on each variable's `__init__` attribute and name suffix)."""
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. init_params call ignored.",
                          stacklevel=2)
            return
        self._check_bound()
        attrs = self._symbol.attr_dict()

        def _impl(name, arr, cache):
            if cache is not None and name in cache:
                source = cache[name]
                if source is not arr:
                    if tuple(source.shape) != tuple(arr.shape):
                        raise MXNetError("Parameter '%s' has shape %s, the module expects %s"
                                         % (name, tuple(source.shape), tuple(arr.shape)))
                    arr[:] = source
            elif cache is not None and not allow_missing:
                raise RuntimeError("%s is not presented" % name)
            elif initializer is not None:
                initializer(InitDesc(name, attrs.get(name, None)), arr)

        for name, arr in sorted(self._arg_params.items()):
            _impl(name, arr, arg_params)
        for name, arr in sorted(self._aux_params.items()):
            _impl(name, arr, aux_params)
        self.params_initialized = True
        self._params_dirty = False
        self._copy_params_to_exec(allow_extra, arg_params, aux_params)

    def _copy_params_to_exec(self, allow_extra=False, arg_params=None, aux_params=None):
        if not allow_extra:
            for given, known, kind in ((arg_params, self._arg_params, "arguments"),
                                       (aux_params, self._aux_params, "auxiliary states")):
                extra = sorted(set(given or ()) - set(known))
                if extra:
                    raise ValueError('Find name "%s" that is not in the %s' % (extra[0], kind))
        exe = self._exec
        for name, arr in list(self._arg_params.items()) + list(self._aux_params.items()):
            target = exe._by_name.get(name)
            if target is None:
                if allow_extra:
                    continue
                raise ValueError('Find name "%s" that is not in the arguments' % name)
            if tuple(target.shape) != tuple(arr.shape):
                raise MXNetError("Parameter '%s' has shape %s, the module expects %s"
                                 % (name, tuple(arr.shape), tuple(target.shape)))
            target._data[...] = arr.asnumpy()
            touch(target._data)
        self._broadcast(list(self._arg_params) + list(self._aux_params))

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        """Set parameter values (all of them unless allow_missing)."""
        if not allow_missing:
            self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                             allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)
            return
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. set_params call ignored.",
                          stacklevel=2)
            return
        exe = self._exec
        for name, arr in list((arg_params or {}).items()) + list((aux_params or {}).items()):
            if name in exe._by_name:
                exe._by_name[name]._data[...] = arr.asnumpy()
                touch(exe._by_name[name]._data)
            elif not allow_extra:
                raise ValueError('Find name "%s" that is not in the arguments' % name)
        self._broadcast([n for n in list(arg_params or {}) + list(aux_params or {}) if n in exe._by_name])
        self._params_dirty = True
        self.params_initialized = True

    # ----- binding -----
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req="write"):
        """Allocate the executor for these input shapes (list of DataDesc or (name, shape))."""
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if not for_training and inputs_need_grad:
            raise AssertionError("inputs_need_grad needs for_training=True")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._grad_req = grad_req
        self._data_shapes = _parse_descs(self._data_names, data_shapes, "data", True, self._symbol)
        # MXNet only warns when the iterator's label names differ from label_names, then fails in its executor
        # group (a bare AssertionError without labels, KeyError for another name); a clear error is kinder (no
        # label_names at all still only warns, as for inference).
        self._label_shapes = _parse_descs(self._label_names, label_shapes, "label", bool(self._label_names),
                                          self._symbol)
        shared = shared_module._exec_group if shared_module is not None else None
        if shared is not None and len(shared.execs) != len(self._context):
            raise MXNetError("shared_module runs on %d contexts, this module on %d"
                             % (len(shared.execs), len(self._context)))
        self._exec_group = self._new_group(self._data_shapes, self._label_shapes, shared)
        self._exec = self._exec_group.execs[0]
        self._groups[self._shape_key(self._data_shapes, self._label_shapes)] = self._exec_group
        if self.params_initialized and self._arg_params is not None and shared is None:
            self._copy_params_to_exec()
        elif shared_module is not None:
            self._arg_params, self._aux_params = shared_module._arg_params, shared_module._aux_params
            self.params_initialized = shared_module.params_initialized
        else:
            exe = self._exec
            self._arg_params = {n: exe._by_name[n].copy() for n in self._param_names}
            self._aux_params = {n: exe._by_name[n].copy() for n in self._aux_names}
        if shared_module is not None and shared_module.optimizer_initialized:
            self.borrow_optimizer(shared_module)
        self.binded = True

    @staticmethod
    def _shape_key(data_shapes, label_shapes):
        return tuple((d.name, tuple(d.shape)) for d in list(data_shapes) + list(label_shapes or []))

    def _new_group(self, data_shapes, label_shapes, shared=None):
        """Executors for these shapes on every context; arrays of the `shared` group with the same name and shape
        are reused (without one, the first device's trainable parameters live in the SGD arena)."""
        return DataParallelExecutorGroup(
            self._symbol, self._context, self._work_load_list, data_shapes, label_shapes, self._param_names,
            self.for_training, self.inputs_need_grad, shared_group=shared, logger=self.logger,
            fixed_param_names=self._fixed_param_names, grad_req=self._grad_req, state_names=self._state_names,
            group2ctxs=self._group2ctxs, make_arena=self._make_arena if shared is None else None)

    def _make_arena(self, names, shapes, dtypes, reqs, ctx):
        """Trainable float32 parameters and their gradients as views of one flat buffer each, so that SGD
        updates every parameter with a few vectorized numpy operations instead of a loop over arrays."""
        train = [(n, tuple(s)) for n, s, t in zip(names, shapes, dtypes)
                 if n in self._param_names and reqs[n] != "null" and np.dtype(t) == np.float32]
        if not train or device_of(ctx) is not None:     # (on a device, updates run there: device_updates.py)
            self._arena = None
            return None, None
        sizes = [int(np.prod(s)) for _, s in train]
        weights, grads = np.zeros(sum(sizes), np.float32), np.zeros(sum(sizes), np.float32)
        views_w, views_g, offset = {}, {}, 0
        for (name, shape), size in zip(train, sizes):
            views_w[name] = NDArray(weights[offset:offset + size].reshape(shape), ctx)
            views_g[name] = NDArray(grads[offset:offset + size].reshape(shape), ctx)
            offset += size
        self._arena = {"names": [n for n, _ in train], "sizes": sizes, "weights": weights, "grads": grads,
                       "momentum": None, "key": None, "pieces": None}
        return views_w, views_g

    def reshape(self, data_shapes, label_shapes=None):
        """Switch to executors for new input shapes (cached; parameters shared)."""
        self._check_bound()
        data_shapes = _parse_descs(self._data_names, data_shapes, "data", True)
        label_shapes = _parse_descs(self._label_names, label_shapes, "label", False)
        key = self._shape_key(data_shapes, label_shapes)
        if key not in self._groups:
            group = self._groups[key] = self._new_group(data_shapes, label_shapes, self._exec_group)
            for old, new in zip(self._exec_group.execs, group.execs):     # monitors stay installed
                if old._monitor is not None:
                    new.set_monitor_callback(old._monitor["callback"], old._monitor["monitor_all"])
        self._exec_group = self._groups[key]
        self._exec = self._exec_group.execs[0]
        self._data_shapes, self._label_shapes = data_shapes, label_shapes

    # ----- optimizer -----
    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        """Create the optimizer (rescale_grad = 1/batch_size unless given) and its updater. `kvstore` ('local',
        'device', an mx.kv.KVStore or None) is checked; with one device the update runs here either way.

        A distributed store ('dist_sync', 'dist_device_sync', 'horovod': kvstore_dist.py) makes every worker start
        from rank 0's parameters; each update then sums the gradients over the workers (one allreduce) before the
        same update runs on every worker. As in MXNet, rescale_grad is 1/(batch_size * num_workers) for the
        'dist*_sync' types (the global batch), 1/batch_size for the others ('horovod' included)."""
        self._check_bound()
        store = kvstore
        if isinstance(kvstore, str):
            store = _kvstore.create(kvstore)        # refuses dist_async and nccl
        elif kvstore is not None and not isinstance(kvstore, _kvstore.KVStore):
            raise TypeError("kvstore must be a type name or an mx.kv.KVStore, got %s" % type(kvstore).__name__)
        if not self.params_initialized:
            raise MXNetError("init_optimizer() needs initialized parameters (call init_params first)")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring...")
            return
        batch_size = self._data_shapes[0].shape[0]
        if store is not None and "dist" in store.type and "_sync" in store.type:
            batch_size *= store.num_workers     # (MXNet's test: plain 'dist' is sync but keeps 1/batch_size)
        rescale_grad = 1.0 / batch_size
        idx2name = dict(enumerate(self._param_names))
        if isinstance(optimizer, str):
            optimizer_params = dict(optimizer_params)
            optimizer_params.setdefault("rescale_grad", rescale_grad)
            optimizer = _optimizer.create(optimizer, sym=self._symbol, param_idx2name=idx2name, **optimizer_params)
        else:
            if not isinstance(optimizer, _optimizer.Optimizer):
                raise TypeError("optimizer must be a name or an mx.optimizer.Optimizer, got %r" % (optimizer,))
            if optimizer.rescale_grad != rescale_grad:
                warnings.warn("Optimizer created manually outside Module but rescale_grad is not normalized to "
                              "1.0/batch_size/num_workers (%s vs. %s). Is this intended?"
                              % (optimizer.rescale_grad, rescale_grad), stacklevel=2)
            if not optimizer.idx2name:
                optimizer.idx2name = idx2name.copy()
        self._optimizer = optimizer
        self._updater = _optimizer.get_updater(optimizer)
        # MXNet keeps a local kvstore (and updates on it) only with several devices, a distributed one always; the
        # updater is the module's here: the gradients are summed as the store sums them (update())
        distributed = _distributed(store)
        self._kvstore = store if len(self._context) > 1 or distributed else None
        if self._kvstore is not None:
            if not distributed:
                self._kvstore._set_updater(self._updater)
            if self._compression_params:
                self._kvstore.set_gradient_compression(self._compression_params)
        if distributed:
            self._broadcast_from_rank0()
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def _broadcast_from_rank0(self):
        """Every worker takes rank 0's parameters and auxiliary states (MXNet's _initialize_kvstore broadcasts them
        through the store), one MPI broadcast per dtype."""
        if self._params_dirty:
            self._sync_params_from_devices()
        by_name = self._exec._by_name
        names = [n for n in self._param_names + self._aux_names if n in by_name]
        self._kvstore.broadcast_arrays([by_name[n] for n in names])
        self._broadcast(names)
        self._params_dirty = True

    def _allreduce_gradients(self):
        """Sum the first device's gradients over the workers in place: one allreduce over the gradient arena (one
        contiguous buffer), with any gradient outside it (float16, on a device, bucketing) fused into the same
        call per dtype, never one MPI call per parameter."""
        grads = dict(zip(self._exec._arg_names, self._exec.grad_arrays))
        arena = self._arena
        in_arena = set(arena["names"]) if arena is not None else set()
        others = [grads[n] for n in self._param_names if grads.get(n) is not None and n not in in_arena]
        buffers = ([arena["grads"]] if arena is not None else []) + [g._data for g in others]
        self._kvstore.allreduce_arrays(buffers, in_place=True)
        for buffer in buffers:
            touch(buffer)

    def borrow_optimizer(self, shared_module):
        """Use shared_module's optimizer, updater and kvstore (bucketing)."""
        self._optimizer = shared_module._optimizer
        self._updater = shared_module._updater
        self._kvstore = shared_module._kvstore
        self.optimizer_initialized = True

    def save_optimizer_states(self, fname):
        """Write the updater's state (onnxsym's safe format, no pickle) atomically."""
        if not self.optimizer_initialized:
            raise MXNetError("save_optimizer_states() needs init_optimizer first")
        atomic_write(fname, self._updater.get_states(), mode="wb")

    def load_optimizer_states(self, fname):
        if not self.optimizer_initialized:
            raise MXNetError("load_optimizer_states() needs init_optimizer first")
        by_name = self._exec._by_name
        self._updater._load_file(fname, {i: by_name[name] for i, name in enumerate(self._param_names)})
        if self._arena is not None:
            self._arena["momentum"] = None      # rebuilt from the loaded states at the next update

    # ----- computation -----
    def forward(self, data_batch, is_train=None):
        """Copy the batch into the executor (switching executors when its shapes differ) and run forward."""
        if not (self.binded and self.params_initialized):
            raise MXNetError("forward() needs a bound module with initialized parameters")
        if is_train is None:
            is_train = self.for_training
        self._take_shapes_of(data_batch)
        # (namedtuple("Batch", ["data"]) batches have no labels: the group reads them with getattr)
        self._exec_group.forward(data_batch, is_train=is_train)

    def forward_backward(self, data_batch):
        """A training forward, then backward: one run per device that writes the gradients in place where it can
        (Executor.forward_backward), the numbers of the two calls."""
        if not (self.binded and self.params_initialized and self.for_training) or \
                type(self).forward is not Module.forward or type(self).backward is not Module.backward:
            return super().forward_backward(data_batch)     # (their errors; a subclass's own forward or backward)
        self._take_shapes_of(data_batch)
        self._exec_group.forward_backward(data_batch)

    def _take_shapes_of(self, data_batch):
        data = data_batch.data
        if len(data) != len(self._data_names):
            raise MXNetError("The batch has %d data arrays, the module expects %d (%s)"
                             % (len(data), len(self._data_names), self._data_names))
        if any(tuple(d.shape) != tuple(desc.shape) for d, desc in zip(data, self._data_shapes)):
            self._reshape_for(data_batch)

    def _forward_borrowing(self, data_batch):
        return self.binded and self.params_initialized and type(self).forward is Module.forward and \
            self._exec_group.forward_borrowing(data_batch)      # (a subclass's own forward runs as it is)

    def _end_borrowing(self):
        if self.binded:
            self._exec_group.end_borrowing()

    def _reshape_for(self, data_batch):
        data_descs = getattr(data_batch, "provide_data", None) or [
            DataDesc(d.name, tuple(a.shape), d.dtype, d.layout) for d, a in zip(self._data_shapes, data_batch.data)]
        label_descs = getattr(data_batch, "provide_label", None)
        if not label_descs and getattr(data_batch, "label", None) and self._label_shapes:
            label_descs = [DataDesc(d.name, tuple(a.shape), d.dtype, d.layout)
                           for d, a in zip(self._label_shapes, data_batch.label)]
        self.reshape(data_descs, label_descs or None)

    def backward(self, out_grads=None):
        """Backward pass of the last training forward."""
        if not (self.binded and self.params_initialized):
            raise MXNetError("backward() needs a bound module with initialized parameters")
        if not self.for_training:
            raise MXNetError("backward() needs a module bound with for_training=True")
        self._exec_group.backward(out_grads)

    def update(self):
        """One optimizer step on every trainable parameter (index = position in the parameter list)."""
        if not (self.binded and self.params_initialized and self.optimizer_initialized):
            raise MXNetError("update() needs bind, init_params and init_optimizer first")
        self._params_dirty = True
        group = self._exec_group
        if len(group.execs) > 1:
            # MXNet's local kvstore: push sums the devices' gradients (through its 2-bit gradient compression
            # when compression_params asked for it), pull writes the sum into each device's
            store = self._kvstore
            compressed = store is not None and getattr(store, "_compression", None) is not None
            for name, block in zip(self._param_names, group.grad_arrays or []):
                if block[0] is None:
                    continue
                if compressed:
                    if name not in store._store:
                        store.init(name, block[0])      # (MXNet's module keys its store by parameter name)
                    total = store._reduce(name, block).asnumpy()
                else:
                    total = sum(g.asnumpy() for g in block)
                for grad in block:
                    grad._data[...] = total
                    touch(grad._data)
        if _distributed(self._kvstore):
            self._allreduce_gradients()         # then every worker makes the same update
        # the arena's dense float32 parameters at once, when that path applies; every other one by the updater
        done = set(self._arena["names"]) if self._fast_sgd_update() else set()
        self._update_first_device(done)
        if len(group.execs) > 1:
            self._broadcast([n for n, block in zip(self._param_names, group.grad_arrays or [])
                             if block[0] is not None])

    def _update_first_device(self, done=()):
        """The updater on the first device's parameters (those not in `done`)."""
        by_name = self._exec._by_name
        grads = dict(zip(self._exec._arg_names, self._exec.grad_arrays))
        indices, grad_list, weights = [], [], []
        for index, name in enumerate(self._param_names):
            grad = grads.get(name)
            if grad is not None and name not in done:
                indices.append(index)
                grad_list.append(grad)
                weights.append(by_name[name])
        if indices:
            self._updater(indices, grad_list, weights)      # one call, as MXNet's _update_params

    def _fast_sgd_update(self):
        """MXNet's SGD (momentum, wd, lr/wd multipliers, clip, rescale) over the whole parameter arena at once;
        the updater's per-index momentum states are views of one buffer, so its saved states are unchanged.
        Returns False when this path does not apply (another optimizer, float16, no arena)."""
        arena, opt = self._arena, self._optimizer
        if arena is None or type(opt) is not _optimizer.SGD or opt.multi_precision:
            return False
        indices = arena.get("indices")
        if indices is None:
            index_of = {n: i for i, n in enumerate(self._param_names)}
            indices = arena["indices"] = [index_of[n] for n in arena["names"]]
        opt._update_count(indices)
        lrs, wds = opt._get_lrs(indices), opt._get_wds(indices)
        key = (tuple(lrs), tuple(wds))
        if key != arena["key"]:
            arena["pieces"] = _sgd_pieces(arena["sizes"], lrs, wds)
            arena["key"] = key
        w, g = arena["weights"], arena["grads"]
        scratch = arena.get("scratch")
        if scratch is None:     # reused: no allocation (and page faults) per step, and no arena-sized temporaries
            scratch = arena["scratch"] = np.empty((2, min(w.size, _SGD_CHUNK)), w.dtype)
        momentum = self._arena_momentum(indices) if opt.momentum > 0 else None
        clip = opt.clip_gradient if opt.clip_gradient and opt.clip_gradient >= 0 else None
        for start, stop, lr, decays in arena["pieces"]:
            size = stop - start
            _optimizer.sgd_kernel(w[start:stop], g[start:stop], None if momentum is None else momentum[start:stop],
                                  lr, decays, opt.rescale_grad, clip, opt.momentum, scratch[0, :size],
                                  scratch[1, :size])
        touch(w)
        return True

    def _arena_momentum(self, indices):
        """The momentum buffer, registered as the updater's state of each index (views), created on first use
        and filled from states loaded earlier."""
        arena = self._arena
        if arena["momentum"] is None:
            buffer = np.zeros_like(arena["weights"])
            offset = 0
            states = self._updater.states
            for index, name, size in zip(indices, arena["names"], arena["sizes"]):
                view = NDArray(buffer[offset:offset + size].reshape(self._exec._by_name[name].shape))
                if states.get(index) is not None:
                    view[:] = states[index]
                states[index] = view
                self._updater.states_synced[index] = True
                offset += size
            arena["momentum"] = buffer
        return arena["momentum"]

    def get_outputs(self, merge_multi_context=True):
        """The outputs of the last forward: one array each (the devices' parts joined along the batch axis), or with
        merge_multi_context=False a list per output of each device's part."""
        self._check_bound()
        return self._exec_group.get_outputs(merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        if not (self.binded and self.params_initialized and self.inputs_need_grad):
            raise MXNetError("get_input_grads() needs a module bound with inputs_need_grad=True")
        return self._exec_group.get_input_grads(merge_multi_context)

    def get_states(self, merge_multi_context=True):
        self._check_bound()
        return self._exec_group.get_states(merge_multi_context)

    def set_states(self, states=None, value=None):
        self._check_bound()
        self._exec_group.set_states(states, value)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """Update eval_metric with the labels and the current outputs (once per device, on its slice)."""
        self._exec_group.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        """Install `mon` (mx.monitor.Monitor) on every executor."""
        self._check_bound()
        self._exec_group.install_monitor(mon)
