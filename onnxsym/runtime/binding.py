"""One session run through one IOBinding, fixed at bind time: the Executor's graphs and the fused training step.

On the CPU, inputs and outputs are host buffers bound zero-copy. On a device (runtime/device.py), inputs are the
arrays' device copies, made current before each run, and outputs marked `on_device` are written into device
copies (the device then holds the newest values); other outputs land in host buffers. Outputs given as None are
allocated by ORT. Device copies swapped by an update (device.swap) are bound again before the next run."""
import numpy as np
import onnx
from onnx import helper

from .device import device_of, home_copy, touch, written
from .ort import ort, run_error, session_options
from .pyops import raise_pending

__all__ = ["BoundRun", "copy_on_device"]

_COPIERS = {}       # (dtype, rank, device) -> an Identity session on that device


def copy_on_device(source, target):
    """target's device buffer := source's (two DeviceCopy of one shape and dtype), without the host."""
    source.refresh()
    key = (source.host.dtype.str, source.host.ndim, source.device)
    session = _COPIERS.get(key)
    if session is None:
        kind = helper.np_dtype_to_tensor_dtype(source.host.dtype)
        dims = ["d%d" % i for i in range(source.host.ndim)]
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "copy",
                                  [helper.make_tensor_value_info("x", kind, dims)],
                                  [helper.make_tensor_value_info("y", kind, dims)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.checker.check_model(model)
        providers = ["CPUExecutionProvider"] if source.device[0] == "cpu" else \
            [("CUDAExecutionProvider", {"device_id": source.device[1]}), "CPUExecutionProvider"]
        session = _COPIERS[key] = ort.InferenceSession(model.SerializeToString(), session_options(),
                                                       providers=providers)
    io = session.io_binding()
    io.bind_ortvalue_input("x", source.value)
    io.bind_ortvalue_output("y", target.value)
    session.run_with_iobinding(io)
    written(target)


class BoundRun:
    """`run()` runs `session` on `inputs` [(name, host buffer)] into `outputs` [(name, host buffer or None,
    on_device)]; `device_outputs` maps an output name to its device copy."""

    def __init__(self, session, ctx, inputs, outputs):
        io = session.io_binding()
        self.device = device = device_of(ctx)
        self.copies, self.device_outputs, self.written = [], {}, []
        self.hosts = dict(inputs) if device is None else {}
        self._lent = {}           # input name -> the buffer bound in place of its host buffer (run's `borrowed`)
        for name, host in inputs:
            if device is None:
                io.bind_cpu_input(name, host)
            else:
                copy = home_copy(host, device)
                io.bind_ortvalue_input(name, copy.value)
                self.copies.append([name, copy, copy.value])
        self.dynamic = []         # (position among the outputs, name, NDArray): shapes ORT decides at each run
        for position, (name, target, on_device) in enumerate(outputs):
            if target is None or not isinstance(target, np.ndarray):
                io.bind_output(name, "cpu")
                if target is not None:
                    self.dynamic.append((position, name, target))
            elif on_device and device is not None:
                copy = home_copy(target, device)
                io.bind_ortvalue_output(name, copy.value)
                self.device_outputs[name] = [name, copy, copy.value]
            else:
                io.bind_output(name, "cpu", 0, target.dtype, list(target.shape), target.ctypes.data)
                self.written.append(target)
        self.io = io
        self._handle = io._iobinding
        self._run = session._sess.run_with_iobinding

    def run(self, options=None, borrowed=None):
        """One run. `borrowed` {input name: host buffer of that input's shape and dtype, C-contiguous} (CPU only):
        read in place of the bound host buffers for this run, without a copy; the next run without them binds the
        host buffers again (the buffers lent are held until then, so no binding ever outlives its memory)."""
        if borrowed or self._lent:
            self._lend(borrowed or {})
        if self.device is not None:
            self._refresh_device()
        try:
            self._run(self._handle, options)
        except Exception as err:
            raise run_error(err) from None
        finally:
            for target in self.written:
                touch(target)
            for _, copy, _ in self.device_outputs.values():
                written(copy)
        raise_pending()
        if self.dynamic:
            self._take_dynamic()

    def end_borrowing(self):
        """The host buffers bound again now (the buffers lent last are no longer held)."""
        if self._lent:
            self._lend({})

    def _lend(self, borrowed):
        io, lent = self.io, self._lent
        for name in [n for n in lent if n not in borrowed]:
            io.bind_cpu_input(name, self.hosts[name])
            del lent[name]
        for name, buffer in borrowed.items():
            if name in self.hosts and lent.get(name) is not buffer:     # (inputs the graph does not read: none)
                io.bind_cpu_input(name, buffer)
                lent[name] = buffer

    def _refresh_device(self):
        """Device inputs made current; copies an update swapped (device.swap) bound again."""
        io = self.io
        for entry in self.copies:
            name, copy, bound = entry
            copy.refresh()
            if copy.value is not bound:
                io.bind_ortvalue_input(name, copy.value)
                entry[2] = copy.value
        for entry in self.device_outputs.values():
            name, copy, bound = entry
            if copy.value is not bound:
                io.bind_ortvalue_output(name, copy.value)
                entry[2] = copy.value

    def _take_dynamic(self):
        """Outputs whose shape ORT decided: their NDArrays take the new arrays."""
        values = self.io.get_outputs()
        for position, name, array in self.dynamic:
            array._data = np.array(values[position].numpy(), order="C", copy=True)   # (ORT reuses its buffer)
            touch(array._data)
        for _, name, _ in self.dynamic:     # unallocated again: the next run may give another shape
            self.io.bind_output(name, "cpu")
