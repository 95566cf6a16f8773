"""Inference runs with the parameters as constants: the graph ONNX Runtime sees for an inference forward of an
executor whose parameters and auxiliary states are known (`frozen`: Module binds name them), with their current
values as initializers, so that ORT folds BatchNorm into the convolutions and pre-packs the weights, as it does
for an exported .onnx.

The session is made for the values the arrays have; every writer of an NDArray's buffer notes the write
(device.touch), so a changed parameter is seen at the next forward. Making a session costs about as much as a few
inference runs of the graph, so it is made when it can pay: at the first forward of an executor bound for inference
only (Module.bind(for_training=False)), and otherwise once the parameters were the same at two forwards in a row
(e.g. the second batch of Module.predict or score after training steps); a forward whose parameters just changed
runs the usual graph (parameters as inputs).
"""
import onnx
from onnx import numpy_helper

from .binding import BoundRun
from .device import device_of, version, watch
from .ndarray import host_buffer
from .ort import create_session
from . import rng

__all__ = ["FoldedRuns"]


class FoldedRuns:
    """Runs of `lowered` (an executor's inference graph) with the `frozen` arrays as initializers."""

    def __init__(self, lowered, ctx, arrays, frozen, outputs, eager):
        # outputs(): the executor's output bindings [(name, host buffer, on_device)] (BoundRun's)
        self._lowered, self._ctx, self._arrays, self._outputs = lowered, ctx, arrays, outputs
        inputs = set(lowered.input_names)
        self._frozen = [n for n in frozen if n in inputs]
        self._eager = eager         # inference-only bind: fold at the first forward
        self._session, self._bound, self._versions, self._last = None, None, None, None
        self.builds = 0             # sessions made (tests, benchmarks)

    @staticmethod
    def applies(lowered, ctx, frozen, forward_aux):
        """Whether folding can serve this executor: frozen parameters, host memory (no device copies), no op
        that writes an auxiliary state in an inference forward, no sampling (its seeds are per session)."""
        return bool(frozen) and device_of(ctx) is None and not forward_aux and \
            not rng.has_sampling(lowered.model) and not lowered.run_time_shapes

    def run(self):
        """Run the folded session if it fits the current parameters (made now when it pays); False when the
        caller should run the usual graph."""
        buffers = [host_buffer(self._arrays[n]) for n in self._frozen]
        for buffer in buffers:
            watch(buffer)
        versions = [version(b) for b in buffers]
        stable = versions == self._last
        self._last = versions
        if self._bound is None or versions != self._versions or rng.is_stale(self._session):
            if not (stable or (self._eager and self._bound is None)):
                return False
            self._build(buffers, versions)
        self._bound.run()
        return True

    def _build(self, buffers, versions):
        model = onnx.ModelProto()
        model.CopyFrom(self._lowered.model)
        frozen = set(self._frozen)
        kept = [i for i in model.graph.input if i.name not in frozen]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        model.graph.initializer.extend(numpy_helper.from_array(b, n) for n, b in zip(self._frozen, buffers))
        self._session = create_session(model, self._ctx)
        self._bound = BoundRun(self._session, self._ctx,
                               [(n, host_buffer(self._arrays[n])) for n in self._lowered.input_names
                                if n not in frozen], self._outputs())
        self._versions = versions
        self.builds += 1
