"""Custom ops run from several Python threads at once: an exception raised in a Python op belongs to the run
(the thread) that raised it, never to another thread's run (onnxsym/runtime/pyops.py)."""
import threading

import numpy as np
import pytest

import onnxsym as mx

pytest.importorskip("onnxruntime_extensions", reason="custom Python operators run through onnxruntime-extensions")


class Scale(mx.operator.CustomOp):
    """out = x * factor; with fail=True forward raises, naming the calling thread's tag and iteration."""

    def __init__(self, factor, fail):
        super().__init__()
        self.factor, self.fail = factor, fail

    def forward(self, is_train, req, in_data, out_data, aux):
        if self.fail:
            raise ValueError("failing op of %s" % in_data[0].asnumpy().ravel()[0])
        self.assign(out_data[0], req[0], in_data[0] * self.factor)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        if self.fail:
            raise ValueError("failing backward of %s" % in_data[0].asnumpy().ravel()[0])
        self.assign(in_grad[0], req[0], out_grad[0] * self.factor)


@mx.operator.register("test_thread_scale")
class ScaleProp(mx.operator.CustomOpProp):
    def __init__(self, factor, fail="0"):
        super().__init__(need_top_grad=True)
        self.factor, self.fail = float(factor), fail == "1"

    def create_operator(self, ctx, shapes, dtypes):
        return Scale(self.factor, self.fail)


def run_threads(n_threads, iterations, failing=0, train=False):
    """Each thread binds its own graph (factor = thread index + 2; thread `failing` has an op that always
    raises) and runs it `iterations` times with x = its iteration number. Returns counts: calls, wrong raises
    (a healthy call raised, or a failing call raised another call's error), missed raises (a failing call
    returned), wrong outputs."""
    counts = {"calls": 0, "wrong_raises": 0, "missed_raises": 0, "wrong_outputs": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def work(index):
        fail = index == failing
        x = mx.sym.Variable("x")
        out = mx.sym.Custom(x, op_type="test_thread_scale", factor=str(index + 2), fail="1" if fail else "0")
        exe = out.simple_bind(mx.cpu(), x=(3, 4))
        local = dict.fromkeys(counts, 0)
        barrier.wait()
        for i in range(iterations):
            tag = float(index * 100000 + i)
            exe.arg_dict["x"][:] = tag
            local["calls"] += 1
            try:
                exe.forward(is_train=train)
                if train:
                    exe.backward(mx.nd.ones((3, 4)))
            except mx.MXNetError as err:
                # the message names the input of this very call: the thread and the iteration
                if not (fail and str(err).endswith("of %s" % tag)):
                    local["wrong_raises"] += 1
                continue
            if fail:
                local["missed_raises"] += 1
            elif not np.array_equal(exe.outputs[0].asnumpy(), np.full((3, 4), tag * (index + 2), np.float32)):
                local["wrong_outputs"] += 1
        with lock:
            for key, value in local.items():
                counts[key] += value

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def test_kernels_run_on_the_calling_thread():
    """The design rests on this: ORT calls the Python op on the thread that runs the graph (inference, split and
    fused training, mx.nd.Custom), so a per-thread error list is the run's own."""
    seen = []

    class Recorder(Scale):
        def forward(self, **kwargs):
            seen.append(threading.get_ident())
            super().forward(**kwargs)

        def backward(self, **kwargs):
            seen.append(threading.get_ident())
            super().backward(**kwargs)

    @mx.operator.register("test_thread_recorder")
    class RecorderProp(ScaleProp):
        def create_operator(self, ctx, shapes, dtypes):
            return Recorder(self.factor, False)

    callers, errors = [], []

    def work():
        try:
            run_all()
        except Exception as err:        # noqa: BLE001 (reported by the test's thread)
            errors.append(err)

    def run_all():
        callers.append(threading.get_ident())
        x = mx.sym.Variable("x")
        custom = mx.sym.Custom(x, op_type="test_thread_recorder", factor="2")
        for sym, heads in ((custom, [mx.nd.ones((4, 3))]), (mx.sym.MakeLoss(custom), None)):
            exe = sym.simple_bind(mx.cpu(), x=(4, 3))
            exe.forward()
            exe.forward(is_train=True)
            exe.backward(heads)
        mx.nd.Custom(mx.nd.ones((2,)), op_type="test_thread_recorder", factor="2")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors, errors
    assert len(seen) == 7 and set(seen) == set(callers), (seen, callers)


def test_errors_belong_to_the_thread_that_raised_them():
    """8 threads x 50 iterations, one thread's op always raising: each of its calls raises its own error,
    no healthy call raises, every healthy output is right."""
    counts = run_threads(8, 50, failing=3)
    assert counts == {"calls": 400, "wrong_raises": 0, "missed_raises": 0, "wrong_outputs": 0}


def test_errors_belong_to_the_thread_that_raised_them_in_training():
    """The same for forward(is_train=True) + backward (split training: the op's output needs a head gradient)."""
    counts = run_threads(8, 20, failing=5, train=True)
    assert counts == {"calls": 160, "wrong_raises": 0, "missed_raises": 0, "wrong_outputs": 0}
