"""`mx.model.FeedForward`: MXNet 1.9.1's legacy estimator (python/mxnet/model.py) on top of `mx.mod.Module`.

fit initializes the parameters as FeedForward does (each argument that is not an input, in the symbol's order, from
arg_params where given, else `initializer(name, array)`), builds the optimizer as FeedForward does (rescale_grad =
1/batch_size, the extra constructor keywords, `sym` and `param_idx2name`), and trains with Module.fit, the one
training loop. predict and score run an inference Module bound to the iterator's data shapes and loaded with the
current `arg_params`/`aux_params`.

Where FeedForward and Module.fit differ, FeedForward's behaviour is kept: the training iterator is reset before
the first epoch and as soon as it runs out (not after the evaluation), the evaluation data before and after each
pass (the resets of a shuffling iterator draw from numpy's RNG, so their order decides the batches);
`epoch_size` batches make an epoch, the iterator carrying on (and restarting when it runs out) across epochs
rather than being rewound; batch_end_callback sees
`nbatch` counted from 1; epoch_end_callback gets the model's own `arg_params`/`aux_params` dicts, updated in
place. Differences that remain: Module.fit also logs the training metric at each epoch end ("Train-..."), and
with several contexts the gradients are summed and one update applied (Module's local kvstore), where FeedForward
without a kvstore updates each device's copy with its own gradient.
"""
import logging
import warnings

import numpy as np

from .. import ndarray as nd
from .. import symbol as sym
from ..base import MXNetError
from ..context import Context, cpu
from ..runtime.ndarray import NDArray
from . import metric as _metric
from . import optimizer as _optimizer
from .base_module import _as_list
from .bucketing_module import BucketingModule
from .callback import LogValidationMetricsCallback
from .initializer import Uniform
from .io import DataDesc, DataIter, NDArrayIter
from .model import BatchEndParam, load_checkpoint, save_checkpoint
from .module import Module

__all__ = ["FeedForward"]


def _check_arguments(symbol):
    """ValueError for an argument or auxiliary name used twice in `symbol` (MXNet's message)."""
    arg_names = symbol.list_arguments()
    seen = set()
    for name in arg_names:
        if name in seen:
            raise ValueError('Find duplicated argument name "%s", please make the weight name non-duplicated(using '
                             'name arguments), arguments are %s' % (name, str(arg_names)))
        seen.add(name)
    aux_names = symbol.list_auxiliary_states()
    seen = set()
    for name in aux_names:
        if name in seen:
            raise ValueError('Find duplicated auxiliary param name "%s", please make the weight name '
                             'non-duplicated(using name arguments), arguments are %s, auxiliary params are %s'
                             % (name, str(arg_names), str(aux_names)))
        seen.add(name)


def _shifted(callbacks):
    """batch_end_callback as FeedForward calls it: nbatch counts from 1 (Module.fit counts from 0)."""
    if callbacks is None:
        return None

    def _callback(param):
        shifted = BatchEndParam(epoch=param.epoch, nbatch=param.nbatch + 1, eval_metric=param.eval_metric,
                                locals=param.locals)
        for callback in _as_list(callbacks):
            callback(shifted)
    return _callback


class _Passes(DataIter):
    """`source` driven as FeedForward's loops drive their iterators, for Module.fit and Module.score to use.

    For training (`epoch_size` given or not): the source is reset as soon as it runs out (before the evaluation,
    where Module.fit would reset it after), an epoch of `epoch_size` batches carries on through the source and
    restarts it when it runs out, and reset() only starts counting a new epoch. For evaluation (`evaluation=True`):
    reset() resets the source, and so does running out (FeedForward resets its eval data before and after each
    pass). The order of resets matters: each reset of a shuffling NDArrayIter draws from numpy's RNG."""

    def __init__(self, source, epoch_size=None, evaluation=False):
        super().__init__(source.batch_size)
        self.source, self.epoch_size, self.evaluation = source, epoch_size, evaluation
        self.count = 0
        self.provide_data = source.provide_data
        self.provide_label = source.provide_label
        if hasattr(source, "default_bucket_key"):
            self.default_bucket_key = source.default_bucket_key

    def reset(self):
        self.count = 0
        if self.evaluation:
            self.source.reset()

    def next(self):
        if self.epoch_size is not None and self.count >= self.epoch_size:
            raise StopIteration
        try:
            batch = self.source.next()
        except StopIteration:
            logging.info("Resetting Data Iterator")
            self.source.reset()
            if self.epoch_size is None or self.evaluation:
                raise
            batch = self.source.next()
        self.count += 1
        return batch


class FeedForward:
    """Model class of MXNet for training and predicting feedforward nets (deprecated there for mx.mod.Module).

    Parameters
    ----------
    symbol : Symbol, or a callable bucket_key -> Symbol (then fit uses the iterator's default_bucket_key)
    ctx : Context or list of Context (default cpu())
    num_epoch : int, the epoch to stop before
    epoch_size : int, batches per epoch (default: the whole iterator)
    optimizer : str or Optimizer
    initializer : called as initializer(name, array) for parameters not in arg_params
    numpy_batch_size : int, the batch size used for numpy / NDArray inputs
    arg_params, aux_params : dict of str to NDArray
    allow_extra_params : bool, drop parameters the symbol does not use instead of refusing them
    begin_epoch : int
    kwargs : passed to the optimizer (learning_rate, momentum, wd, ...)

    >>> model = mx.model.FeedForward(softmax, num_epoch=10, learning_rate=0.1, numpy_batch_size=32)
    >>> model.fit(X, y)
    >>> prob = model.predict(X_test)
    """

    def __init__(self, symbol, ctx=None, num_epoch=None, epoch_size=None, optimizer="sgd", initializer=Uniform(0.01),
                 numpy_batch_size=128, arg_params=None, aux_params=None, allow_extra_params=False, begin_epoch=0,
                 **kwargs):
        warnings.warn("mxnet.model.FeedForward has been deprecated. Please use mxnet.mod.Module instead.",
                      DeprecationWarning, stacklevel=2)
        if isinstance(symbol, sym.Symbol):
            self.symbol, self.sym_gen = symbol, None
        elif callable(symbol):
            self.symbol, self.sym_gen = None, symbol
        else:
            raise TypeError("FeedForward needs a Symbol or a callable bucket_key -> Symbol, got %s"
                            % type(symbol).__name__)
        self.arg_params = arg_params
        self.aux_params = aux_params
        self.allow_extra_params = allow_extra_params
        self.argument_checked = False
        if self.sym_gen is None:
            self._check_arguments()
        if ctx is None:
            ctx = [cpu()]
        elif isinstance(ctx, Context):
            ctx = [ctx]
        self.ctx = ctx
        self.num_epoch = num_epoch
        self.epoch_size = epoch_size
        self.kwargs = kwargs.copy()
        self.optimizer = optimizer
        self.initializer = initializer
        self.numpy_batch_size = numpy_batch_size
        self.begin_epoch = begin_epoch
        self._pred_module = None
        self._pred_key = None

    def _check_arguments(self):
        """Refuse duplicated argument names; with allow_extra_params, drop parameters the symbol lacks."""
        if self.argument_checked:
            return
        self.argument_checked = True
        _check_arguments(self.symbol)
        if self.allow_extra_params:
            if self.arg_params:
                names = set(self.symbol.list_arguments())
                self.arg_params = {k: v for k, v in self.arg_params.items() if k in names}
            if self.aux_params:
                names = set(self.symbol.list_auxiliary_states())
                self.aux_params = {k: v for k, v in self.aux_params.items() if k in names}

    @staticmethod
    def _is_data_arg(name):
        """Whether `name` looks like a data argument (ends with 'data' or 'label')."""
        return name.endswith("data") or name.endswith("label")

    def _init_params(self, inputs, overwrite=False):
        """Make every parameter and auxiliary state (shapes and dtypes inferred from `inputs`): from arg_params /
        aux_params where given (unless overwrite), else with the initializer. Returns (arg_names, param_names,
        aux_names)."""
        inputs = [x if isinstance(x, DataDesc) else DataDesc(*x) for x in inputs]
        input_shapes = {item.name: item.shape for item in inputs}
        arg_shapes, _, aux_shapes = self.symbol.infer_shape(**input_shapes)
        if arg_shapes is None:
            raise MXNetError("FeedForward: the shapes of the parameters cannot be inferred from the inputs %s"
                             % input_shapes)
        arg_dtypes, _, aux_dtypes = self.symbol.infer_type(**{item.name: item.dtype for item in inputs})
        if arg_dtypes is None:
            raise MXNetError("FeedForward: the dtypes of the parameters cannot be inferred from the inputs")
        arg_names = self.symbol.list_arguments()
        param_names = [name for name in arg_names if name not in input_shapes]
        aux_names = self.symbol.list_auxiliary_states()
        arg_params = {name: nd.zeros(shape=shape, dtype=dtype)
                      for name, shape, dtype in zip(arg_names, arg_shapes, arg_dtypes) if name in param_names}
        aux_params = {name: nd.zeros(shape=shape, dtype=dtype)
                      for name, shape, dtype in zip(aux_names, aux_shapes, aux_dtypes)}
        for given, made in ((self.arg_params, arg_params), (self.aux_params, aux_params)):
            for name, array in made.items():
                if given and name in given and not overwrite:
                    if tuple(given[name].shape) != tuple(array.shape):
                        raise MXNetError("FeedForward: parameter '%s' has shape %s, the symbol needs %s"
                                         % (name, tuple(given[name].shape), tuple(array.shape)))
                    array[:] = given[name]
                else:
                    self.initializer(name, array)
        self.arg_params, self.aux_params = arg_params, aux_params
        return arg_names, list(param_names), aux_names

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pred_module"], state["_pred_key"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _init_iter(self, X, y, is_train):
        """A DataIter for X (numpy arrays or NDArrays wrapped in an NDArrayIter: shuffled, the last batch rolled
        over, for training)."""
        if isinstance(X, (np.ndarray, NDArray)):
            if y is None:
                if is_train:
                    raise ValueError("y must be specified when X is numpy.ndarray")
                y = np.zeros(X.shape[0])
            if not isinstance(y, (np.ndarray, NDArray)):
                raise TypeError("y must be ndarray when X is numpy.ndarray")
            if X.shape[0] != y.shape[0]:
                raise ValueError("The numbers of data points and labels not equal")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.flatten()
            if y.ndim != 1:
                raise ValueError("Label must be 1D or 2D (with 2nd dimension being 1)")
            batch_size = min(X.shape[0], self.numpy_batch_size)
            if is_train:
                return NDArrayIter(X, y, batch_size, shuffle=True, last_batch_handle="roll_over")
            return NDArrayIter(X, y, batch_size, shuffle=False)
        if not isinstance(X, DataIter):
            raise TypeError("X must be DataIter, NDArray or numpy.ndarray")
        return X

    def _init_eval_iter(self, eval_data):
        """A DataIter for eval_data: a DataIter, or a (data, label) pair of arrays or lists."""
        if eval_data is None:
            return eval_data
        if isinstance(eval_data, (tuple, list)) and len(eval_data) == 2:
            if eval_data[0] is None:
                raise ValueError("Eval data is NONE")
            if eval_data[1] is None and isinstance(eval_data[0], DataIter):
                return eval_data[0]
            data = np.array(eval_data[0]) if isinstance(eval_data[0], list) else eval_data[0]
            label = np.array(eval_data[1]) if isinstance(eval_data[1], list) else eval_data[1]
            return self._init_iter(data, label, is_train=True)
        if not isinstance(eval_data, DataIter):
            raise TypeError("Eval data must be DataIter, or NDArray/numpy.ndarray/list pair (i.e. tuple/list of "
                            "length 2)")
        return eval_data

    # ----- inference -----
    def _predictor(self, data_iter):
        """An inference Module bound to data_iter's data shapes (cached while they stay the same), loaded with the
        current parameters."""
        if self.arg_params is None:
            raise MXNetError("FeedForward has no parameters to predict with: fit it first, or pass arg_params "
                             "(FeedForward.load gives a fitted model)")
        descs = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in data_iter.provide_data]
        key = tuple((d.name, tuple(d.shape), np.dtype(d.dtype).str) for d in descs)
        if self._pred_module is None or self._pred_key != key:
            data_names = [d.name for d in descs]
            known = set(data_names) | set(self.arg_params) | set(self.aux_params or {})
            # arguments that are neither data nor parameters are labels: unused, their shapes inferred
            label_names = [name for name in self.symbol.list_arguments() if name not in known]
            module = Module(self.symbol, data_names, label_names, context=self.ctx[0])
            module.bind(descs, None, for_training=False)
            self._pred_module, self._pred_key = module, key
        self._pred_module.set_params(self.arg_params, self.aux_params or {})
        return self._pred_module

    def predict(self, X, num_batch=None, return_data=False, reset=True):
        """The outputs for X as numpy arrays (one array, or a list for several outputs; padding removed), on the
        first context; with return_data also (data, label) as the iterator gave them."""
        X = self._init_iter(X, None, is_train=False)
        if reset:
            X.reset()
        module = self._predictor(X)
        output_list = [[] for _ in module.output_names]
        data_list = [[] for _ in X.provide_data]
        label_list = [[] for _ in X.provide_label or []]
        count = 0
        for batch in X:
            module.forward(batch, is_train=False)
            real_size = X.batch_size - (batch.pad or 0)
            for outs, out in zip(output_list, module.get_outputs()):
                outs.append(out[0:real_size].asnumpy())
            if return_data:
                for parts, array in zip(data_list, batch.data):
                    parts.append(array[0:real_size].asnumpy())
                for parts, array in zip(label_list, batch.label or []):
                    parts.append(array[0:real_size].asnumpy())
            count += 1
            if num_batch is not None and count == num_batch:
                break
        if not count:
            raise MXNetError("FeedForward.predict: the iterator gave no batch")
        outputs = [np.concatenate(x) for x in output_list]
        if len(outputs) == 1:
            outputs = outputs[0]
        if not return_data:
            return outputs
        data = [np.concatenate(x) for x in data_list]
        label = [np.concatenate(x) for x in label_list if x]
        return outputs, data[0] if len(data) == 1 else data, label[0] if len(label) == 1 else label

    def score(self, X, eval_metric="acc", num_batch=None, batch_end_callback=None, reset=True):
        """The value of eval_metric over X (the metric is updated with each batch's labels and outputs, padding
        included, as MXNet does; a given metric object is not reset first)."""
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        X = self._init_iter(X, None, is_train=False)
        if reset:
            X.reset()
        module = self._predictor(X)
        for index, batch in enumerate(X):
            if num_batch is not None and index == num_batch:
                break
            module.forward(batch, is_train=False)
            eval_metric.update(batch.label, module.get_outputs())
            if batch_end_callback is not None:
                params = BatchEndParam(epoch=0, nbatch=index, eval_metric=eval_metric, locals=locals())
                for callback in _as_list(batch_end_callback):
                    callback(params)
        return eval_metric.get()[1]

    # ----- training -----
    def fit(self, X, y=None, eval_data=None, eval_metric="acc", epoch_end_callback=None, batch_end_callback=None,
            kvstore="local", logger=None, work_load_list=None, monitor=None,
            eval_end_callback=LogValidationMetricsCallback(), eval_batch_end_callback=None):
        """Train on X (a DataIter, or numpy arrays / NDArrays with labels y) from begin_epoch to num_epoch;
        eval_data (a DataIter or a (data, label) pair) is scored after each epoch."""
        data = self._init_iter(X, y, is_train=True)
        eval_data = self._init_eval_iter(eval_data)
        if self.sym_gen:
            self.symbol = self.sym_gen(data.default_bucket_key)
            self._check_arguments()
        self.kwargs["sym"] = self.symbol
        _, param_names, _ = self._init_params(list(data.provide_data) + list(data.provide_label or []))
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        # one update per parameter (Module sums the devices' gradients first): index = position in param_names
        param_idx2name = dict(enumerate(param_names))
        self.kwargs["param_idx2name"] = param_idx2name
        if isinstance(self.optimizer, str):
            optimizer = _optimizer.create(self.optimizer, rescale_grad=1.0 / data.batch_size, **self.kwargs)
        elif isinstance(self.optimizer, _optimizer.Optimizer):
            optimizer = self.optimizer
            if not optimizer.idx2name:
                optimizer.idx2name = param_idx2name.copy()
        else:
            raise TypeError("optimizer must be a name or an mx.optimizer.Optimizer, got %r" % (self.optimizer,))
        module = self._training_module(data, logger or logging, work_load_list)
        data.reset()        # FeedForward rewinds the iterator before training
        if eval_data is not None:
            eval_data = _Passes(eval_data, evaluation=True)
        module.fit(_Passes(data, self.epoch_size), eval_data=eval_data, eval_metric=eval_metric,
                   epoch_end_callback=self._epoch_end(epoch_end_callback),
                   batch_end_callback=_shifted(batch_end_callback), kvstore=kvstore, optimizer=optimizer,
                   eval_end_callback=eval_end_callback, eval_batch_end_callback=eval_batch_end_callback,
                   initializer=None, arg_params=self.arg_params, aux_params=self.aux_params,
                   begin_epoch=self.begin_epoch, num_epoch=self.num_epoch, monitor=monitor)

    def _training_module(self, data, logger, work_load_list):
        data_names = [d[0] for d in data.provide_data]
        label_names = [d[0] for d in data.provide_label or []]
        if self.sym_gen is None:
            return Module(self.symbol, data_names, label_names, logger=logger, context=self.ctx,
                          work_load_list=work_load_list)
        sym_gen = self.sym_gen
        return BucketingModule(lambda key: (sym_gen(key), data_names, label_names),
                               default_bucket_key=data.default_bucket_key, logger=logger, context=self.ctx)

    def _epoch_end(self, callbacks):
        """Module.fit's epoch end: copy the trained parameters into arg_params/aux_params (in place), then call
        FeedForward's epoch_end_callback with them."""
        def _callback(epoch, symbol, arg_params, aux_params):
            for mine, trained in ((self.arg_params, arg_params), (self.aux_params, aux_params)):
                for name, value in trained.items():
                    mine[name][:] = value
            for callback in _as_list(callbacks) if callbacks is not None else ():
                callback(epoch, self.symbol, self.arg_params, self.aux_params)
        return _callback

    # ----- checkpoints -----
    def save(self, prefix, epoch=None, remove_amp_cast=True):
        """Write prefix-symbol.json and prefix-%04d.params (epoch defaults to num_epoch)."""
        if epoch is None:
            epoch = self.num_epoch
        if epoch is None:
            raise MXNetError("FeedForward.save needs an epoch (the model has no num_epoch)")
        save_checkpoint(prefix, epoch, self.symbol, self.arg_params, self.aux_params,
                        remove_amp_cast=remove_amp_cast)

    @staticmethod
    def load(prefix, epoch, ctx=None, **kwargs):
        """A FeedForward of the checkpoint prefix/epoch (begin_epoch = epoch); kwargs go to the constructor."""
        symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
        return FeedForward(symbol, ctx=ctx, arg_params=arg_params, aux_params=aux_params, begin_epoch=epoch,
                           **kwargs)

    @staticmethod
    def create(symbol, X, y=None, ctx=None, num_epoch=None, epoch_size=None, optimizer="sgd",
               initializer=Uniform(0.01), eval_data=None, eval_metric="acc", epoch_end_callback=None,
               batch_end_callback=None, kvstore="local", logger=None, work_load_list=None,
               eval_end_callback=LogValidationMetricsCallback(), eval_batch_end_callback=None, **kwargs):
        """Make a FeedForward and fit it (kwargs go to the constructor, hence the optimizer); returns it."""
        model = FeedForward(symbol, ctx=ctx, num_epoch=num_epoch, epoch_size=epoch_size, optimizer=optimizer,
                            initializer=initializer, **kwargs)
        model.fit(X, y, eval_data=eval_data, eval_metric=eval_metric, epoch_end_callback=epoch_end_callback,
                  batch_end_callback=batch_end_callback, kvstore=kvstore, logger=logger,
                  work_load_list=work_load_list, eval_end_callback=eval_end_callback,
                  eval_batch_end_callback=eval_batch_end_callback)
        return model
