"""BaseModule: the training loop of MXNet 1.9.1's python/mxnet/module/base_module.py, built from small steps
(bind, init_params, init_optimizer, forward_backward, update, update_metric, score)."""
import logging
import time

import numpy as np

from ..base import MXNetError
from ..ndarray import save
from ..runtime.ndarray import NDArray
from . import metric as _metric
from .initializer import Uniform
from .io import NDArrayIter
from .model import BatchEndParam, param_dict, split_params

__all__ = ["BaseModule", "ModuleAssertionError"]


class ModuleAssertionError(MXNetError, AssertionError):
    """A misuse MXNet's module classes refuse with an `assert` (unknown meta, binding an empty chain, duplicate
    parameter names, ...): an MXNetError with a message, and the AssertionError MXNet raises, for callers that
    catch that."""


def _as_list(obj):
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


class BaseModule:
    """The interface every module implements, and fit/score/predict on top of it."""

    def __init__(self, logger=logging):
        self.logger = logger
        self.binded = False
        self.for_training = False
        self.inputs_need_grad = False
        self.params_initialized = False
        self.optimizer_initialized = False
        self._symbol = None
        self._total_exec_bytes = 0

    # ----- high-level API -----
    def forward_backward(self, data_batch):
        """A forward pass in training mode, then the backward pass."""
        self.forward(data_batch, is_train=True)
        self.backward()

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None, score_end_callback=None,
              reset=True, epoch=0, sparse_row_id_fn=None):
        """Run the evaluation data through the module and return eval_metric.get_name_value()."""
        if not (self.binded and self.params_initialized):
            raise MXNetError("score() needs a bound module with initialized parameters (call bind and init_params)")
        if reset:
            eval_data.reset()
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        eval_metric.reset()
        actual_num_batch = 0
        # (with a callback, which sees the module between batches, each batch is copied in as forward() does)
        batches = self._inference_batches(eval_data, num_batch, sparse_row_id_fn, batch_end_callback is None)
        try:
            for nbatch, eval_batch in batches:
                self.update_metric(eval_metric, eval_batch.label)
                if batch_end_callback is not None:
                    params = BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals())
                    for callback in _as_list(batch_end_callback):
                        callback(params)
                actual_num_batch += 1
        finally:
            batches.close()
        if score_end_callback:
            params = BatchEndParam(epoch=epoch, nbatch=actual_num_batch, eval_metric=eval_metric, locals=locals())
            for callback in _as_list(score_end_callback):
                callback(params)
        return eval_metric.get_name_value()

    def iter_predict(self, eval_data, num_batch=None, reset=True, sparse_row_id_fn=None):
        """Yield (outputs without padding, batch index, batch) for each batch of eval_data."""
        return self._predicted(eval_data, num_batch, reset, sparse_row_id_fn, borrow=False)

    def _predicted(self, eval_data, num_batch, reset, sparse_row_id_fn, borrow):
        if not (self.binded and self.params_initialized):
            raise MXNetError("iter_predict() needs a bound module with initialized parameters")
        if reset:
            eval_data.reset()
        batches = self._inference_batches(eval_data, num_batch, sparse_row_id_fn, borrow)
        try:
            for nbatch, eval_batch in batches:
                pad = eval_batch.pad or 0
                outputs = self.get_outputs()
                if pad:
                    outputs = [out[0:out.shape[0] - pad] for out in outputs]
                yield outputs, nbatch, eval_batch
        finally:
            batches.close()

    def _inference_batches(self, eval_data, num_batch, sparse_row_id_fn, borrow):
        """(batch index, batch) of eval_data after each one's inference forward; borrow=True (a caller that shows
        no batch to anyone before the loop ends) runs them where the iterator holds them (_forward_borrowing)."""
        try:
            for nbatch, eval_batch in enumerate(eval_data):
                if num_batch is not None and nbatch == num_batch:
                    break
                self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
                if not (borrow and self._forward_borrowing(eval_batch)):
                    self.forward(eval_batch, is_train=False)
                yield nbatch, eval_batch
        finally:
            if borrow:
                self._end_borrowing()

    def _forward_borrowing(self, data_batch):
        """An inference forward of `data_batch` reading its arrays where they lie, leaving the module's inputs as
        they were until _end_borrowing; False (nothing run) where a module cannot: the caller runs forward()."""
        return False

    def _end_borrowing(self):
        """The module's inputs take the last batch _forward_borrowing ran (as forward() would have left them)."""

    def predict(self, eval_data, num_batch=None, merge_batches=True, reset=True, always_output_list=False,
                sparse_row_id_fn=None):
        """Outputs for all of eval_data (padding removed), merged across batches unless merge_batches=False."""
        if isinstance(eval_data, (np.ndarray, NDArray)):
            data = eval_data.asnumpy() if isinstance(eval_data, NDArray) else eval_data
            eval_data = NDArrayIter(data, batch_size=self.data_shapes[0].shape[0], last_batch_handle="pad")
        output_list = []        # each batch's outputs, copied once out of the executor's buffers
        for outputs, _, _ in self._predicted(eval_data, num_batch, reset, sparse_row_id_fn, borrow=True):
            output_list.append([o.asnumpy() for o in outputs])
        if not output_list:
            return output_list
        if merge_batches:
            num_outputs = len(output_list[0])
            for out in output_list:
                if len(out) != num_outputs:
                    raise MXNetError("Cannot merge batches, as num of outputs is not the same in mini-batches. "
                                     "Maybe bucketing is used?")
            merged = [NDArray(np.concatenate([out[i] for out in output_list])) for i in range(num_outputs)]
            if num_outputs == 1 and not always_output_list:
                return merged[0]
            return merged
        return [[NDArray(o) for o in out] for out in output_list]

    def fit(self, train_data, eval_data=None, eval_metric="acc", epoch_end_callback=None, batch_end_callback=None,
            kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),), eval_end_callback=None,
            eval_batch_end_callback=None, initializer=Uniform(0.01), arg_params=None, aux_params=None,
            allow_missing=False, force_rebind=False, force_init=False, begin_epoch=0, num_epoch=None,
            validation_metric=None, monitor=None, sparse_row_id_fn=None):
        """Train the module's parameters on train_data for num_epoch epochs (MXNet's signature and logs)."""
        if num_epoch is None:
            raise AssertionError("please specify number of epochs")
        self.bind(data_shapes=train_data.provide_data, label_shapes=train_data.provide_label, for_training=True,
                  force_rebind=force_rebind)
        if monitor is not None:
            self.install_monitor(monitor)
        self.init_params(initializer=initializer, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init)
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params)
        if validation_metric is None:
            validation_metric = eval_metric
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        for epoch in range(begin_epoch, num_epoch):
            tic = time.time()
            eval_metric.reset()
            eval_name_vals = self._train_epoch(train_data, eval_metric, epoch, batch_end_callback, monitor,
                                               sparse_row_id_fn)
            for name, val in eval_name_vals:
                self.logger.info("Epoch[%d] Train-%s=%f", epoch, name, val)
            self.logger.info("Epoch[%d] Time cost=%.3f", epoch, time.time() - tic)
            arg_params_, aux_params_ = self.get_params()
            self.set_params(arg_params_, aux_params_)
            if epoch_end_callback is not None:
                for callback in _as_list(epoch_end_callback):
                    callback(epoch, self.symbol, arg_params_, aux_params_)
            if eval_data:
                res = self.score(eval_data, validation_metric, score_end_callback=eval_end_callback,
                                 batch_end_callback=eval_batch_end_callback, epoch=epoch)
                for name, val in res:
                    self.logger.info("Epoch[%d] Validation-%s=%f", epoch, name, val)
            train_data.reset()

    def _train_epoch(self, train_data, eval_metric, epoch, batch_end_callback, monitor, sparse_row_id_fn):
        """One pass over train_data; returns the epoch's global metric values."""
        nbatch = 0
        data_iter = iter(train_data)
        end_of_batch = False
        next_data_batch = next(data_iter)
        eval_name_vals = []
        while not end_of_batch:
            data_batch = next_data_batch
            if monitor is not None:
                monitor.tic()
            self.forward_backward(data_batch)
            self.update()
            self.update_metric(eval_metric, data_batch.label)
            try:
                next_data_batch = next(data_iter)
                self.prepare(next_data_batch, sparse_row_id_fn=sparse_row_id_fn)
            except StopIteration:
                end_of_batch = True
            if monitor is not None:
                monitor.toc_print()
            if end_of_batch:
                eval_name_vals = eval_metric.get_global_name_value()
            if batch_end_callback is not None:
                params = BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals())
                for callback in _as_list(batch_end_callback):
                    callback(params)
            nbatch += 1
        return eval_name_vals

    # ----- symbol information and defaults -----
    @property
    def symbol(self):
        return self._symbol

    def prepare(self, data_batch, sparse_row_id_fn=None):
        """Nothing to prepare for dense CPU/GPU arrays (MXNet uses it for sparse row pulls)."""

    def install_monitor(self, mon):
        raise MXNetError("install_monitor is not supported by onnxsym modules")

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        """Assign parameter and auxiliary state values (MXNet's BaseModule.set_params: init_params without an
        initializer)."""
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)

    def save_params(self, fname):
        """Save the parameters (`arg:`/`aux:` names) in MXNet's .params format."""
        save(fname, param_dict(*self.get_params()))

    def export_onnx(self, onnx_file_path="model.onnx", **kwargs):
        """Write the bound module (its symbol, current parameters, and the data shapes and dtypes it is bound
        with) as an ONNX model via mx.onnx.export_model; kwargs go there (dynamic, verbose, ...)."""
        if not (self.binded and self.params_initialized):
            raise MXNetError("export_onnx() needs a bound module with initialized parameters")
        from ..converters.onnx_export import data_inputs  # lazy: export_onnx reaches the exporter, a higher layer
        arg_params, aux_params = self.get_params()
        params = {**arg_params, **aux_params}
        descs = {d.name: d for d in list(self.data_shapes) + list(self.label_shapes or [])}
        names = data_inputs(self.symbol, params)
        missing = [n for n in names if n not in descs]
        if missing:
            raise MXNetError("export_onnx: the module is not bound with shapes for the inputs %s" % missing)
        return self.symbol.export_onnx(params, [descs[n].shape for n in names],
                                       [np.dtype(descs[n].dtype) for n in names], onnx_file_path, **kwargs)

    def load_params(self, fname):
        """Load parameters saved by save_params (or MXNet)."""
        self.set_params(*split_params(fname))
