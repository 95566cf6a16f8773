"""`mx.autograd` (MXNet python/mxnet/autograd.py): recording imperative NDArray code and differentiating it
(runtime/tape.py), and, for executors, the training graphs of symbols (training.py: the forward in training mode
and its gradient, onnxsym's own reverse-mode AD)."""
from ..runtime.tape import backward, get_symbol, grad, is_recording, is_training, mark_variables, set_recording, \
    set_training

__all__ = ["make_training", "set_recording", "set_training", "is_recording", "is_training", "record", "pause",
           "train_mode", "predict_mode", "mark_variables", "backward", "grad", "get_symbol"]


def make_training(*args, **kwargs):
    """The training graph of a bound symbol (training.py)."""
    from .training import make_training as build  # lazy: start-up time (only training graphs need it)
    return build(*args, **kwargs)


class _RecordingStateScope:
    """Sets recording and training on entry, puts them back on exit (MXNet's _RecordingStateScope)."""

    def __init__(self, is_record, train_mode):
        self._enter_is_record, self._enter_train_mode = is_record, train_mode
        self._prev_is_record = self._prev_train_mode = None

    def __enter__(self):
        if self._enter_is_record is not None:
            self._prev_is_record = set_recording(self._enter_is_record)
        if self._enter_train_mode is not None:
            self._prev_train_mode = set_training(self._enter_train_mode)

    def __exit__(self, ptype, value, trace):
        if self._enter_is_record is not None and self._prev_is_record != self._enter_is_record:
            set_recording(self._prev_is_record)
        if self._enter_train_mode is not None and self._prev_train_mode != self._enter_train_mode:
            set_training(self._prev_train_mode)


def record(train_mode=True):
    """Record the NDArray operations in this scope for backward (train_mode: ops in training mode)."""
    return _RecordingStateScope(True, train_mode)


def pause(train_mode=False):
    """Stop recording in this scope."""
    return _RecordingStateScope(False, train_mode)


def train_mode():
    """Training mode (Dropout drops, BatchNorm uses batch statistics) in this scope, recording unchanged."""
    return _RecordingStateScope(None, True)


def predict_mode():
    """Inference mode in this scope, recording unchanged."""
    return _RecordingStateScope(None, False)
