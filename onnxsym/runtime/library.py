"""The one module that imports onnxruntime: the library, its C bindings and the devices it can run on.

It sits below everything that asks about devices (`mx.num_gpus`, an NDArray on `mx.gpu()`); sessions are built
in ort.py, above the custom-op machinery that sessions may call into.
"""
import logging
import os
import re

__all__ = ["ort", "C", "cuda_available", "cuda_device_count", "gpu_unavailable", "gpu_emulation", "check_runtime",
           "MIN_VERSION", "GPU_INSTALL"]


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


# The one documented install for GPU users: onnxruntime-gpu (CUDA 12; its cuda/cudnn extras bring the NVIDIA
# libraries as wheels) in place of the CPU package, which writes the same onnxruntime/ folder.
GPU_INSTALL = 'pip uninstall -y onnxruntime onnxruntime-gpu && pip install "onnxruntime-gpu[cuda,cudnn]"'


def gpu_emulation():
    """ONNXSYM_GPU_EMULATION, a testing aid: '1' makes mx.gpu() a device whose memory is separate host memory
    (sessions on the CPU provider, every array reaching a session through device copies), 'all' does the same for
    mx.cpu() too, so any test exercises the device-copy path; '' (default) is off."""
    value = os.environ.get("ONNXSYM_GPU_EMULATION", "")
    return value if value in ("1", "all") else ""


def cuda_available():
    return bool(gpu_emulation()) or "CUDAExecutionProvider" in ort.get_available_providers()


def _installed(distribution):
    from importlib import metadata  # lazy: only error paths ask which wheels are installed
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def gpu_unavailable(ctx):
    """The one message for a GPU context that the installed onnxruntime cannot serve: what is installed and the
    command that fixes it."""
    cpu, gpu = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    if cpu and gpu:
        found = ("both onnxruntime %s and onnxruntime-gpu %s are installed; they write the same onnxruntime folder, "
                 "so the one installed last (here the CPU build) wins" % (cpu, gpu))
    elif gpu:
        found = "onnxruntime-gpu %s is installed but offers no CUDAExecutionProvider here" % gpu
    else:
        found = "the installed onnxruntime %s is the CPU build" % ort.__version__
    return ("%s needs ONNX Runtime's CUDAExecutionProvider, but %s. Install the GPU build in place of the CPU one: "
            "%s" % (ctx, found, GPU_INSTALL))


def cuda_device_count():
    """How many CUDA devices there are: CUDA's runtime library (loaded by onnxruntime-gpu, or its NVIDIA wheels)
    asked with cudaGetDeviceCount; 1 under ONNXSYM_GPU_EMULATION; 0 without the CUDA provider."""
    if gpu_emulation():
        return 1
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return 0
    import ctypes  # lazy: only GPU builds get here
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:         # onnxruntime-gpu 1.21+: loads the NVIDIA wheels' libraries if installed
        try:
            preload(cuda=True, cudnn=False, msvc=False)
        except Exception:  # noqa: BLE001 - the system libraries may still be found below
            pass
    for name in ("libcudart.so.12", "libcudart.so.13", "libcudart.so", "cudart64_12.dll"):
        try:
            cudart = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cudart.cudaGetDeviceCount(ctypes.byref(count)) == 0:
            return count.value
        return 0
    return 0
