"""What the benchmarks share: a per-call timer and the raw ORT baseline for training (the fused gradient graph of
the model onnxsym lowers, run by a plain session)."""
import statistics
import time

from onnxsym.autograd.reverse import gradient_model
from onnxsym.lower.builder import strip_stop_gradients
from onnxsym.lower.to_onnx import lower_symbol
from onnxsym.runtime.ort import create_session


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
    """(model, session): the forward+backward graph onnxsym's own AD makes from the training-mode ONNX model of
    executor `exe` (gradients for the inputs in `wrt`), run by a plain session."""
    lowered = lower_symbol(exe._symbol, exe._shapes, exe._dtypes, training=True)
    model = gradient_model(lowered.model, [(lowered.loss, None)], list(wrt))[0]
    model = strip_stop_gradients(model)
    return model, create_session(model)
