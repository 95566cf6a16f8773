"""`mx.mod.SequentialModule`: modules chained so that each one's outputs are the next one's data, as MXNet 1.9.1's
python/mxnet/module/sequential_module.py.

Binding passes each module's output shapes on as the next one's data shapes (renamed to its data names with
`auto_wiring=True`) and binds every module but the first with inputs_need_grad, so that backward can hand each
module's input gradients to the one before it. Labels go to the modules added with `take_labels=True`; only those
update the metric.

Two differences from MXNet, both where MXNet fails by mistake: `bind` records `for_training` and
`inputs_need_grad` on the chain (MXNet leaves them False, so its chain's get_input_grads always fails an
assertion), and a batch handed to an auto-wired module names its data with that module's data names (MXNet keeps
the previous module's output names, which only matters when a module has to reshape for a smaller batch).
"""
import copy
import logging

from ..base import MXNetError
from .base_module import BaseModule, ModuleAssertionError
from .initializer import Uniform

__all__ = ["SequentialModule"]


class SequentialModule(BaseModule):
    """A container chaining modules: the outputs of one are the data of the next.

    >>> seq = mx.mod.SequentialModule()
    >>> seq.add(mx.mod.Module(features, label_names=[])).add(mx.mod.Module(head), take_labels=True,
    ...                                                       auto_wiring=True)
    """

    META_TAKE_LABELS = "take_labels"
    META_AUTO_WIRING = "auto_wiring"

    def __init__(self, logger=logging):
        super().__init__(logger=logger)
        self._modules = []
        self._metas = []
        self._label_shapes = None
        self._data_shapes = None
        self._meta_keys = {getattr(SequentialModule, x) for x in dir(SequentialModule) if x.startswith("META_")}

    def add(self, module, **kwargs):
        """Append `module` to the chain; kwargs are its meta (`take_labels`, `auto_wiring`). Returns self, so
        that calls chain. Adding resets the chain: bind, init_params and init_optimizer again."""
        for key in kwargs:
            if key not in self._meta_keys:
                raise ModuleAssertionError('Unknown meta "%s", a typo?' % key)
        self._modules.append(module)
        self._metas.append(kwargs)
        self.binded = False
        self.params_initialized = False
        self.optimizer_initialized = False
        return self

    def _takes_labels(self, index):
        return bool(self._metas[index].get(SequentialModule.META_TAKE_LABELS, False))

    def _check(self, condition, what):
        if not condition:
            raise ModuleAssertionError("SequentialModule: %s" % what)

    # ----- names and shapes -----
    @property
    def data_names(self):
        return self._modules[0].data_names if self._modules else []

    @property
    def output_names(self):
        return self._modules[-1].output_names if self._modules else []

    @property
    def data_shapes(self):
        self._check(self.binded, "call bind before asking for data_shapes")
        return self._modules[0].data_shapes

    @property
    def label_shapes(self):
        """The labels' (name, shape) pairs, or None when no module takes labels."""
        self._check(self.binded, "call bind before asking for label_shapes")
        return self._label_shapes

    @property
    def output_shapes(self):
        self._check(self.binded, "call bind before asking for output_shapes")
        return self._modules[-1].output_shapes

    # ----- parameters -----
    def get_params(self):
        """(arg_params, aux_params): every module's parameters in one pair of dicts."""
        self._check(self.binded and self.params_initialized, "get_params() needs bind and init_params first")
        arg_params, aux_params = {}, {}
        for module in self._modules:
            arg, aux = module.get_params()
            arg_params.update(arg)
            aux_params.update(aux)
        return arg_params, aux_params

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Initialize every module's parameters (each takes its own from arg_params/aux_params, which hold the
        whole chain's, and ignores the others as MXNet's modules do); parameter names must be unique across the
        chain."""
        if self.params_initialized and not force_init:
            return
        self._check(self.binded, "call bind before initializing the parameters")
        for module in self._modules:
            # (each module sees the other modules' parameters too: allow_extra, as MXNet's Module ignores them)
            module.init_params(initializer=initializer, arg_params=arg_params, aux_params=aux_params,
                               allow_missing=allow_missing, force_init=force_init, allow_extra=True)
        arg_layers, aux_layers = {}, {}
        for index, module in enumerate(self._modules):
            arg, aux = module.get_params()
            self._check_unique(arg_layers, arg, index)
            self._check_unique(aux_layers, aux, index)
        self.params_initialized = True

    def _check_unique(self, known, names, index):
        for name in names:
            if name in known:
                first = known[name]
                raise ModuleAssertionError(
                    'Duplicated parameter names: name "%s" in layer %d (%s) is already used in layer %d (%s).'
                    % (name, index, type(self._modules[index]), first, type(self._modules[first])))
            known[name] = index

    # ----- binding -----
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req="write"):
        """Bind every module: the first to data_shapes, each next one to the previous one's output shapes (with
        inputs_need_grad when training); label_shapes go to the modules that take labels."""
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if inputs_need_grad:
            self._check(for_training is True, "inputs_need_grad needs for_training=True")
        if shared_module is not None:
            raise ModuleAssertionError("Shared module is not supported")
        if not self._modules:
            raise ModuleAssertionError("Attempting to bind an empty SequentialModule")
        self.binded = True
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._label_shapes = label_shapes
        my_data_shapes = data_shapes
        any_labels = False
        for index, module in enumerate(self._modules):
            my_label_shapes = label_shapes if self._takes_labels(index) else None
            any_labels = any_labels or self._takes_labels(index)
            if self._metas[index].get(SequentialModule.META_AUTO_WIRING, False):
                names = module.data_names
                if len(names) != len(my_data_shapes):
                    raise ModuleAssertionError(
                        "auto_wiring: layer %d expects %d data inputs %s, the layer before gives %d outputs"
                        % (index, len(names), list(names), len(my_data_shapes)))
                my_data_shapes = [(name, desc[1]) for name, desc in zip(names, my_data_shapes)]
            module.bind(data_shapes=my_data_shapes, label_shapes=my_label_shapes, for_training=for_training,
                        inputs_need_grad=bool(inputs_need_grad or (for_training and index > 0)),
                        force_rebind=force_rebind, shared_module=None, grad_req=grad_req)
            my_data_shapes = module.output_shapes
        if not any_labels:
            self._label_shapes = None

    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        """Give every module its optimizer (each its own, made from the same arguments)."""
        self._check(self.binded and self.params_initialized, "init_optimizer() needs bind and init_params first")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        for module in self._modules:
            module.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params,
                                  force_init=force_init)
        self.optimizer_initialized = True

    # ----- computation -----
    def forward(self, data_batch, is_train=None):
        """Run the modules in order, each on the previous one's outputs (and the batch's labels)."""
        self._check(self.binded and self.params_initialized, "forward() needs bind and init_params first")
        data_batch = copy.copy(data_batch)      # keeps pad, bucket_key, ... of the caller's batch
        for index, module in enumerate(self._modules):
            module.forward(data_batch, is_train=is_train)
            if index + 1 == len(self._modules):
                break
            data_batch.data = module.get_outputs()
            if hasattr(data_batch, "provide_data"):
                names = [x[0] for x in module.output_shapes]
                if self._metas[index + 1].get(SequentialModule.META_AUTO_WIRING, False):
                    names = list(self._modules[index + 1].data_names)
                if len(names) != len(data_batch.data):
                    raise MXNetError("SequentialModule: layer %d gives %d outputs for %d names %s"
                                     % (index, len(data_batch.data), len(names), names))
                data_batch.provide_data = [(name, x.shape) for name, x in zip(names, data_batch.data)]

    def backward(self, out_grads=None):
        """Backward through the modules in reverse, each one's input gradients the output gradients of the one
        before it."""
        self._check(self.binded and self.params_initialized, "backward() needs bind and init_params first")
        for index in range(len(self._modules) - 1, -1, -1):
            module = self._modules[index]
            module.backward(out_grads=out_grads)
            if index == 0:
                break
            out_grads = module.get_input_grads()

    def update(self):
        """One optimizer step in every module."""
        self._check(self.binded and self.params_initialized and self.optimizer_initialized,
                    "update() needs bind, init_params and init_optimizer first")
        for module in self._modules:
            module.update()

    def get_outputs(self, merge_multi_context=True):
        """The last module's outputs."""
        self._check(self.binded and self.params_initialized, "get_outputs() needs bind and init_params first")
        return self._modules[-1].get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        """The gradients of the first module's data (bind with inputs_need_grad=True)."""
        self._check(self.binded and self.params_initialized and self.inputs_need_grad,
                    "get_input_grads() needs a chain bound with inputs_need_grad=True")
        return self._modules[0].get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """Update eval_metric with the outputs of every module that takes labels."""
        self._check(self.binded and self.params_initialized, "update_metric() needs bind and init_params first")
        for index, module in enumerate(self._modules):
            if self._takes_labels(index):
                module.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        """Install `mon` on every module."""
        self._check(self.binded, "install_monitor() needs bind first")
        for module in self._modules:
            module.install_monitor(mon)
