"""`mx.optimizer`: MXNet 1.9.1's optimizers and `Updater`, as in-place numpy updates of NDArray buffers.

Each optimizer reproduces the arithmetic of MXNet's update kernels (`sgd_mom_update`, `adam_update`, ...) on
the contiguous numpy array behind an NDArray, so executors bound to a weight see the new values at once.

    >>> opt = mx.optimizer.create('sgd', learning_rate=0.1, momentum=0.9, wd=1e-4)
    >>> updater = mx.optimizer.get_updater(opt)
    >>> updater(0, grad, weight)          # weight updated in place
    >>> blob = updater.get_states()       # bytes in onnxsym's own format (see `_updater_states`)
"""
import functools
import logging
import math
import os
import warnings

import numpy as np

from ..base import MXNetError, register_class
from ..ops.params import float_param as _param     # (the update operators' float parameters: lr, wd, betas, ...)
from ..runtime.device import touch
from ..runtime.ndarray import NDArray
from ..runtime.sparse import RowSparseNDArray, sparse_array
from . import device_updates

__all__ = ["Optimizer", "SGD", "Signum", "FTML", "LARS", "LAMB", "DCASGD", "NAG", "SGLD", "ccSGD", "Adam",
           "AdaGrad", "LBSGD", "RMSProp", "AdaDelta", "Ftrl", "Adamax", "Nadam", "GroupAdaGrad", "Test", "Updater",
           "create", "get_updater", "register"]


def _pair(weight, grad, touch_weight=True):
    """The numpy buffers of weight and grad, checked as MXNet's update operators check them (touch_weight=False:
    only the checks, for an update on the device)."""
    if not isinstance(weight, NDArray) or not isinstance(grad, NDArray):
        raise TypeError("optimizer update expects NDArray weight and grad, got %s and %s"
                        % (type(weight).__name__, type(grad).__name__))
    if weight.shape != grad.shape:
        raise MXNetError("optimizer update: weight shape %s does not match grad shape %s" % (weight.shape, grad.shape))
    if not touch_weight:
        return None
    touch(weight._data)     # (before the caller writes it: what matters is that the next session run sees a change)
    return weight._data, grad._data


def _clip(values, bound):
    """np.clip into [-bound, bound] with the bound a float32 (the kernels' parameter, and nd.clip's a_min/a_max)."""
    bound = _param(bound, values.dtype)
    return np.clip(values, -bound, bound)


def _kernel_clip(values, clip_gradient):
    """Clipping as the C++ kernels apply it: only for a truthy, non-negative bound."""
    return _clip(values, clip_gradient) if clip_gradient and clip_gradient >= 0 else values


def _python_clip(values, clip_gradient):
    """Clipping as MXNet's Python-level optimizers apply it: whenever the bound is not None."""
    return values if clip_gradient is None else _clip(values, clip_gradient)


def _sign(values):
    """The kernels' sign, ``(x > 0) - (x < 0)``: 0 for NaN."""
    return (values > 0).astype(values.dtype) - (values < 0)


def _sum_sq(values):
    """multi_sum_sq's sum of squares on CPU: the squares in the values' dtype, added in order into one float32
    (np.cumsum is sequential): exact for float16 and float32. A float64 square is rounded to float32 before its
    addition here, where MXNet adds it in double and rounds the sum, so the two can differ in the sum's last
    float32 place (an exact emulation is a Python loop per value)."""
    squares = np.square(values.ravel()).astype(np.float32, copy=False)
    return np.cumsum(squares, dtype=np.float32)[-1] if squares.size else np.float32(0)


def _row_sums(values, compensated):
    """Sums over axis 1 (kept) of a 2-D array, added column after column as MXNet's CPU reductions add them:
    `compensated` as mshadow's sum reducer (Kahan's compensated sum), else plainly. (Over the columns of a
    contiguous transposed copy: a (100000, 300) float32 array takes ~0.1 s, np.mean ~0.05.)"""
    columns = np.ascontiguousarray(values.T)
    total, residual, y = np.zeros(values.shape[0], values.dtype), np.zeros(values.shape[0], values.dtype), \
        np.empty(values.shape[0], values.dtype)
    for column in columns:
        if not compensated:
            total += column
            continue
        np.subtract(column, residual, out=y)        # y = x - c; t = total + y; c = (t - total) - y; total = t
        np.add(total, y, out=residual)
        total, residual = residual, total
        np.subtract(total, residual, out=residual)
        residual -= y
    return total[:, None]


def _same_dtype_state(op, weight, state):
    """MXNet's check that an optimizer's float32 state (AdaGrad's history, RMSProp's n, ...) and the weight agree:
    float16 weights need multi_precision=True (the update then runs on the float32 master copy), and float64
    weights are refused."""
    for array in _state_arrays(state):
        if array.dtype != weight.dtype:
            raise MXNetError("%s: the weight is %s but its optimizer state is %s (Incompatible attr in node: "
                             "expected %s, got %s); this optimizer keeps float32 states as MXNet 1.9.1 does: "
                             "train float32 weights, or float16 with multi_precision=True"
                             % (op, np.dtype(weight.dtype).name, np.dtype(array.dtype).name,
                                np.dtype(array.dtype).name, np.dtype(weight.dtype).name))


def _zeros(weight, dtype=None):
    """A zero state for `weight`, in its storage type (MXNet's create_state)."""
    return sparse_array(weight.stype, np.zeros(weight.shape, dtype if dtype is not None else weight._data.dtype),
                        weight.context)


def _as_list(index, weight, grad, state):
    if isinstance(index, (tuple, list)):
        return list(index), list(weight), list(grad), list(state)
    return [index], [weight], [grad], [state]


def _state_arrays(state):
    """The NDArrays of an optimizer state (None, an array, or nested tuples/lists of them)."""
    if isinstance(state, NDArray):
        return [state]
    if isinstance(state, (tuple, list)):
        return [a for part in state for a in _state_arrays(part)]
    return []


def _row_sparse_aware(update):
    """`update` (an optimizer's update or update_multi_precision) with MXNet's lazy update for row_sparse
    gradients: where the optimizer applies them lazily (`_lazy_sparse`), only the rows the gradient stores change,
    in the weight and in every state of the same shape; the others keep their values (no weight decay, no
    momentum). Optimizers without a sparse kernel in MXNet update every row (its storage fallback)."""
    @functools.wraps(update)
    def wrapped(self, index, weight, grad, state):
        _, weights, grads, states = _as_list(index, weight, grad, state)
        kept = []
        for w, g, st in zip(weights, grads, states):
            if isinstance(g, RowSparseNDArray) and self._lazy_sparse(w) and w.shape[0]:
                others = np.setdiff1d(np.arange(w.shape[0]), g._rows())
                if others.size:
                    arrays = [w] + [a for a in _state_arrays(st) if a.shape[:1] == w.shape[:1]]
                    kept.append((others, [(a, a._data[others].copy()) for a in arrays]))
        result = update(self, index, weight, grad, state)
        for others, arrays in kept:
            for array, values in arrays:
                array._data[others] = values
                touch(array._data)
        return result
    wrapped.row_sparse_aware = True
    return wrapped


class Optimizer:
    """The base class of all optimizers: learning rate, weight decay, per-parameter multipliers, update counts.

    Parameters
    ----------
    rescale_grad : float, multiplies the gradient before the update (often ``1.0/batch_size``).
    param_idx2name : dict of int to str, names the parameter indices (drives the default wd_mult).
    wd : float, the weight decay (L2 penalty) coefficient.
    clip_gradient : float or None, clips the gradient into ``[-clip_gradient, clip_gradient]``.
    learning_rate : float or None, overrides the scheduler's base rate; 0.01 when neither is given.
    lr_scheduler : callable ``num_update -> lr`` with a ``base_lr`` attribute (an LRScheduler).
    sym : Symbol, whose ``__lr_mult__``/``__wd_mult__`` attributes set the multipliers.
    begin_num_update : int, the initial update count.
    multi_precision : bool, keep a float32 master copy of float16 weights.
    param_dict : dict of int to a parameter with ``lr_mult``/``wd_mult`` (Gluon), looked up first.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("update", "update_multi_precision"):
            method = getattr(cls, name)
            if not getattr(method, "row_sparse_aware", False):     # (mixins such as _ImplDispatch define them)
                setattr(cls, name, _row_sparse_aware(method))

    def _lazy_sparse(self, weight):
        """Whether a row_sparse gradient updates only its rows: MXNet's sgd/adam kernels with lazy_update, and
        ftrl_update on a row_sparse weight (its dense fallback, for a dense weight, updates every row)."""
        if hasattr(self, "lazy_update"):
            return bool(self.lazy_update)
        return isinstance(weight, RowSparseNDArray) and isinstance(self, Ftrl)

    opt_registry = {}

    def __init__(self, rescale_grad=1., param_idx2name=None, wd=0., clip_gradient=None, learning_rate=None,
                 lr_scheduler=None, sym=None, begin_num_update=0, multi_precision=False, param_dict=None):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None and lr_scheduler.base_lr != learning_rate:
            warnings.warn("learning rate from ``lr_scheduler`` has been overwritten by ``learning_rate`` in "
                          "optimizer.", UserWarning)
            lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.lr_mult = {}
        self.wd_mult = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0
        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):
            raise ValueError("param_idx2name should be a dict of param indexes to names.")
        self.idx2name = param_idx2name.copy()
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.param_dict = param_dict if param_dict else {}
        self.set_lr_mult({})
        self.set_wd_mult({})

    @staticmethod
    def register(klass):
        """Register an optimizer class under its lower-cased class name (for `create`)."""
        return register_class(Optimizer.opt_registry, klass, "an optimizer")

    @staticmethod
    def create_optimizer(name, **kwargs):
        """An optimizer instance from its registered name (case-insensitive), e.g. ``create('adam')``."""
        if name.lower() in Optimizer.opt_registry:
            return Optimizer.opt_registry[name.lower()](**kwargs)
        raise ValueError("Cannot find optimizer %s" % name)

    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def create_state(self, index, weight):
        """The auxiliary state (e.g. momentum) of one weight; None when the optimizer keeps none."""
        return None

    def create_state_multi_precision(self, index, weight):
        """`create_state`, plus a float32 master copy first when multi_precision is on for a float16 weight."""
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (master,) + (self.create_state(index, master),)
        if weight.dtype == np.float16 and not self.multi_precision:
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow convergence. "
                          "Consider using multi_precision=True option of the optimizer")
        return self.create_state(index, weight)

    def update(self, index, weight, grad, state):
        """Update `weight` in place from `grad` and `state`."""
        raise NotImplementedError("%s does not implement update" % type(self).__name__)

    def _begin(self, index, weight, grad):
        """The start of one update: count it, then (weight and grad as numpy arrays, lr, wd) for `index`."""
        w, g = _pair(weight, grad)
        self._update_count(index)
        return w, g, self._get_lr(index), self._get_wd(index)

    def update_multi_precision(self, index, weight, grad, state):
        """`update`, run on the float32 master copy for float16 weights when multi_precision is on."""
        if self.multi_precision and weight.dtype == np.float16:
            master, original = state
            self.update(index, master, grad.astype(np.float32), original)
            weight._data[...] = master._data
            touch(weight._data)
        else:
            self.update(index, weight, grad, state)

    def set_learning_rate(self, lr):
        """Set the learning rate; not allowed once an lr_scheduler drives it."""
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined. Note that set_learning_rate "
                              "can mutate the value of the learning rate of the optimizer only when the "
                              "LRScheduler of the optimizer is undefined.")
        self.lr = lr

    def set_lr_scale(self, args_lrscale):
        """[DEPRECATED] Use set_lr_mult."""
        raise DeprecationWarning

    def _sym_mults(self, key):
        if not self.sym_info:
            return {}
        attr, arg_names = self.sym_info
        return {name: float(attr[name][key]) for name in arg_names if name in attr and key in attr[name]}

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers (by name or index) on top of the symbol's ``__lr_mult__``."""
        self.lr_mult = self._sym_mults("__lr_mult__")
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers: 0 for named parameters not ending in ``_weight``/``_gamma``,
        then the symbol's ``__wd_mult__``, then `args_wd_mult` (by name or index)."""
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith(("_weight", "_gamma"))}
        self.wd_mult.update(self._sym_mults("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def _set_current_context(self, device_id):
        """Select the per-device update counts."""
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})

    def _update_count(self, index):
        """Count one more update of each index; num_update is the largest count."""
        for idx in index if isinstance(index, (list, tuple)) else [index]:
            count = self._index_update_count.get(idx, self.begin_num_update) + 1
            self._index_update_count[idx] = count
            self.num_update = max(count, self.num_update)

    def _scaled(self, base, indices, mults, attr):
        values = [base] * len(indices)
        for i, index in enumerate(indices):
            if index in self.param_dict:
                values[i] *= getattr(self.param_dict[index], attr)
            elif index in mults:
                values[i] *= mults[index]
            elif index in self.idx2name:
                values[i] *= mults.get(self.idx2name[index], 1.0)
        return values

    def _get_lrs(self, indices):
        return self._scaled(self.learning_rate, indices, self.lr_mult, "lr_mult")

    def _get_lr(self, index):
        """The learning rate of one index: the scheduled rate times its lr_mult."""
        return self._get_lrs([index])[0]

    def _get_wds(self, indices):
        return self._scaled(self.wd, indices, self.wd_mult, "wd_mult")

    def _get_wd(self, index):
        """The weight decay of one index: wd times its wd_mult."""
        return self._get_wds([index])[0]


register = Optimizer.register
create = Optimizer.create_optimizer


def sgd_kernel(w, g, mom, lr, wd, rescale, clip, momentum, step, product, preloaded=False):
    """MXNet 1.9.1's multi_sgd_update / multi_sgd_mom_update (what Module's updater runs: MXNet aggregates SGD
    updates by default) in place on numpy buffers, in its order and precision: the rates are float32 values (the
    operator's parameters: a float64 weight sees float64(float32(0.1))) cast to w's dtype, lr * rescale and lr * wd
    multiplied in it, ``mom = momentum*mom - lr*wd*w - lr*rescale*g`` (with a `clip` bound,
    ``- lr*clip(rescale*g)``), ``w += mom``; without a momentum buffer (`mom` None) mom starts at 0. `wd`: a number,
    or [(begin, end, wd)] for flat buffers whose stretches decay differently (none elsewhere: Module's arena, where
    biases take no decay): each operation then covers the whole buffer, the decay term its stretches, and every
    value sees the same operations in the same order. `step` and `product`: scratch buffers of w's shape and
    dtype. `preloaded`: preloaded_multi_sgd(_mom)_update (LARS), whose rates come as float32 arrays, so lr * wd is
    a float32 product."""
    kind = functools.partial(_param, dtype=w.dtype)
    rate = (lambda v: w.dtype.type(np.float32(lr) * np.float32(v))) if preloaded else (lambda v: kind(lr) * kind(v))
    lr = kind(lr)
    decays = [(w, mom, step, product, rate(wd))] if np.ndim(wd) == 0 else \
        [(w[b:e], None if mom is None else mom[b:e], step[b:e], product[b:e], rate(v)) for b, e, v in wd]
    if clip is not None:
        np.multiply(g, kind(rescale), out=step)
        np.clip(step, -kind(clip), kind(clip), out=step)
        step *= lr
    else:
        np.multiply(g, lr * kind(rescale), out=step)
    if mom is not None:
        mom *= kind(momentum)
        for part_w, part_mom, _, part_product, lrwd in decays:
            if lrwd:
                part_mom -= np.multiply(part_w, lrwd, out=part_product)
        mom -= step
        w += mom
    else:
        for part_w, _, part_step, part_product, lrwd in decays:
            if lrwd:        # (0 - lr*wd*w - step: the same as subtracting their sum)
                part_step += np.multiply(part_w, lrwd, out=part_product)
        w -= step


def _sgd_kernel(opt, w, g, mom, lr, wd, momentum, kernel="multi"):
    """sgd_kernel on one parameter (scratch made here). `kernel`: "multi" (multi_sgd(_mom)_update), "preloaded"
    (its preloaded_ form) or "single": sgd_update / mp_sgd_update (one parameter, not aggregated: NAG and LBSGD
    without momentum, row_sparse gradients), whose kernel computes ``(1 - lr*wd)*w - lr*clip(rescale*g)``
    (without a bound ``- (lr*rescale)*g``), and with momentum sgd_mom_update (multi_sgd_mom_update's
    arithmetic)."""
    clip = opt.clip_gradient if opt.clip_gradient and opt.clip_gradient >= 0 else None
    if kernel == "single" and mom is None:
        p = functools.partial(_param, dtype=w.dtype)
        lr = p(lr)
        step = lr * _clip(p(opt.rescale_grad) * g, clip) if clip is not None else (lr * p(opt.rescale_grad)) * g
        w[...] = (1 - lr * p(wd)) * w - step
        return
    sgd_kernel(w, g, None if mom is None else mom._data, lr, wd, opt.rescale_grad, clip, momentum,
               np.empty_like(w), np.empty_like(w) if lr * wd else None, preloaded=kernel == "preloaded")


class _ImplDispatch:
    """update / update_multi_precision through one `_update_impl(index, weight, grad, state, multi_precision)`
    (multi-precision when asked for and the weight is float16)."""

    def update(self, index, weight, grad, state):
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index, weight, grad, state):
        first = weight[0] if isinstance(index, (tuple, list)) else weight
        self._update_impl(index, weight, grad, state,
                          multi_precision=self.multi_precision and first.dtype == np.float16)


class _MasterLast(_ImplDispatch):
    """Multi-precision state laid out as (state, float32 master), as SGD, NAG and LARS keep it."""

    def create_state_multi_precision(self, index, weight):
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (self.create_state(index, master), master)
        if weight.dtype == np.float16 and not self.multi_precision:
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow convergence. "
                          "Consider using multi_precision=True option of the %s optimizer" % type(self).__name__)
        return self.create_state(index, weight)

    def _sgd_step(self, weight, grad, state, lr, wd, momentum, multi_precision, kernel="multi"):
        """multi_sgd(_mom)_update or the other forms (`kernel`, as _sgd_kernel's) and their mp_ variants (the
        master copy takes the update); on a device where the arrays live (device_updates.py)."""
        if not multi_precision:
            device = device_updates.on_device(weight, grad, state)
            if device is not None:
                _pair(weight, grad, touch_weight=False)
                return device_updates.sgd(self, device, weight, grad, state, lr, wd, momentum, kernel)
        w, g = _pair(weight, grad)
        if multi_precision:
            state, master = state
            _sgd_kernel(self, master._data, g.astype(np.float32), state, lr, wd, momentum, kernel)
            w[...] = master._data
        else:
            _sgd_kernel(self, w, g, state, lr, wd, momentum, kernel)


@register
class SGD(_MasterLast, Optimizer):
    """SGD with momentum and weight decay: ``state = momentum*state - lr*(clip(rescale*grad) + wd*weight)``,
    ``weight += state`` (without momentum ``weight -= lr*(clip(rescale*grad) + wd*weight)``).
    `lazy_update`: a row_sparse gradient updates only its rows (weight and momentum)."""

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update
        self.aggregate_num = int(os.getenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "4"))

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _update_impl(self, indices, weights, grads, states, multi_precision=False):
        indices, weights, grads, states = _as_list(indices, weights, grads, states)
        self._update_count(indices)
        momentum = self.momentum if self.momentum > 0 else 0.0
        single = any(isinstance(g, RowSparseNDArray) for g in grads)     # (MXNet aggregates dense updates only)
        for weight, grad, state, lr, wd in zip(weights, grads, states, self._get_lrs(indices),
                                               self._get_wds(indices)):
            self._sgd_step(weight, grad, state, lr, wd, momentum, multi_precision, "single" if single else "multi")


@register
class ccSGD(SGD):
    """[DEPRECATED] Same as `SGD`."""


@register
class NAG(_MasterLast, Optimizer):
    """Nesterov accelerated gradient as MXNet's nag_mom_update computes it: ``m = momentum*mom``,
    ``w += momentum*m - (1+momentum)*lr*(g + wd*w)``, ``mom = m - lr*(g + wd*w_new)`` with ``g = clip(rescale*grad)``
    (plain SGD when momentum is 0)."""

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _update_impl(self, index, weight, grad, state, multi_precision=False):
        w, g, lr, wd = self._begin(index, weight, grad)
        mom = state[0] if multi_precision else state
        if mom is None:
            return self._sgd_step(weight, grad, state, lr, wd, 0.0, multi_precision, "single")
        w32 = state[1]._data if multi_precision else w
        p = functools.partial(_param, dtype=w32.dtype)
        lr, wd, momentum = p(lr), p(wd), p(self.momentum if self.momentum > 0 else 0.0)
        g = _kernel_clip(p(self.rescale_grad) * g.astype(w32.dtype), self.clip_gradient)
        m = mom._data
        m *= momentum
        w32[...] = w32 - m + (momentum + 1) * (m - lr * (g + wd * w32))
        # MXNet's kernel writes the weight in place first, so the momentum's decay term sees the new weight.
        m -= lr * (g + wd * w32)
        if multi_precision:
            w[...] = w32
        return None

    def update_multi_precision(self, index, weight, grad, state):
        self._update_impl(index, weight, grad, state, multi_precision=self.multi_precision
                          and weight.dtype == np.float16 and isinstance(state, (tuple, list)))


@register
class LARS(_MasterLast, Optimizer):
    """SGD with layer-wise adaptive rates: ``lr * eta*|w| / (|rescale*g| + wd*|w| + eps)`` for every parameter
    whose name does not end in gamma, beta or bias; momentum is scaled by the scheduler's lr change."""

    def __init__(self, momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.momentum_correction = momentum_correction
        self.lazy_update = lazy_update
        self.aggregate_num = int(os.getenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "4"))
        self.eta = eta
        self.eps = eps
        self.skip = 0
        self.last_lr = None
        self.cur_lr = None

    def _get_lrs(self, indices):
        if self.cur_lr is not None:
            self.last_lr = self.cur_lr
        lr = self.learning_rate
        if self.cur_lr is None:
            self.last_lr = lr
        self.cur_lr = lr
        return self._scaled(lr, indices, self.lr_mult, "lr_mult")

    def set_wd_mult(self, args_wd_mult):
        """As Optimizer.set_wd_mult, but only names ending in ``_weight`` keep weight decay by default."""
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith("_weight")}
        self.wd_mult.update(self._sym_mults("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _multi_lars(self, index, weight, grad, lr, wd):
        """The rate of dense updates as multi_sum_sq + multi_lars compute it, in float32:
        ``lr*eta*|w| / (|g|*rescale + wd*|w| + eps)``."""
        if self.idx2name.get(index, str(index)).endswith(("gamma", "beta", "bias")):
            return lr
        f = np.float32
        w_norm, g_sum_sq = np.sqrt(_sum_sq(weight._data)), _sum_sq(grad._data)
        if w_norm > 0 and g_sum_sq > 0:
            return f(lr) * f(self.eta) * w_norm / (np.sqrt(g_sum_sq) * f(self.rescale_grad) + f(wd) * w_norm
                                                   + f(self.eps))
        return lr

    def _get_lars(self, index, weight, grad, lr, wd):
        """The rate of row_sparse updates (MXNet's _get_lars: float32 norms, the ratio in double)."""
        name = self.idx2name.get(index, str(index))
        if name.endswith(("gamma", "beta", "bias")):
            return lr
        w_norm = float(np.linalg.norm(weight._data.astype(np.float32).ravel()))
        g_norm = float(np.linalg.norm((grad._data.astype(np.float32) * self.rescale_grad).ravel()))
        if w_norm > 0.0 and g_norm > 0.0:
            return lr * self.eta * w_norm / (g_norm + wd * w_norm + self.eps)
        return lr

    def _update_impl(self, indices, weights, grads, states, multi_precision=False):
        indices, weights, grads, states = _as_list(indices, weights, grads, states)
        self._update_count(indices)
        lrs, wds = self._get_lrs(indices), self._get_wds(indices)
        momentum = self.momentum if self.momentum > 0 else 0.0
        if momentum and self.momentum_correction and self.last_lr != 0:
            momentum *= self.cur_lr / self.last_lr
        single = any(isinstance(g, RowSparseNDArray) for g in grads)     # (MXNet aggregates dense updates only)
        lars, kernel = (self._get_lars, "single") if single else (self._multi_lars, "preloaded")
        for index, weight, grad, state, lr, wd in zip(indices, weights, grads, states, lrs, wds):
            self._sgd_step(weight, grad, state, lars(index, weight, grad, lr, wd), wd, momentum, multi_precision,
                           kernel)


@register
class LBSGD(Optimizer):
    """Large-batch SGD: gradients are summed over `batch_scale` calls, then one SGD step is taken with the
    learning rate scaled by a warm-up multiplier ('linear', 'power2', 'sqrt') or a LARS-style ratio ('lars').
    As in MXNet, the first gradient of a macro-batch is kept by reference, not copied."""

    def __init__(self, momentum=0.0, multi_precision=False, warmup_strategy="linear", warmup_epochs=5,
                 batch_scale=1, updates_per_epoch=32, begin_epoch=0, num_epochs=60, **kwargs):
        super().__init__(**kwargs)
        logging.info("Running Large-Batch SGD Algorithm")
        logging.info("(Batch_scale=%f, warmup_epochs=%d, warmup_strategy=%s, updates_per_epoch=%d)",
                     batch_scale, warmup_epochs, warmup_strategy, updates_per_epoch)
        self.momentum = momentum
        self.multi_precision = multi_precision
        self.warmup_strategy = warmup_strategy
        self.warmup_epochs = warmup_epochs
        self.batch_scale = batch_scale
        self.updates_per_epoch = updates_per_epoch
        self.init_updates = begin_epoch * updates_per_epoch
        self.num_epochs = num_epochs
        self.lbmult = 1
        self.cumgrads = {}
        self.adaptive = False
        self.admult = 1

    def create_state(self, index, weight):
        momentum = None
        if self.multi_precision and weight.dtype == np.float16:
            if self.momentum != 0.0:
                momentum = _zeros(weight, np.float32)
            return (momentum, weight.astype(np.float32))
        if weight.dtype == np.float16 and not self.multi_precision:
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow convergence. "
                          "Consider using multi_precision=True option of the SGD optimizer")
        return _zeros(weight) if self.momentum != 0.0 else None

    def _get_lbmult(self, nup):
        """The warm-up multiplier after `nup` accumulated updates."""
        nwup = self.warmup_epochs * self.updates_per_epoch
        maxmult = float(self.batch_scale)
        if nup >= nwup:
            return maxmult
        if nwup <= 1:
            return 1.0
        if self.warmup_strategy == "linear":
            return 1.0 + (maxmult - 1) * nup / nwup
        if self.warmup_strategy == "power2":
            return 1.0 + (maxmult - 1) * (nup * nup) / (nwup * nwup)
        if self.warmup_strategy == "sqrt":
            return 1.0 + (maxmult - 1) * math.sqrt(float(nup) / nwup)
        return 1.0

    @staticmethod
    def _get_lars(weight, grad, wd):
        """sqrt(|w|² / (|g|² + wd*|w|²)), clamped into [0.01, 100]."""
        weight2, grad2 = float(np.sum(weight * weight)), float(np.sum(grad * grad))
        return min(max(math.sqrt(weight2 / (grad2 + wd * weight2 + 1e-18)), 0.01), 100)

    def _cumulate_gradient(self, grad, index):
        cgrad = self.cumgrads.get(index, {})
        if cgrad and cgrad["num_cums"] > 0:
            previous = cgrad["cum_grad"]
            cum_grad = NDArray(grad._data + (previous._data if isinstance(previous, NDArray) else previous),
                               grad.context)
            num_cums = cgrad["num_cums"] + 1
        else:
            cum_grad, num_cums = grad, self.init_updates + 1
        self.cumgrads[index] = {"cum_grad": cum_grad, "num_cums": num_cums}
        return self.cumgrads[index]

    def update(self, index, weight, grad, state):
        w, _ = _pair(weight, grad)
        lr, wd = self._get_lr(index), self._get_wd(index)
        self._update_count(index)
        cgrad = self._cumulate_gradient(grad, index)
        if cgrad["num_cums"] % self.batch_scale != 0:
            return  # MXNet runs sgd_update with lr=0 here, which leaves the weight as it is
        g = cgrad["cum_grad"]._data / self.batch_scale
        if self.warmup_strategy == "lars":
            lr *= self._get_lars(w, g, wd)
        else:
            lr *= self._get_lbmult(cgrad["num_cums"])
        momentum = self.momentum if self.momentum > 0 else 0.0
        if isinstance(state, (list, tuple)):
            mom, master = state
            _sgd_kernel(self, master._data, g.astype(np.float32), mom, lr, wd, momentum, "single")
            w[...] = master._data
        else:
            _sgd_kernel(self, w, g, state, lr, wd, momentum, "single")
        cgrad["cum_grad"] = 0


@register
class Signum(Optimizer):
    """Signum: ``mom = momentum*mom - (1-momentum)*(clip(rescale*grad) + wd*w)``,
    ``w = (1 - lr*wd_lh)*w + lr*sign(mom)``; signSGD when momentum is 0."""

    def __init__(self, learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        p = functools.partial(_param, dtype=w.dtype)
        lr, wd = p(lr), p(wd)
        if state is None:
            if self.wd_lh:  # MXNet passes wd_lh on to signsgd_update, which has no such argument
                raise MXNetError("Cannot find argument 'wd_lh' in operator signsgd_update")
            w[...] = (1 - lr * wd) * w - lr * _sign(g)      # (signsgd_update ignores rescale_grad and the clip)
            return
        momentum = p(self.momentum if self.momentum > 0 else 0.0)
        rest = 1 - momentum
        if self.clip_gradient and self.clip_gradient >= 0:
            step = rest * _clip(p(self.rescale_grad) * g, self.clip_gradient)
        else:
            step = (rest * p(self.rescale_grad)) * g
        mom = state._data
        mom[...] = momentum * mom - (rest * wd) * w - step
        w[...] = (1 - lr * p(self.wd_lh)) * w + lr * _sign(mom)


@register
class FTML(Optimizer):
    """FTML (Follow the Moving Leader); state (d, v, z) as in MXNet's ftml_update."""

    def __init__(self, beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight), _zeros(weight))

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        p = functools.partial(_param, dtype=w.dtype)
        lr, wd, beta1, beta2 = p(lr), p(wd), p(self.beta1), p(self.beta2)
        t = w.dtype.type(self._index_update_count[index])
        d, v, z = (s._data for s in state)
        g = _kernel_clip(p(self.rescale_grad) * g + wd * w, self.clip_gradient)
        v[...] = beta2 * v + (1 - beta2) * np.square(g)
        eps = w.dtype.type(self.epsilon)     # (ftml_update's epsilon is its one double parameter)
        d_t = (1 - beta1 ** t) / lr * (np.sqrt(v / (1 - beta2 ** t)) + eps)
        z[...] = beta1 * z + (1 - beta1) * g - (d_t - beta1 * d) * w
        d[...] = d_t
        w[...] = -z / d_t


@register
class LAMB(_ImplDispatch, Optimizer):
    """LAMB: Adam-style direction ``r = m̂/(sqrt(v̂)+eps) + wd*w`` scaled by the trust ratio |w|/|r|
    (|w| clamped into [lower_bound, upper_bound] when given)."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6, lower_bound=None,
                 upper_bound=None, bias_correction=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bias_correction
        self.aggregate_num = max(1, min(45, int(os.getenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "45"))))

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def _step(self, index, weight, grad, state, multi_precision, aggregated):
        """lamb_update_phase1 + the weight's and the direction's norms + lamb_update_phase2 (one index), or with
        `aggregated` multi_lamb_update (a list of indices: MXNet keeps the direction and both norms in float32, the
        norms as multi_sum_sq's sums); the mp_ variants update the float32 master copy."""
        w, g = _pair(weight, grad)
        lr, wd = self._get_lr(index), self._get_wd(index)
        t = self._index_update_count[index]
        if multi_precision:
            master, (mean, var) = state
            w32, g = master._data, g.astype(np.float32)
        else:
            (mean, var), w32 = state, w
        mean, var = mean._data, var._data
        kind = w32.dtype.type
        p = functools.partial(_param, dtype=w32.dtype)
        beta1, beta2 = p(self.beta1), p(self.beta2)
        g = _kernel_clip(g * p(self.rescale_grad), self.clip_gradient)
        mean[...] = beta1 * mean + (1 - beta1) * g
        var[...] = beta2 * var + (1 - beta2) * g * g
        if self.bias_correction:    # (beta ** t: in the dtype for multi_lamb, in double for phase 1)
            power = (lambda beta: beta ** kind(t)) if aggregated else \
                (lambda beta: kind(np.float64(beta) ** t))
            mean_hat, var_hat = mean / (1 - power(beta1)), var / (1 - power(beta2))
        else:
            mean_hat, var_hat = mean, var
        direction = mean_hat / (np.sqrt(var_hat) + p(self.epsilon)) + p(wd) * w32
        if aggregated:
            direction = direction.astype(np.float32)
            r1, r2 = np.sqrt(_sum_sq(w)), np.sqrt(_sum_sq(direction))
        else:
            r1, r2 = kind(np.linalg.norm(w32.ravel())), kind(np.linalg.norm(direction.ravel()))
        bound = np.float32 if aggregated else p
        if self.lower_bound and self.lower_bound >= 0:
            r1 = max(r1, bound(self.lower_bound))
        if self.upper_bound and self.upper_bound >= 0:
            r1 = min(r1, bound(self.upper_bound))
        if aggregated:
            w32 -= (p(lr) * kind(1 if r1 == 0 or r2 == 0 else r1 / r2)) * direction.astype(w32.dtype)
        else:
            w32 -= (p(lr) if r1 == 0 or r2 == 0 else p(lr) * r1 / r2) * direction
        if multi_precision:
            w[...] = w32

    def _update_impl(self, index, weight, grad, state, multi_precision=False):
        aggregated = self.aggregate_num > 1 and isinstance(index, (tuple, list))
        indices, weights, grads, states = _as_list(index, weight, grad, state)
        for i, w, g in zip(indices, weights, grads):
            _pair(w, g)
            self._update_count(i)
        for i, w, g, s in zip(indices, weights, grads, states):
            self._step(i, w, g, s, multi_precision, aggregated)


@register
class DCASGD(Optimizer):
    """Delay-compensated asynchronous SGD: ``mom = momentum*mom - lr*(g + wd*w + lamda*g*g*(w - w_prev))``,
    ``w += mom``. (MXNet 1.9.1 tests ``if mom:`` on an array and so fails for momentum > 0; this tests
    ``mom is not None``, the intended update.)"""

    def __init__(self, momentum=0.0, lamda=0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.weight_previous = {}
        self.lamda = lamda

    def create_state(self, index, weight):
        return (_zeros(weight) if self.momentum != 0.0 else None, weight.copy())

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        g = _python_clip(g * self.rescale_grad, self.clip_gradient)
        mom, previous = state
        step = -lr * (g + wd * w + self.lamda * g * g * (w - previous._data))
        if mom is not None:
            mom._data[...] = self.momentum * mom._data + step
            step = mom._data
        previous._data[...] = w
        w += step


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics: ``w += -lr/2*(g + wd*w) + N(0, sqrt(lr))``.
    The noise is mx.random.normal's (seeded by ``mx.random.seed``, as MXNet's)."""

    def create_state(self, index, weight):
        return None

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        g = _python_clip(g * self.rescale_grad, self.clip_gradient)
        w += -lr / 2 * (g + wd * w)
        from ..random import normal  # lazy: start-up time (the sampling front end is only needed here)
        w += normal(0, math.sqrt(lr), shape=w.shape, dtype=np.dtype(w.dtype).name).asnumpy()


@register
class Adam(Optimizer):
    """Adam: ``g = clip(rescale*grad + wd*w)``, ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g²``,
    ``w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)``."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = lazy_update

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def update(self, index, weight, grad, state):
        device = device_updates.on_device(weight, grad, *state)
        if device is not None:
            _pair(weight, grad, touch_weight=False)
            self._update_count(index)
            t = self._index_update_count[index]
            lr = self._get_lr(index) * math.sqrt(1. - self.beta2 ** t) / (1. - self.beta1 ** t)
            return device_updates.adam(self, device, weight, grad, state[0], state[1], lr, self._get_wd(index))
        w, g, lr, wd = self._begin(index, weight, grad)
        t = self._index_update_count[index]
        p = functools.partial(_param, dtype=w.dtype)
        lr = p(lr * (math.sqrt(1. - self.beta2 ** t) / (1. - self.beta1 ** t)))
        beta1, beta2 = p(self.beta1), p(self.beta2)
        mean, var = state[0]._data, state[1]._data
        g = _kernel_clip(g * p(self.rescale_grad) + w * p(wd), self.clip_gradient)
        mean[...] = beta1 * mean + (1 - beta1) * g
        var[...] = beta2 * var + (1 - beta2) * g * g
        w -= lr * mean / (np.sqrt(var) + p(self.epsilon))


@register
class AdaGrad(Optimizer):
    """AdaGrad: ``history += g²``, ``w -= lr*(g/sqrt(history + eps) + wd*w)`` with ``g = clip(rescale*grad)``."""

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        return _zeros(weight, np.float32)

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        _same_dtype_state("AdaGrad", weight, state)
        history = state._data
        if isinstance(grad, RowSparseNDArray):
            # MXNet's _sparse_adagrad_update (AdagradDnsRspDnsKernel): the gradient's rows only, no wd
            if wd != 0:
                raise MXNetError("sparse adagrad_update does not support wd.")
            rows = grad._rows()
            g = _kernel_clip(g[rows] * self.rescale_grad, self.clip_gradient)
            history[rows] += g * g
            w[rows] -= lr * g / np.sqrt(history[rows] + self.float_stable_eps)
            touch(w)
            return
        g = _python_clip(g * self.rescale_grad, self.clip_gradient)
        history += g * g
        w[...] = w + (g / np.sqrt(history + self.float_stable_eps) + w * wd) * -lr


@register
class GroupAdaGrad(Optimizer):
    """AdaGrad with one accumulator per row of a 2-D weight (``mean(g², axis=1)``); no weight decay."""

    def __init__(self, eps=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        if len(weight.shape) != 2:
            raise ValueError("GroupAdaGrad needs 2-D weights, got shape %s" % (weight.shape,))
        return NDArray(np.zeros((weight.shape[0], 1), np.float32), weight.context)

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        if wd != 0:
            raise ValueError("Weight decay is not supported for GroupAdaGrad")
        _same_dtype_state("GroupAdaGrad", weight, state)
        g = _python_clip(g * self.rescale_grad, self.clip_gradient)
        history = state._data
        # dense: nd.mean(square(g), axis=1) (mshadow's Kahan-compensated sum, then / n); row_sparse gradients:
        # group_adagrad_update (a plain sum per row, then / n)
        history += _row_sums(g * g, compensated=not isinstance(grad, RowSparseNDArray)) / g.dtype.type(g.shape[1])
        w -= lr * g / np.sqrt(history + self.float_stable_eps)


@register
class RMSProp(Optimizer):
    """RMSProp: Tieleman & Hinton (``centered=False``, state n) or Graves (``centered=True``, state n, g, delta),
    with ``g = clip(rescale*grad + wd*w)``; weights are clipped into ``[-clip_weights, clip_weights]`` when set."""

    def __init__(self, learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.centered = centered
        self.epsilon = epsilon
        self.clip_weights = clip_weights

    def create_state(self, index, weight):
        if self.centered:
            return (_zeros(weight, np.float32), _zeros(weight, np.float32), _zeros(weight, np.float32))
        return (_zeros(weight, np.float32),)

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        _same_dtype_state("RMSProp", weight, state)
        p = functools.partial(_param, dtype=w.dtype)
        lr, gamma1, eps = p(lr), p(self.gamma1), p(self.epsilon)
        g = _kernel_clip(p(self.rescale_grad) * g + p(wd) * w, self.clip_gradient)
        n = state[0]._data
        if self.centered:       # (rmspropalex_update's kernel)
            mean, delta = state[1]._data, state[2]._data
            n[...] = (1 - gamma1) * g * g + gamma1 * n
            mean[...] = (1 - gamma1) * g + gamma1 * mean
            delta[...] = p(self.gamma2) * delta - lr * g / np.sqrt(n - mean * mean + eps)
            new = w + delta
        else:                   # (rmsprop_update's: g² first)
            n[...] = (1 - gamma1) * (g * g) + gamma1 * n
            new = w - lr * (g / np.sqrt(n + eps))
        w[...] = _kernel_clip(new, self.clip_weights)


@register
class AdaDelta(Optimizer):
    """AdaDelta: ``acc_g = rho*acc_g + (1-rho)*g²``, ``delta = sqrt(acc_delta+eps)/sqrt(acc_g+eps)*g``,
    ``acc_delta = rho*acc_delta + (1-rho)*delta²``, ``w -= delta + wd*w``. (MXNet also rescales the caller's
    gradient array in place; onnxsym leaves it untouched.)"""

    def __init__(self, rho=0.90, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def create_state(self, index, weight):
        return (_zeros(weight, np.float32), _zeros(weight, np.float32))

    def update(self, index, weight, grad, state):
        w, g = _pair(weight, grad)
        wd = self._get_wd(index)
        self._update_count(index)
        _same_dtype_state("AdaDelta", weight, state)
        g = _python_clip(g * self.rescale_grad, self.clip_gradient)
        acc_g, acc_delta = state[0]._data, state[1]._data
        acc_g[...] = self.rho * acc_g + (1. - self.rho) * g * g
        delta = np.sqrt(acc_delta + self.epsilon) / np.sqrt(acc_g + self.epsilon) * g
        acc_delta[...] = self.rho * acc_delta + (1. - self.rho) * delta * delta
        w[...] = w - (delta + wd * w)


@register
class Ftrl(Optimizer):
    """FTRL-proximal: state (z, n); ``w = (sign(z)*lamda1 - z) / ((beta + sqrt(n))/lr + wd)`` where |z| > lamda1."""

    def __init__(self, lamda1=0.01, learning_rate=0.1, beta=1, **kwargs):
        super().__init__(**kwargs)
        self.lamda1 = lamda1
        self.beta = beta
        self.lr = learning_rate

    def create_state(self, index, weight):
        return (_zeros(weight, np.float32), _zeros(weight, np.float32))

    def update(self, index, weight, grad, state):
        w, g = _pair(weight, grad)
        self._update_count(index)
        wd, lr = self._get_wd(index), self._get_lr(index)
        _same_dtype_state("Ftrl", weight, state)
        z, n = state[0]._data, state[1]._data
        g = _kernel_clip(self.rescale_grad * g, self.clip_gradient)
        z += g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / lr
        n += g * g
        w[...] = (np.sign(z) * self.lamda1 - z) / ((self.beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > self.lamda1)


@register
class Adamax(Optimizer):
    """AdaMax: ``m = b1*m + (1-b1)*g``, ``u = max(b2*u, |g|)``, ``w -= lr/(1-b1^t) * m/u``,
    ``g = clip(rescale*grad + wd*w)``."""

    def __init__(self, learning_rate=0.002, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        lr /= (1. - self.beta1 ** self._index_update_count[index])
        g = _python_clip(g * self.rescale_grad + wd * w, self.clip_gradient)
        m, u = state[0]._data, state[1]._data
        m[...] = self.beta1 * m + (1. - self.beta1) * g
        u[...] = np.maximum(self.beta2 * u, np.abs(g))
        w -= lr * m / u


@register
class Nadam(Optimizer):
    """Nesterov Adam with MXNet's warming momentum schedule (one ``m_schedule`` shared by all parameters)."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def update(self, index, weight, grad, state):
        w, g, lr, wd = self._begin(index, weight, grad)
        t = self._index_update_count[index]
        g = _python_clip(g * self.rescale_grad + wd * w, self.clip_gradient)
        momentum_t = self.beta1 * (1. - 0.5 * (pow(0.96, t * self.schedule_decay)))
        momentum_t_1 = self.beta1 * (1. - 0.5 * (pow(0.96, (t + 1) * self.schedule_decay)))
        self.m_schedule = self.m_schedule * momentum_t
        m_schedule_next = self.m_schedule * momentum_t_1
        m, v = state[0]._data, state[1]._data
        m[...] = self.beta1 * m + (1. - self.beta1) * g
        v[...] = self.beta2 * v + (1. - self.beta2) * g * g
        m_bar = (1. - momentum_t) * (g / (1. - self.m_schedule)) + momentum_t_1 * (m / (1. - m_schedule_next))
        w -= lr * m_bar / (np.sqrt(v / (1. - pow(self.beta2, t))) + self.epsilon)


@register
class Test(Optimizer):
    """MXNet's test optimizer: ``w += rescale*grad``, state = a copy of w."""

    def create_state(self, index, weight):
        return NDArray(np.zeros(weight.shape, np.float32), weight.context)

    def update(self, index, weight, grad, state):
        w, g = _pair(weight, grad)
        w += g * self.rescale_grad
        state._data[...] = w


class Updater:
    """Applies an optimizer to (index, grad, weight), creating each index's state on first use (kvstore's updater)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}
        self.aggregate_updates = optimizer.aggregate_num > 0

    def __call__(self, index, grad, weight):
        """Update `weight` in place; index, grad and weight may be lists of equal length."""
        if isinstance(index, (list, tuple)):
            indices, grads, weights = list(index), list(grad), list(weight)
        else:
            indices, grads, weights = [index], [grad], [weight]
        if weights:
            self.optimizer._set_current_context(weights[0].context.device_id)
        for i, idx in enumerate(indices):
            if isinstance(idx, bytes):
                indices[i] = idx = idx.decode("utf-8")
            if idx not in self.states:
                self.states[idx] = self.optimizer.create_state_multi_precision(idx, weights[i])
                self.states_synced[idx] = True
            elif not self.states_synced[idx]:
                self.states[idx] = self.sync_state_context(self.states[idx], weights[i].context)
                self.states_synced[idx] = True
        if not self.aggregate_updates:
            for i, w, g in zip(indices, weights, grads):
                self.optimizer.update_multi_precision(i, w, g, self.states[i])
            return
        by_dtype = {}
        for i, w, g in zip(indices, weights, grads):
            by_dtype.setdefault(w.dtype, []).append((i, w, g))
        size = self.optimizer.aggregate_num
        for group in by_dtype.values():
            for start in range(0, len(group), size):
                idx, w, g = zip(*group[start:start + size])
                self.optimizer.update_multi_precision(list(idx), list(w), list(g), [self.states[i] for i in idx])

    def sync_state_context(self, state, context):
        """The state with every NDArray moved to `context`."""
        if isinstance(state, NDArray):
            return state.as_in_context(context)
        if isinstance(state, (tuple, list)):
            synced = [self.sync_state_context(s, context) for s in state]
            return tuple(synced) if isinstance(state, tuple) else synced
        return state

    def set_states(self, states):
        """Restore states (and the optimizer, if it was dumped) from `get_states` bytes; pickles are refused,
        as is anything but the optimizer's own fields with their types (see `_updater_states`)."""
        self._set_states(states, "Updater.set_states")

    def get_states(self, dump_optimizer=False):
        """The states as bytes in onnxsym's format (a JSON header plus raw arrays; see `_updater_states`),
        with the optimizer's settings and counters too when `dump_optimizer`."""
        from ._updater_states import dump  # lazy: Updater.get_states is MXNet's API; the format reads Optimizer
        return dump(self.states, self.optimizer if dump_optimizer else None)

    def _load_file(self, fname, weights=None):
        """`set_states` from the file `fname` (Module/KVStore.load_optimizer_states), each state checked
        against its parameter in `weights` (index -> NDArray) when given; errors name the file."""
        with open(fname, "rb") as handle:
            blob = handle.read()
        self._set_states(blob, "optimizer states file %r" % (str(fname),), weights)

    def _set_states(self, blob, source, weights=None):
        from ._updater_states import check_against, load  # lazy: Updater.set_states, as get_states
        states, optimizer = load(blob, source)
        if weights is not None:
            check_against(states, optimizer or self.optimizer, weights, source)
        self.states = states
        if optimizer is not None:
            self.optimizer = optimizer
            self.aggregate_updates = optimizer.aggregate_num > 0
        self.states_synced = dict.fromkeys(self.states.keys(), False)


def get_updater(optimizer):
    """An `Updater` for `optimizer`."""
    return Updater(optimizer)
