"""What the benchmarks share: a per-call timer and the raw ORT baseline for training (the fused gradient graph of
the model onnxsym lowers, run by a plain session)."""
import statistics
import time

import onnx

from onnxsym.autograd.training import _register_stop_gradient
from onnxsym.lower.builder import strip_stop_gradients
from onnxsym.lower.to_onnx import lower_symbol
from onnxsym.runtime.ort import C, create_session, quiet_logging, session_options


def per_call(fn, number, repeat, pick=statistics.median):
    """Seconds per call of fn(): `repeat` timings of `number` calls each, reduced by `pick` (median or min)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return pick(times)


def fused_training_session(exe, wrt):
    """(model, session): the forward+backward graph GradientGraphBuilder makes from the training-mode ONNX model
    of executor `exe`, with gradients for the inputs in `wrt`."""
    _register_stop_gradient()
    lowered = lower_symbol(exe._symbol, exe._shapes, exe._dtypes, training=True)
    builder = C.GradientGraphBuilder(lowered.model.SerializeToString(), {lowered.loss}, set(wrt), lowered.loss,
                                     session_options())
    with quiet_logging():
        builder.build()
    model = strip_stop_gradients(onnx.load_from_string(builder.get_model()))
    return model, create_session(model)
