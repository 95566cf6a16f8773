"""The one module that imports onnxruntime: the library, its C bindings and the devices it can run on.

It sits below everything that asks about devices (`mx.num_gpus`, an NDArray on `mx.gpu()`); sessions are built
in ort.py, above the custom-op machinery that sessions may call into.
"""
import logging
import os

__all__ = ["ort", "C", "cuda_available"]


def _import_onnxruntime():
    """onnxruntime-training adds a handler to the root logger when imported, which silently turns a user's
    later logging.basicConfig(level=logging.INFO) into a no-op (fit's progress logs vanish); undo that.

    Current onnxruntime releases (1.2x-1.3x on Linux) start a telemetry client that writes a device id and an
    event database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ in every process: onnxsym turns it off
    (ORT_DISABLE_TELEMETRY=1, read when onnxruntime is imported) unless the user set the variable."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    handlers, level = list(logging.root.handlers), logging.root.level
    import onnxruntime
    from onnxruntime.capi import _pybind_state
    for handler in list(logging.root.handlers):
        if handler not in handlers:
            logging.root.removeHandler(handler)
    logging.root.setLevel(level)
    return onnxruntime, _pybind_state


ort, C = _import_onnxruntime()


def cuda_available():
    return "CUDAExecutionProvider" in ort.get_available_providers()
