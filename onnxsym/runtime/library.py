"""The one module that imports onnxruntime: the library, its C bindings and the devices it can run on.

It sits below everything that asks about devices (`mx.num_gpus`, an NDArray on `mx.gpu()`); sessions are built
in ort.py, above the custom-op machinery that sessions may call into.
"""
import logging
import os
import re

__all__ = ["ort", "C", "cuda_available", "check_runtime", "MIN_VERSION"]


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


MIN_VERSION = (1, 17)     # opset 17 models with IR version 8, IOBinding on numpy buffers, onnxruntime-extensions


def check_runtime(version, has_training_builders, autograd):
    """Why the onnxruntime found cannot serve onnxsym, or None: too old, or the ort-training gradient backend
    selected (ONNXSYM_AUTOGRAD) while the module is the plain build (e.g. `pip install -U onnxruntime` went over
    onnxruntime-training, which shares its folder)."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers < MIN_VERSION:
        return ("onnxsym needs onnxruntime >= %d.%d, but onnxruntime %s is installed: pip install -U onnxruntime"
                % (MIN_VERSION + (version,)))
    if autograd == "ort-training" and not has_training_builders:
        return ("ONNXSYM_AUTOGRAD=ort-training selects onnxruntime-training's gradient builders, but the installed "
                "onnxruntime %s is the plain build: install onnxruntime-training-cpu==1.19.2 in place of "
                "onnxruntime (a separate venv, Python <= 3.12), or unset ONNXSYM_AUTOGRAD for onnxsym's own "
                "gradients" % version)
    return None


ort, C = _import_onnxruntime()
_problem = check_runtime(ort.__version__, hasattr(C, "GradientGraphBuilder"), os.environ.get("ONNXSYM_AUTOGRAD"))
if _problem:
    raise ImportError(_problem)


def cuda_available():
    return "CUDAExecutionProvider" in ort.get_available_providers()
