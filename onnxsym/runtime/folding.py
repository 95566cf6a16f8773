"""Inference runs with the unchanging inputs as constants: the graph ONNX Runtime sees for an inference forward,
with the current values of the arrays nobody wrote since the previous forward (the parameters and auxiliary states,
in practice) as initializers, so that ORT folds BatchNorm into the convolutions and pre-packs the weights, as it
does for an exported .onnx.

Every writer of an NDArray's buffer notes the write (device.touch), so each forward knows which inputs changed
(buffers shared for writing outside onnxsym, through DLPack, are never constants):
- the folded session runs while none of its constants was written since it was made;
- otherwise one is made: for a Module's executor with its parameters and auxiliary states as the constants, as soon
  as none of them changed since the previous inference forward (at once at the first); so for simple_bind's, whose
  parameters are the arguments it inferred the shapes of; for any other executor, at its second forward, with the
  inputs that forward did not change (the data a forward copies in changes every time, the weights do not); until
  then the usual graph runs (parameters as inputs);
- making a session costs about as much as a few inference runs, so after a folded session served fewer than
  `_MIN_RUNS` runs before a constant changed (weights written between forwards, as in training), the usual graph
  runs for the next `_COOLDOWN` forwards.
"""
import weakref

import numpy as np
import onnx
from onnx import numpy_helper

from ..lower.builder import PYTHON_DOMAIN
from .binding import BoundRun
from .device import device_of, externally_shared, version_key, versions, watch
from .ndarray import host_buffer
from .ort import create_session, external_data_in_memory, external_initializer
from . import rng

__all__ = ["FoldedRuns"]

_MIN_RUNS = 3
_COOLDOWN = 8
_EXTERNAL_BYTES = 1024     # constants this large reach ORT from their buffers (create_session's `external`)
_GAINS = frozenset(("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "LSTM", "GRU", "RNN"))


class FoldedRuns:
    """Inference runs of `lowered` (an executor's graph) with its unchanging inputs as initializers."""

    def __init__(self, lowered, ctx, arrays, outputs, known_constants=None):
        # outputs(): the executor's output bindings [(name, host buffer, on_device)] (BoundRun's), held weakly
        # (the executor holds this object)
        self._lowered, self._ctx, self._arrays = lowered, ctx, arrays
        self._outputs = weakref.WeakMethod(outputs)
        self._names = list(lowered.input_names)
        self._known = [i for i, n in enumerate(self._names) if n in set(known_constants or ())]
        self._session = self._bound = None
        self._constants, self._built = [], None      # input positions folded, and their versions then
        self._last = None                              # every input's version at the previous forward
        self._runs = 0                                 # runs of the current folded session
        self._watched = self._keys = None              # the input buffers watched, and their write-count keys
        self._cooldown = 0
        self.builds = 0                                # sessions made (tests, benchmarks)
        self.declined = 0                              # forwards left to the usual graph

    @staticmethod
    def applies(lowered, ctx, forward_aux):
        """Whether folding can serve this executor: host memory (no device copies), no op that writes an
        auxiliary state in an inference forward, no sampling (its seeds are per session), static shapes, and an
        op whose constant inputs ORT folds or pre-packs (elsewhere a folded graph runs no faster); not graphs with
        custom ops' Python nodes (a session of theirs holds their kernels and ~3.5 MB: one is enough)."""
        return device_of(ctx) is None and not forward_aux and not rng.has_sampling(lowered.model) and \
            not lowered.run_time_shapes and bool(lowered.input_names) and \
            any(node.op_type in _GAINS for node in lowered.model.graph.node) and \
            not any(node.domain == PYTHON_DOMAIN for node in lowered.model.graph.node)

    @property
    def bound(self):
        """The folded session's BoundRun (None while there is none)."""
        return self._bound

    def run(self, borrowed=None):
        """Run the folded session when it fits the current inputs (made now when it pays); False when the
        caller should run the usual graph (counted in `declined`). `borrowed`: BoundRun.run's, inputs read from
        other buffers this run (never folded: their arrays do not change while they are lent)."""
        done = self._run(borrowed)
        if not done:
            self.declined += 1
        return done

    def _run(self, borrowed):
        lent = {i for i, n in enumerate(self._names) if n in borrowed} if borrowed else ()
        buffers = [host_buffer(self._arrays[name]) for name in self._names]
        if self._watched is None or any(a is not b for a, b in zip(buffers, self._watched)):
            for buffer in buffers:
                watch(buffer)
            self._watched, self._keys = buffers, [version_key(b) for b in buffers]
        now = versions(self._keys)
        last, self._last = self._last, now
        if self._bound is not None and all(now[i] == self._built[i] and i not in lent for i in self._constants) \
                and not rng.is_stale(self._session):
            self._bound.run(None, borrowed)
            self._runs += 1
            return True
        if self._bound is not None and self._runs < _MIN_RUNS:
            self._cooldown = _COOLDOWN          # it did not pay: the constants change between forwards
        self._session = self._bound = None
        if self._cooldown:
            self._cooldown -= 1
            return False
        if self._known:
            # (a Module's parameters and auxiliary states: fold them once none changed since the last forward)
            if last is not None and any(now[i] != last[i] for i in self._known):
                return False
            constants = self._known
        else:
            if last is None:
                return False    # decide at the second forward: what it did not change is constant
            constants = [i for i, (c, a) in enumerate(zip(now, last)) if c == a]
        constants = [i for i in constants if not externally_shared(self._keys[i]) and i not in lent]
        if not constants or len(constants) == len(self._names):
            return False        # nothing to fold, or no input left to feed (an input-less graph gains nothing)
        self._build(constants, now)
        self._bound.run(None, borrowed)
        self._runs = 1
        return True

    def _build(self, constants, built):
        frozen = {self._names[i] for i in constants}
        model = onnx.ModelProto()
        model.CopyFrom(self._lowered.model)
        kept = [i for i in model.graph.input if i.name not in frozen]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        # the constants' bytes go to ORT from their buffers (no copy in the model, none in its serialized form:
        # serving ResNet-18, the process peaked 2 x 45 MB higher while the session was made); small ones inline,
        # and all where this onnxruntime cannot take them from memory
        external, in_memory = [], external_data_in_memory()
        for i in constants:
            name, array = self._names[i], np.ascontiguousarray(host_buffer(self._arrays[self._names[i]]))
            if in_memory and array.nbytes >= _EXTERNAL_BYTES and array.dtype.kind in "biuf":
                external.append(("constant%d.bin" % i, array))
                model.graph.initializer.append(external_initializer(name, array, external[-1][0]))
            else:
                model.graph.initializer.append(numpy_helper.from_array(array, name))
        self._session = create_session(model, self._ctx, external)
        self._bound = BoundRun(self._session, self._ctx,
                               [(n, host_buffer(self._arrays[n])) for n in self._names if n not in frozen],
                               self._outputs()())
        self._constants, self._built = constants, built
        self.builds += 1
