"""`mx.mod.BucketingModule`: one Module per bucket key (from `sym_gen`), all sharing parameters and optimizer."""
import logging

import numpy as np

from .. import symbol as _symbol
from ..base import MXNetError
from ..context import cpu
from ..name import NameManager
from ..ndarray import load as _nd_load, save as _nd_save
from ..runtime.ndarray import NDArray
from .base_module import BaseModule
from .initializer import Uniform
from .model import load_params
from .module import Module

__all__ = ["BucketingModule"]


class BucketingModule(BaseModule):
    """Modules for variable-length inputs: `sym_gen(bucket_key)` -> (symbol, data_names, label_names)."""

    def __init__(self, sym_gen, default_bucket_key=None, logger=logging, context=None, work_load_list=None,
                 fixed_param_names=None, state_names=None, group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        if default_bucket_key is None:
            raise AssertionError("default_bucket_key must be given")
        self._default_bucket_key = default_bucket_key
        self._sym_gen = sym_gen
        self._context = context if context is not None else cpu()
        self._work_load_list = work_load_list
        self._group2ctxs = group2ctxs
        self._fixed_param_names = fixed_param_names
        self._state_names = state_names
        self._compression_params = compression_params
        self._buckets = {}
        self._curr_module = None
        self._curr_bucket_key = None
        self._grad_req = "write"
        self._params_dirty = False
        symbol, data_names, label_names = self._call_sym_gen(default_bucket_key)
        self._default_names = (list(data_names), list(label_names or []), symbol.list_outputs())

    def _call_sym_gen(self, key):
        """sym_gen(key) with fresh auto-naming counters (as MXNet: every bucket names its nodes alike)."""
        with NameManager():
            return self._sym_gen(key)

    def _module(self, key, symbol=None):
        generated, data_names, label_names = self._call_sym_gen(key)
        return Module(generated if symbol is None else symbol, data_names, label_names, logger=self.logger,
                      context=self._context, work_load_list=self._work_load_list,
                      fixed_param_names=self._fixed_param_names, state_names=self._state_names,
                      group2ctxs=self._group2ctxs, compression_params=self._compression_params)

    @property
    def data_names(self):
        return self._curr_module.data_names if self.binded else self._default_names[0]

    @property
    def output_names(self):
        return self._curr_module.output_names if self.binded else self._default_names[2]

    @property
    def data_shapes(self):
        return self._curr_module.data_shapes

    @property
    def label_shapes(self):
        return self._curr_module.label_shapes

    @property
    def output_shapes(self):
        return self._curr_module.output_shapes

    @property
    def symbol(self):
        return self._curr_module.symbol

    def get_params(self):
        self._curr_module._params_dirty = self._params_dirty
        params = self._curr_module.get_params()
        self._params_dirty = False
        return params

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        if self.params_initialized and not force_init:
            return
        if not self.binded:
            raise MXNetError("call bind before initializing the parameters")
        self._curr_module.init_params(initializer=initializer, arg_params=arg_params, aux_params=aux_params,
                                      allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)
        self._params_dirty = False
        self.params_initialized = True

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        self._curr_module.set_params(arg_params, aux_params, allow_missing=allow_missing, force_init=force_init,
                                     allow_extra=allow_extra)
        self._params_dirty = True
        self.params_initialized = True

    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req="write"):
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        self.for_training, self.inputs_need_grad, self._grad_req = for_training, inputs_need_grad, grad_req
        loaded = self._buckets.get(self._default_bucket_key)     # (BucketingModule.load: parameters set)
        self._buckets = {}
        module = self._module(self._default_bucket_key)
        module.bind(data_shapes, label_shapes, for_training, inputs_need_grad, force_rebind=False,
                    shared_module=None, grad_req=grad_req)
        self._curr_module, self._curr_bucket_key = module, self._default_bucket_key
        self._buckets[self._default_bucket_key] = module
        self.binded = True
        if loaded is not None and loaded.params_initialized:
            module.set_params(loaded._arg_params, loaded._aux_params)
            self.params_initialized = True

    def switch_bucket(self, bucket_key, data_shapes, label_shapes=None):
        """Make `bucket_key` current, binding a module for it (sharing parameters) the first time."""
        if not self.binded:
            raise MXNetError("call bind before switching bucket")
        if bucket_key not in self._buckets:
            module = self._module(bucket_key)
            module.bind(data_shapes, label_shapes, self._curr_module.for_training,
                        self._curr_module.inputs_need_grad, force_rebind=False,
                        shared_module=self._buckets[self._default_bucket_key], grad_req=self._grad_req)
            self._buckets[bucket_key] = module
        self._curr_module, self._curr_bucket_key = self._buckets[bucket_key], bucket_key

    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        self._curr_module.init_optimizer(kvstore, optimizer, optimizer_params, force_init=force_init)
        for module in self._buckets.values():
            if module is not self._curr_module:
                module.borrow_optimizer(self._curr_module)
        self.optimizer_initialized = True

    def prepare(self, data_batch, sparse_row_id_fn=None):
        original = self._curr_bucket_key
        self.switch_bucket(data_batch.bucket_key, data_batch.provide_data, data_batch.provide_label)
        self.switch_bucket(original, None, None)

    def forward(self, data_batch, is_train=None):
        if not (self.binded and self.params_initialized):
            raise MXNetError("forward() needs a bound module with initialized parameters")
        key = data_batch.bucket_key if data_batch.bucket_key is not None else self._default_bucket_key
        self.switch_bucket(key, data_batch.provide_data, data_batch.provide_label)
        self._curr_module.forward(data_batch, is_train=is_train)

    def backward(self, out_grads=None):
        self._curr_module.backward(out_grads=out_grads)

    def update(self):
        self._params_dirty = True
        self._curr_module.update()

    def get_outputs(self, merge_multi_context=True):
        return self._curr_module.get_outputs(merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        return self._curr_module.get_input_grads(merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        self._curr_module.update_metric(eval_metric, labels, pre_sliced)

    def save_checkpoint(self, prefix, epoch, remove_amp_cast=False):
        """prefix-%04d.params, a prefix-KEY-symbol.json per bucket and prefix.buckets (the keys), as MXNet."""
        if not self._buckets:
            raise MXNetError("Empty BucketingModule cannot be saved")
        self.save_params("%s-%04d.params" % (prefix, epoch))
        for key in self._buckets:
            symbol, _, _ = self._call_sym_gen(key)
            symbol.save("%s-%s-symbol.json" % (prefix, key), remove_amp_cast=remove_amp_cast)
        _nd_save("%s.buckets" % prefix, NDArray(np.array(list(self._buckets), np.int32)))

    @staticmethod
    def load(prefix, epoch, sym_gen=None, default_bucket_key=None, **kwargs):
        """A BucketingModule of a checkpoint save_checkpoint wrote (parameters set; call bind before use)."""
        if sym_gen is None:
            raise MXNetError("sym_gen is required for loading BucketingModule")
        if default_bucket_key is None:
            raise MXNetError("default_bucket_key is required for loading BucketingModule")
        keys = [int(k) for k in _nd_load("%s.buckets" % prefix)[0].asnumpy().astype(np.int32)]
        module = BucketingModule(sym_gen, default_bucket_key, **kwargs)
        for key in keys:
            module._buckets[key] = module._module(key, _symbol.load("%s-%s-symbol.json" % (prefix, key)))
        if default_bucket_key not in module._buckets:
            raise MXNetError("default_bucket_key %r is not among the saved buckets %s" % (default_bucket_key, keys))
        module._curr_module = module._buckets[default_bucket_key]
        args, auxs = load_params(prefix, epoch)
        module._curr_module._arg_params, module._curr_module._aux_params = args, auxs
        module._curr_module.params_initialized = True
        module.params_initialized = True
        return module
