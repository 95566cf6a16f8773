"""Executors of a module: one per device, each on its slice of the batch (MXNet 1.9.1's
python/mxnet/module/executor_group.py, `DataParallelExecutorGroup`).

`bind_executor` makes one executor for given input shapes (the one place a module's executors are made);
`DataParallelExecutorGroup` holds one per context, splits each batch along its batch axis by `workload`, merges the
outputs, and gives MXNet's attributes (`execs`, `param_arrays`, `grad_arrays`, `aux_arrays`, `data_shapes`,
`shared_data_arrays`, ...). As MXNet's local kvstore, a module sums the devices' gradients into every device's
gradient arrays before its update and keeps every device's weights equal (module.py).
"""
import logging
from collections import OrderedDict

import numpy as np

from ..base import MXNetError
from ..runtime.device import touch
from ..runtime.executor import Executor
from ..runtime.ndarray import NDArray
from ..runtime.sparse import argument_stypes, gradient_stypes, sparse_array
from .io import DataDesc

__all__ = ["DataParallelExecutorGroup", "bind_executor", "split_batch", "grad_reqs"]


def split_batch(batch_size, workload):
    """MXNet's slicing of a batch among devices: shares proportional to `workload` (rounded, the remainder to the
    last device); ValueError when a device would get nothing."""
    if not workload or any(w <= 0 for w in workload):
        raise ValueError("work_load_list must be positive numbers, got %s" % (list(workload),))
    total = float(sum(workload))
    counts = [int(round(w * batch_size / total)) for w in workload]
    counts[-1] += batch_size - sum(counts)
    slices, end = [], 0
    for count in counts:
        begin = min(end, batch_size)
        end = min(begin + count, batch_size)
        if begin >= end:
            raise ValueError("Too many slices: the batch of %d cannot be split among %d devices with work loads %s "
                             "(some splits are empty)" % (batch_size, len(workload), list(workload)))
        slices.append(slice(begin, end))
    return slices


def grad_reqs(symbol, param_names, data_names, fixed_param_names, for_training, inputs_need_grad, grad_req):
    """{argument: 'write'|'add'|'null'} as a module binds them: parameters (not fixed ones) train, data gets a
    gradient when inputs_need_grad, labels and states never."""
    reqs = {}
    for name in symbol.list_arguments():
        if name in param_names:
            if not for_training or name in fixed_param_names:
                reqs[name] = "null"
            elif isinstance(grad_req, dict):
                reqs[name] = grad_req.get(name, "null")
            else:
                reqs[name] = grad_req
        elif name in data_names:
            reqs[name] = "write" if inputs_need_grad else "null"
        else:
            reqs[name] = "null"
    return reqs


def bind_executor(symbol, ctx, descs, param_names, reqs, label_names=(), shared=None, shared_data=None,
                  make_arena=None, group2ctx=None):
    """An executor of `symbol` on `ctx` for the input descriptions `descs` (DataDesc: name, shape, dtype).
    Parameters, gradients and auxiliary states of `shared` (an Executor) with the same name, shape and dtype are
    reused, and so are input arrays in `shared_data` ({name: NDArray}, filled in with new ones). Without
    `shared`, `make_arena(arg_names, arg_shapes, arg_types, reqs, ctx)` may give ({name: weight}, {name: grad})
    views to bind the trainable parameters with. `group2ctx` ({ctx_group: Context}): the arrays of a variable
    declared in a ctx_group (mx.AttrScope(ctx_group=...)) live on that group's context (the graph itself runs on
    `ctx`: one ONNX Runtime session per executor)."""
    inputs = set(symbol.list_inputs())
    shapes = {d.name: tuple(d.shape) for d in descs if d.name in inputs}
    types = {d.name: np.dtype(d.dtype) for d in descs if d.name in inputs}
    arg_shapes, _, aux_shapes = symbol.infer_shape_partial(**shapes)
    arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
    missing = [n for n, s in zip(arg_names + aux_names, list(arg_shapes) + list(aux_shapes)) if not s or 0 in s]
    if missing:
        hint = ""
        absent_labels = [n for n in missing if n in label_names]
        if absent_labels:
            hint = (" The symbol's label input %s has no shape: the data iterator provides labels %s; pass "
                    "label_names matching the iterator's provide_label to Module."
                    % (absent_labels, [d.name for d in descs if d.name not in shapes or d.name in label_names]))
        raise MXNetError("Module.bind: cannot infer the shapes of %s from the data shapes %s.%s"
                         % (missing, [(d.name, tuple(d.shape)) for d in descs], hint))
    arg_types, _, aux_types = symbol.infer_type(**types)
    if arg_types is None:
        defaults = {n: np.float32 for n in arg_names}
        defaults.update(types)
        arg_types, _, aux_types = symbol.infer_type(**defaults)

    groups = symbol.attr_dict() if group2ctx else {}
    arg_stypes = argument_stypes(symbol)
    grad_stypes = gradient_stypes(symbol, arg_stypes)

    def array(name, shape, dtype, table, stype="default"):
        source = table.get(name) if table is not None else None
        if source is not None and tuple(source.shape) == tuple(shape) and source.dtype == np.dtype(dtype) and \
                source.stype == stype:
            return source
        group = groups.get(name, {}).get("__ctx_group__")
        made = sparse_array(stype, np.zeros(shape, dtype), group2ctx.get(group, ctx) if group else ctx)
        if table is shared_data and table is not None:
            table[name] = made
        return made

    if shared is None:
        # (sparse parameters and gradients are arrays of their own, outside the dense parameters' arena)
        dense = {n: r if arg_stypes[n] == grad_stypes[n] == "default" else "null" for n, r in reqs.items()}
        shared_args, shared_grads = make_arena(arg_names, arg_shapes, arg_types, dense, ctx) if make_arena \
            else (None, None)
    else:
        shared_args, shared_grads = shared._by_name, dict(zip(shared._arg_names, shared.grad_arrays))
        _check_state_shapes(shared, param_names, arg_names, arg_shapes, aux_names, aux_shapes, descs)
    args, grads = [], []
    for name, shape, dtype in zip(arg_names, arg_shapes, arg_types):
        table = shared_args if name in param_names else shared_data
        args.append(array(name, shape, dtype, table, arg_stypes[name]))
        grads.append(None if reqs[name] == "null" else array(name, shape, dtype, shared_grads, grad_stypes[name]))
    aux = [array(n, s, t, shared_args) for n, s, t in zip(aux_names, aux_shapes, aux_types)]
    # parameters and auxiliary states are constants of inference forwards (runtime/folding.py)
    return Executor(symbol, ctx, args, grads, [reqs[n] for n in arg_names], aux,
                    frozen=[n for n in arg_names if n in param_names] + aux_names)


def _check_state_shapes(shared, param_names, arg_names, arg_shapes, aux_names, aux_shapes, descs):
    """Parameters and auxiliary states keep their shapes across input shapes: a batch whose shapes imply other
    ones is a mistake (MXNet refuses it too), never a reason to run on fresh zero weights."""
    states = [(n, s) for n, s in zip(arg_names, arg_shapes) if n in param_names]
    for name, shape in states + list(zip(aux_names, aux_shapes)):
        old = shared._by_name.get(name)
        if old is not None and tuple(old.shape) != tuple(shape):
            raise MXNetError(
                "The input shapes %s imply shape %s for %s '%s', which is bound with shape %s. Parameters "
                "and auxiliary states keep their shapes when the batch shape changes; check the data (or bind "
                "again with force_rebind=True and initialize the parameters for the new shapes)."
                % ([(d.name, tuple(d.shape)) for d in descs], tuple(shape),
                   "parameter" if name in param_names else "auxiliary state", name, tuple(old.shape)))


def _batch_axis(desc):
    return DataDesc.get_batch_axis(getattr(desc, "layout", None))


def _take(array, axis, part):
    """The slice `part` of `array` (NDArray or numpy) along `axis`, as numpy."""
    values = array.asnumpy() if hasattr(array, "asnumpy") else np.asarray(array)
    index = [slice(None)] * values.ndim
    index[axis] = part
    return values[tuple(index)]


class DataParallelExecutorGroup:
    """One executor per context, each bound to its share of the batch (MXNet's DataParallelExecutorGroup)."""

    def __init__(self, symbol, contexts, workload, data_shapes, label_shapes, param_names, for_training,
                 inputs_need_grad, shared_group=None, logger=logging, fixed_param_names=None, grad_req="write",
                 state_names=None, group2ctxs=None, make_arena=None):
        self.symbol = symbol
        self._lent = None           # the batch forward_borrowing ran last, until end_borrowing copies it in
        self.contexts = list(contexts)
        self.workload = list(workload) if workload is not None else [1] * len(self.contexts)
        if len(self.workload) != len(self.contexts):
            raise ValueError("work_load_list has %d entries for %d contexts" % (len(self.workload),
                                                                                  len(self.contexts)))
        self.param_names = list(param_names)
        self.arg_names = symbol.list_arguments()
        self.aux_names = symbol.list_auxiliary_states()
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self.logger = logger
        self.fixed_param_names = list(fixed_param_names or [])
        self.state_names = list(state_names or [])
        self.group2ctxs = self._group_contexts(group2ctxs)
        self._make_arena = make_arena
        # the batch axis of each output (its __layout__ attribute; 0 without one), for slicing and merging
        self.output_layouts = [DataDesc.get_batch_axis(symbol[i].attr("__layout__"))
                               for i in range(len(symbol.list_outputs()))]
        data_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in data_shapes]
        label_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in label_shapes or []]
        self.data_names = [d.name for d in data_shapes]
        self.label_names = [d.name for d in label_shapes]
        self.grad_req = grad_reqs(symbol, self.param_names, self.data_names, self.fixed_param_names,
                                  for_training, inputs_need_grad, grad_req)
        self.shared_data_arrays = shared_group.shared_data_arrays if shared_group is not None \
            else [{} for _ in self.contexts]
        self.execs = []
        self.bind_exec(data_shapes, label_shapes, shared_group)

    def _group_contexts(self, group2ctxs):
        """group2ctxs as MXNet takes it (one dict for all devices, a list of dicts, or dicts of lists with a
        context per device) -> a dict per device."""
        if group2ctxs is None:
            return [None] * len(self.contexts)
        if isinstance(group2ctxs, (list, tuple)):
            if len(group2ctxs) != len(self.contexts):
                raise ValueError("group2ctxs has %d entries for %d contexts" % (len(group2ctxs), len(self.contexts)))
            return [dict(g) for g in group2ctxs]
        per_device = []
        for i in range(len(self.contexts)):
            mapping = {}
            for group, ctxs in group2ctxs.items():
                if isinstance(ctxs, (list, tuple)):
                    if len(ctxs) not in (1, len(self.contexts)):
                        raise ValueError("group2ctxs['%s'] has %d contexts for %d devices"
                                         % (group, len(ctxs), len(self.contexts)))
                    mapping[group] = ctxs[i] if len(ctxs) > 1 else ctxs[0]
                else:
                    mapping[group] = ctxs
            per_device.append(mapping)
        return per_device

    @property
    def _total_exec_bytes(self):
        """Bytes of every array the executors hold (arguments, gradients, auxiliary states, outputs), each once."""
        seen, total = set(), 0
        for exe in self.execs:
            for array in list(exe.arg_arrays) + list(exe.grad_arrays) + list(exe.aux_arrays) + list(exe.outputs):
                if array is not None and id(array) not in seen:
                    seen.add(id(array))
                    total += int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
        return total

    # ----- binding -----
    def bind_exec(self, data_shapes, label_shapes, shared_group=None, reshape=False):
        """Executors for these (whole-batch) shapes; with `shared_group` (or on reshape, the current executors)
        their parameters, gradients and auxiliary states are shared."""
        data_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in data_shapes]
        label_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in label_shapes or []]
        self.batch_size = data_shapes[0].shape[_batch_axis(data_shapes[0])]
        self.slices = split_batch(self.batch_size, self.workload)
        previous = self.execs if reshape else (shared_group.execs if shared_group is not None else None)
        execs = []
        for i, ctx in enumerate(self.contexts):
            # (one context: the shapes as given, whatever their batch axes)
            descs = [d if len(self.contexts) == 1 else self._sliced(d, self.slices[i])
                     for d in data_shapes + label_shapes]
            shared = previous[i] if previous else None
            execs.append(bind_executor(self.symbol, ctx, descs, self.param_names, self.grad_req, self.label_names,
                                       shared=shared, shared_data=self.shared_data_arrays[i],
                                       make_arena=self._make_arena if i == 0 else None,
                                       group2ctx=self.group2ctxs[i]))
        self.execs = execs
        self.data_shapes, self.label_shapes = data_shapes, label_shapes or None
        self._collect()

    def reshape(self, data_shapes, label_shapes):
        """Executors for new batch shapes, sharing every parameter."""
        self.bind_exec(data_shapes, label_shapes, reshape=True)

    @staticmethod
    def _sliced(desc, part):
        axis = _batch_axis(desc)
        shape = list(desc.shape)
        if axis >= 0:
            shape[axis] = part.stop - part.start
        return DataDesc(desc.name, tuple(shape), desc.dtype, desc.layout)

    def _collect(self):
        by_arg = [dict(zip(self.arg_names, e.arg_arrays)) for e in self.execs]
        grads = [dict(zip(self.arg_names, e.grad_arrays)) for e in self.execs]
        trained = [n for n in self.param_names if n in self.arg_names]
        self.param_arrays = [[d[n] for d in by_arg] for n in trained]
        self.grad_arrays = [[g[n] for g in grads] for n in trained] if self.for_training else None
        self.aux_arrays = [[e.aux_arrays[i] for e in self.execs] for i in range(len(self.aux_names))]
        self.data_arrays = [[(self.slices[i], by_arg[i][n]) for i in range(len(self.execs))]
                            for n in self.data_names]
        self.label_arrays = [[(self.slices[i], by_arg[i][n]) for i in range(len(self.execs))]
                             for n in self.label_names if n in by_arg[0]] or None
        self.input_grad_arrays = [[g[n] for g in grads] for n in self.data_names] if self.inputs_need_grad \
            else None
        self.state_arrays = [[d[n] for d in by_arg] for n in self.state_names]

    # ----- parameters -----
    def set_params(self, arg_params, aux_params, allow_extra=False):
        """Copy the given values into every executor."""
        for exe in self.execs:
            exe.copy_params_from(arg_params, aux_params, allow_extra_params=allow_extra)

    def get_params(self, arg_params, aux_params):
        """Write the devices' average of every parameter and auxiliary state into the given dicts' arrays (MXNet
        averages: parameters are equal on every device, auxiliary states such as BatchNorm's moving statistics
        differ by the slice each device saw)."""
        for names, blocks, target in ((self.param_names, self.param_arrays, arg_params),
                                      (self.aux_names, self.aux_arrays, aux_params)):
            for name, block in zip(names, blocks):
                value = block[0].asnumpy() if len(block) == 1 else \
                    (sum(b.asnumpy().astype(np.float64) for b in block) / len(block)).astype(block[0].dtype)
                target[name]._data[...] = value
                touch(target[name]._data)

    # ----- computation -----
    def forward(self, data_batch, is_train=None):
        """Split the batch among the executors and run them."""
        if is_train is None:
            is_train = self.for_training
        self._lent = None
        self._load_batch(data_batch)
        for exe in self.execs:
            exe.forward(is_train=is_train)

    def forward_backward(self, data_batch):
        """forward(is_train=True) then backward() without head gradients, one run per executor where it can
        (Executor.forward_backward)."""
        self._lent = None
        self._load_batch(data_batch)
        for exe in self.execs:
            exe.forward_backward()

    def _load_batch(self, data_batch):
        self._load(self.data_names, self.data_shapes, data_batch.data)
        labels = getattr(data_batch, "label", None)
        if labels and self.label_shapes:
            self._load(self.label_names, self.label_shapes, labels)

    def forward_borrowing(self, data_batch):
        """An inference forward of the one executor reading the batch's arrays where they lie
        (Executor.forward_borrowing); the executor's arrays take the batch at end_borrowing (once, after a loop of
        such forwards). False, with nothing run, where it cannot (several devices, sparse or other arrays)."""
        if len(self.execs) != 1:
            return False
        buffers = {}
        labels = getattr(data_batch, "label", None)
        for names, arrays in ((self.data_names, data_batch.data),
                              (self.label_names, labels if labels and self.label_shapes else ())):
            if len(arrays) != len(names):
                return False
            for name, array in zip(names, arrays):
                if type(array) is NDArray:
                    array = array._data
                if not isinstance(array, np.ndarray):
                    return False
                buffers[name] = array
        if not self.execs[0].forward_borrowing(buffers):
            return False
        self._lent = data_batch
        return True

    def end_borrowing(self):
        """The executor's arrays take the batch forward_borrowing ran last (as forward() leaves them)."""
        batch, self._lent = self._lent, None
        if batch is not None:
            self._load_batch(batch)
            self.execs[0].end_borrowing()

    def _load(self, names, descs, arrays):
        for name, desc, array in zip(names, descs, arrays):
            axis = _batch_axis(desc)
            for exe, part in zip(self.execs, self.slices):
                target = exe._by_name.get(name)
                if target is None:
                    continue
                source = array._data if len(self.execs) == 1 and hasattr(array, "_data") else \
                    (_take(array, axis, part) if axis >= 0 else (array.asnumpy() if hasattr(array, "asnumpy")
                                                                  else array))
                target._data[...] = source
                touch(target._data)

    def backward(self, out_grads=None):
        if not self.for_training:
            raise MXNetError("backward() needs a module bound with for_training=True")
        for i, exe in enumerate(self.execs):
            sliced = None
            if out_grads is not None:
                grads = out_grads if isinstance(out_grads, (list, tuple)) else [out_grads]
                sliced = [grad if len(self.execs) == 1 or grad is None else
                          NDArray(np.ascontiguousarray(_take(grad, axis, self.slices[i]) if axis >= 0
                                                       else (grad.asnumpy() if hasattr(grad, "asnumpy") else grad)),
                                  exe._ctx)
                          for grad, axis in zip(grads, self.output_layouts)]
            exe.backward(sliced)

    def get_outputs(self, merge_multi_context=True, begin=0, end=None):
        outputs = [exe.outputs[begin:end] for exe in self.execs]
        per_output = [[outs[j] for outs in outputs] for j in range(len(outputs[0]))]
        return self._merge(per_output, self.output_layouts[begin:end]) if merge_multi_context else per_output

    def get_input_grads(self, merge_multi_context=True):
        if not self.inputs_need_grad:
            raise MXNetError("get_input_grads() needs a module bound with inputs_need_grad=True")
        axes = [_batch_axis(d) for d in self.data_shapes]
        return self._merge(self.input_grad_arrays, axes) if merge_multi_context else self.input_grad_arrays

    def get_states(self, merge_multi_context=True):
        return self._merge(self.state_arrays) if merge_multi_context else self.state_arrays

    def set_states(self, states=None, value=None):
        if states is not None:
            for name, state in zip(self.state_names, states):
                blocks = state if isinstance(state, (list, tuple)) else [state] * len(self.execs)
                for exe, block in zip(self.execs, blocks):
                    exe._by_name[name][:] = block
        else:
            for exe in self.execs:
                for name in self.state_names:
                    exe._by_name[name][:] = value

    def _merge(self, blocks, axes=None):
        """One array per entry: the devices' blocks joined along its batch axis (`axes`, 0 by default; an entry
        without one is the first device's), or the block itself on one device."""
        if len(self.execs) == 1:
            return [block[0] for block in blocks]
        axes = axes or [0] * len(blocks)
        return [NDArray(np.concatenate([b.asnumpy() for b in block], axis=axis), block[0].context)
                if block[0].ndim and axis >= 0 else block[0] for block, axis in zip(blocks, axes)]

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """Each device's outputs against its slice of the labels (MXNet updates the metric once per device)."""
        for i, exe in enumerate(self.execs):
            if pre_sliced:
                own = labels[i]
            elif len(self.execs) == 1:
                own = labels
            else:
                axes = [_batch_axis(d) for d in self.label_shapes] if self.label_shapes else [0] * len(labels)
                own = [NDArray(np.ascontiguousarray(_take(label, axis, self.slices[i])))
                       for label, axis in zip(labels, axes)]
            eval_metric.update_dict(OrderedDict(zip(self.label_names, own or [])),
                                    OrderedDict(zip(self.symbol.list_outputs(), exe.outputs)))

    def install_monitor(self, mon):
        for exe in self.execs:
            mon.install(exe)
