"""`mx.contrib.autograd`: MXNet 1.x's first imperative-autograd API, kept for old code, on the same tape as
mx.autograd (runtime/tape.py). `train_section()` records (and trains); `test_section()` stops both."""
import functools

from ..runtime import tape
from ..runtime.ndarray import NDArray

__all__ = ["set_is_training", "TrainingStateScope", "train_section", "test_section", "mark_variables", "backward",
           "compute_gradient", "grad_and_loss", "grad"]

mark_variables = tape.mark_variables


def set_is_training(is_train):
    """Turn recording and training on or off together; returns the previous training state."""
    previous = tape.set_training(is_train)
    tape.set_recording(is_train)
    return previous


class TrainingStateScope:
    """Sets the training state on entry and puts the previous one back on exit."""

    def __init__(self, enter_state):
        self._enter_state, self._prev = enter_state, None

    def __enter__(self):
        self._prev = set_is_training(self._enter_state)

    def __exit__(self, ptype, value, trace):
        if self._prev != self._enter_state:
            set_is_training(self._prev)


def train_section():
    """Record (in training mode) inside this scope."""
    return TrainingStateScope(True)


def test_section():
    """Neither record nor train inside this scope."""
    return TrainingStateScope(False)


def backward(outputs, out_grads=None, retain_graph=False):
    """Gradients of `outputs` (a list; out_grads per output, None meaning ones) into the marked variables."""
    assert isinstance(outputs, (list, tuple)), "outputs must be a list or tuple of NDArrays"
    tape.backward(list(outputs), None if out_grads is None else list(out_grads), retain_graph)


def compute_gradient(outputs):
    """backward(outputs) with head gradients of ones."""
    backward(outputs)


def grad_and_loss(func, argnum=None):
    """A function returning (gradients of func's output with respect to its arguments, or those in argnum; the
    output)."""
    @functools.wraps(func)
    def wrapped(*args):
        variables = args
        if argnum is not None:
            chosen = argnum if isinstance(argnum, list) else [argnum]
            variables = [args[i] for i in chosen]
        for x in variables:
            assert isinstance(x, NDArray), "type of autograd input should NDArray."
        grads = [NDArray(x._data * 0, x.context) for x in variables]
        mark_variables(list(variables), grads)
        with train_section():
            outputs = func(*args)
        compute_gradient([outputs] if isinstance(outputs, NDArray) else outputs)
        return grads, outputs
    return wrapped


def grad(func, argnum=None):
    """A function returning the gradients of func's output with respect to its arguments (or those in argnum)."""
    with_loss = grad_and_loss(func, argnum)

    @functools.wraps(with_loss)
    def wrapped(*args):
        return with_loss(*args)[0]
    return wrapped
