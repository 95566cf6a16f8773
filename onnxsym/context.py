"""Devices: `mx.cpu()`, `mx.gpu(i)`, `mx.Context` and the `with ctx:` default (MXNet's `mxnet.context`)."""
import threading
import warnings

from .runtime.library import cuda_device_count

__all__ = ["Context", "cpu", "gpu", "cpu_pinned", "current_context", "num_gpus"]


class _ClassProperty:
    """A read-only property of a class (MXNet's classproperty)."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


class Context:
    """A device: 'cpu' or 'gpu' with an id. Usable as a context manager that sets the default device."""

    devtype2str = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
    devstr2type = {v: k for k, v in devtype2str.items()}
    _default = threading.local()

    def __init__(self, device_type, device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if isinstance(device_type, int):
            device_type = self.devtype2str.get(device_type, device_type)
        if device_type not in self.devstr2type:
            raise ValueError("unknown device type %r (expected one of %s)" % (device_type, sorted(self.devstr2type)))
        self.device_type = device_type
        self.device_id = int(device_id)
        self._old = []

    @property
    def device_typeid(self):
        return self.devstr2type[self.device_type]

    def __hash__(self):
        return hash((self.device_type, self.device_id))

    def __eq__(self, other):
        return isinstance(other, Context) and (self.device_type, self.device_id) == (other.device_type,
                                                                                     other.device_id)

    def __str__(self):
        return "%s(%d)" % (self.device_type, self.device_id)

    __repr__ = __str__

    def __enter__(self):
        self._old.append(current_context())
        Context._default.value = self
        return self

    def __exit__(self, *exc):
        Context._default.value = self._old.pop()

    @_ClassProperty
    def default_ctx(cls):
        """The current default device (deprecated in MXNet 1.x for current_context())."""
        warnings.warn("Context.default_ctx has been deprecated. Please use Context.current_context() instead. "
                      "Please use test_utils.set_default_context to set a default context", DeprecationWarning)
        return current_context()

    @staticmethod
    def current_context():
        return current_context()


def cpu(device_id=0):
    """The CPU device (ONNX Runtime's CPU execution provider)."""
    return Context("cpu", device_id)


def cpu_pinned(device_id=0):
    return Context("cpu_pinned", device_id)


def gpu(device_id=0):
    """GPU `device_id` (ONNX Runtime's CUDA execution provider, when the installed runtime has it)."""
    return Context("gpu", device_id)


def current_context():
    """The default device: cpu(0) unless inside `with mx.gpu(0):` or similar."""
    return getattr(Context._default, "value", None) or Context("cpu", 0)


def num_gpus():
    """How many CUDA devices ONNX Runtime can use here (0 with the CPU wheel or without a device)."""
    return cuda_device_count()
