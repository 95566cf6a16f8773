"""`mx.mod.PythonModule` and `mx.mod.PythonLossModule`: modules computed in Python, as MXNet 1.9.1's
python/mxnet/module/python_module.py. PythonModule implements the module API as no-ops for a subclass to fill in;
PythonLossModule ends a SequentialModule: its outputs are its input scores and its backward hands back the
gradient `grad_func(scores, labels)`."""
import logging

from ..base import MXNetError
from ..runtime.ndarray import NDArray, as_ndarray
from .base_module import BaseModule, ModuleAssertionError
from .initializer import Uniform

__all__ = ["PythonModule", "PythonLossModule"]


class PythonModule(BaseModule):
    """A module without parameters whose computation a subclass writes in Python (subclasses implement
    `_compute_output_shapes`, forward, backward, get_outputs and get_input_grads).

    Parameters
    ----------
    data_names : list of str
    label_names : list of str or None (no labels)
    output_names : list of str
    """

    def __init__(self, data_names, label_names, output_names, logger=logging):
        super().__init__(logger=logger)
        self._data_names = list(data_names) if isinstance(data_names, tuple) else data_names
        self._label_names = list(label_names) if isinstance(label_names, tuple) else label_names
        self._output_names = output_names
        self._data_shapes = None
        self._label_shapes = None
        self._output_shapes = None

    @property
    def data_names(self):
        return self._data_names

    @property
    def output_names(self):
        return self._output_names

    @property
    def data_shapes(self):
        return self._data_shapes

    @property
    def label_shapes(self):
        return self._label_shapes

    @property
    def output_shapes(self):
        return self._output_shapes

    def get_params(self):
        """No parameters: ({}, {})."""
        return {}, {}

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Nothing to initialize (a subclass with parameters overrides this)."""

    def update(self):
        """Nothing to update (a subclass with parameters overrides this)."""

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """eval_metric.update(labels, outputs), when the module is bound with labels."""
        if self._label_shapes is None:
            return
        if pre_sliced:
            raise RuntimeError("PythonModule does not support presliced labels")
        eval_metric.update(labels, self.get_outputs())

    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req="write"):
        """Record the input shapes (their names must be data_names and label_names, in order) and compute the
        output shapes."""
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if grad_req != "write":
            raise ModuleAssertionError("Python module only support write gradient, got grad_req=%r" % (grad_req,))
        given = [x[0] for x in data_shapes]
        if given != list(self._data_names):
            raise ModuleAssertionError("%s expects the data %s, bind got data_shapes named %s"
                                       % (type(self).__name__, list(self._data_names), given))
        if label_shapes is not None:
            given = [x[0] for x in label_shapes]
            if self._label_names is None or given != list(self._label_names):
                raise ModuleAssertionError("%s expects the labels %s, bind got label_shapes named %s"
                                           % (type(self).__name__, self._label_names, given))
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._data_shapes = data_shapes
        self._label_shapes = label_shapes
        self._output_shapes = self._compute_output_shapes()
        self.binded = True

    def _compute_output_shapes(self):
        """[(name, shape)] of the outputs, from self._data_shapes and self._label_shapes: subclasses implement it."""
        raise NotImplementedError("%s must implement _compute_output_shapes" % type(self).__name__)

    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        """No optimizer needed (a subclass with parameters overrides this)."""


class PythonLossModule(PythonModule):
    """A loss written in Python that ends a chain: its output (`name + '_output'`) is its input scores, and its
    backward computes the scores' gradient with `grad_func(scores, labels)` (NDArrays in, a numpy array or
    NDArray out). Without grad_func, a subclass implements `_backward_impl`.

    >>> loss = mx.mod.PythonLossModule(grad_func=lambda scores, labels: scores.asnumpy() - onehot(labels))
    >>> seq = mx.mod.SequentialModule().add(mlp).add(loss, take_labels=True, auto_wiring=True)
    """

    def __init__(self, name="pyloss", data_names=("data",), label_names=("softmax_label",), logger=logging,
                 grad_func=None):
        super().__init__(data_names, label_names, [name + "_output"], logger=logger)
        self._name = name
        if len(data_names) != 1:
            raise ModuleAssertionError("PythonLossModule takes one data input, got data_names=%s"
                                       % (list(data_names),))
        if len(label_names) != 1:
            raise ModuleAssertionError("PythonLossModule takes one label, got label_names=%s" % (list(label_names),))
        if grad_func is not None and not callable(grad_func):
            raise ModuleAssertionError("grad_func must be callable, got %r" % (grad_func,))
        self._scores = None
        self._labels = None
        self._scores_grad = None
        self._grad_func = grad_func

    def _compute_output_shapes(self):
        return [(self._name + "_output", self._data_shapes[0][1])]

    def forward(self, data_batch, is_train=None):
        """Keep the scores (the output) and, when training, the labels for backward."""
        self._scores = data_batch.data[0]
        if is_train is None:
            is_train = self.for_training
        if is_train:
            self._labels = data_batch.label[0]

    def get_outputs(self, merge_multi_context=True):
        """[scores] of the last forward."""
        if merge_multi_context is not True:
            raise ModuleAssertionError("PythonLossModule computes on one context: merge_multi_context must be True")
        return [self._scores]

    def backward(self, out_grads=None):
        """Compute the scores' gradient (a loss takes no out_grads)."""
        if out_grads is not None:
            raise ModuleAssertionError("For a loss module, out_grads should be None")
        if not self.for_training:
            raise ModuleAssertionError("backward() needs a module bound with for_training=True")
        self._backward_impl()

    def _backward_impl(self):
        """self._scores_grad = grad_func(self._scores, self._labels) as an NDArray; a subclass without grad_func
        overrides this."""
        if self._grad_func is None:
            raise NotImplementedError("PythonLossModule has no grad_func: pass grad_func=f(scores, labels) -> "
                                      "gradient of the scores, or subclass it and implement _backward_impl")
        if self._labels is None:
            raise MXNetError("PythonLossModule.backward() needs a training forward (with labels) first")
        grad = self._grad_func(self._scores, self._labels)
        if not isinstance(grad, NDArray):
            grad = as_ndarray(grad)
        if tuple(grad.shape) != tuple(self._scores.shape):
            raise MXNetError("grad_func returned a gradient of shape %s for scores of shape %s"
                             % (tuple(grad.shape), tuple(self._scores.shape)))
        self._scores_grad = grad

    def get_input_grads(self, merge_multi_context=True):
        """[gradient of the scores] of the last backward."""
        if merge_multi_context is not True:
            raise ModuleAssertionError("PythonLossModule computes on one context: merge_multi_context must be True")
        return [self._scores_grad]

    def install_monitor(self, mon):
        raise NotImplementedError("PythonLossModule has no executors to monitor")
