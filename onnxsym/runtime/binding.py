"""One session run through one IOBinding, fixed at bind time: the Executor's graphs and the fused training step.

Inputs are host buffers bound zero-copy (CPU), or their device copies (device.py) refreshed before each run;
outputs are host buffers ORT writes into (or, given None, arrays ORT allocates), touched after each run."""
from .device import DeviceCopy, device_of, touch
from .ort import run_error
from .pyops import raise_pending

__all__ = ["BoundRun"]


class BoundRun:
    """`run()` runs `session` on `inputs` [(name, host buffer)] into `outputs` [(name, host buffer or None)]."""

    def __init__(self, session, ctx, inputs, outputs):
        io = session.io_binding()
        device = device_of(ctx)
        self.copies = []
        for name, host in inputs:
            if device is None:
                io.bind_cpu_input(name, host)
            else:
                copy = DeviceCopy(host, device)
                io.bind_ortvalue_input(name, copy.value)
                self.copies.append(copy)
        self.written = []
        for name, target in outputs:
            if target is None:
                io.bind_output(name, "cpu")
            else:
                io.bind_output(name, "cpu", 0, target.dtype, list(target.shape), target.ctypes.data)
                self.written.append(target)
        self.io = io
        self._handle = io._iobinding
        self._run = session._sess.run_with_iobinding

    def run(self):
        for copy in self.copies:
            copy.refresh()
        try:
            self._run(self._handle, None)
        except Exception as err:
            raise run_error(err) from None
        finally:
            for target in self.written:
                touch(target)
        raise_pending()
