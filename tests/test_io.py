"""mx.io iterators against the batches MXNet 1.9.1 returns (tests/fixtures/make_io_fixtures.py)."""
import gc
import gzip
import json
import os
import struct
import threading
import time

import numpy as np
import pytest

from onnxsym.base import MXNetError
from onnxsym.module import io
from onnxsym.runtime.ndarray import NDArray
from tests.fixtures.recorded import batches, descs

with open(os.path.join(os.path.dirname(__file__), "fixtures", "mxnet", "io_iterators.json")) as _f:
    MX = json.load(_f)
DATA = np.arange(14, dtype=np.float32).reshape(7, 2)
LABEL = np.arange(7, dtype=np.float32)


@pytest.mark.parametrize("case", MX["ndarrayiter"],
                         ids=lambda c: "bs%(batch_size)d-%(last_batch_handle)s" % c["kwargs"])
def test_ndarrayiter_matches_mxnet(case):
    it = io.NDArrayIter(DATA, LABEL, **case["kwargs"])
    assert descs(it.provide_data) == case["provide_data"]
    assert descs(it.provide_label) == case["provide_label"]
    assert batches(it, 3) == case["epochs"]


def test_ndarrayiter_shuffle_matches_mxnet():
    np.random.seed(MX["ndarrayiter_shuffle"]["seed"])
    it = io.NDArrayIter(DATA, LABEL, batch_size=3, shuffle=True)
    assert batches(it, 2) == MX["ndarrayiter_shuffle"]["epochs"]


def test_ndarrayiter_names_and_inputs():
    multi = io.NDArrayIter({"b": DATA, "a": NDArray(DATA[:, :1].copy())}, [LABEL, LABEL * 2], batch_size=4)
    assert descs(multi.provide_data) == MX["ndarrayiter_multi"]["provide_data"]
    assert descs(multi.provide_label) == MX["ndarrayiter_multi"]["provide_label"]
    assert batches(multi, 1) == MX["ndarrayiter_multi"]["epochs"]
    listed = io.NDArrayIter([DATA, DATA], batch_size=2, data_name="x", label_name="y")
    assert descs(listed.provide_data) == MX["ndarrayiter_list"]["provide_data"]
    assert descs(listed.provide_label) == MX["ndarrayiter_list"]["provide_label"]
    batch = next(iter(io.NDArrayIter(NDArray(DATA.astype(np.int64)), batch_size=2)))
    assert batch.data[0].dtype == np.int64 and batch.index is None and batch.label == []


def test_shuffles_follow_numpys_global_rng():
    """NDArrayIter shuffles with numpy's global RNG as MXNet does: np.random.seed reproduces the order even after
    an mx.random.seed (which seeds numpy too here, so mx.random.seed alone reproduces it as well)."""
    import onnxsym as mx
    orders = []
    for seeding in (lambda: np.random.seed(11), lambda: (mx.random.seed(5), np.random.seed(11)),
                    lambda: mx.random.seed(3), lambda: mx.random.seed(3)):
        seeding()
        it = io.NDArrayIter(DATA, LABEL, batch_size=7, shuffle=True)
        orders.append(next(it).label[0].asnumpy())
    np.testing.assert_array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders[2], orders[3])
    assert sorted(orders[0].tolist()) == LABEL.tolist() and orders[0].tolist() != LABEL.tolist()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(label=np.arange(4)), MXNetError, "softmax_label: 4"),
    (dict(last_batch_handle="foo"), ValueError, "last_batch_handle"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(data=[]), ValueError, "empty"),
    (dict(data=(1, 2)), TypeError, "Input must be"),
])
def test_ndarrayiter_errors(kwargs, error, message):
    kwargs = {"data": DATA, **kwargs}
    with pytest.raises(error, match=message):
        io.NDArrayIter(**kwargs)


def test_databatch_and_datadesc():
    desc = io.DataDesc("x", (2, 3))
    assert repr(desc) == "DataDesc[x,(2, 3),<class 'numpy.float32'>,NCHW]" and desc == ("x", (2, 3))
    assert io.DataDesc.get_batch_axis("TNC") == 1 and io.DataDesc.get_batch_axis(None) == 0
    assert io.DataDesc.get_list([("a", (1,))], [("a", np.int32)])[0].dtype == np.int32
    batch = io.DataBatch([NDArray(DATA)], [NDArray(LABEL)], pad=1)
    assert str(batch) == "DataBatch: data shapes: [(7, 2)] label shapes: [(7,)]"
    with pytest.raises(TypeError):
        io.DataBatch(NDArray(DATA))


def test_resize_iter():
    inner = io.NDArrayIter(DATA, LABEL, batch_size=3, last_batch_handle="discard")
    resized = io.ResizeIter(inner, 5)
    epoch = [b.label[0].asnumpy()[0] for b in resized]
    assert epoch == [0, 3, 0, 3, 0] and resized.provide_data == inner.provide_data
    resized.reset()
    assert [b.label[0].asnumpy()[0] for b in resized] == [0, 3, 0, 3, 0]
    kept = io.ResizeIter(io.NDArrayIter(DATA, LABEL, batch_size=3, last_batch_handle="discard"), 1,
                         reset_internal=False)
    assert [b.label[0].asnumpy()[0] for b in kept] == [0]
    kept.reset()
    assert [b.label[0].asnumpy()[0] for b in kept] == [3]


def test_prefetching_iter_concatenates_and_renames():
    first = io.NDArrayIter({"data": DATA}, LABEL, batch_size=3)
    second = io.NDArrayIter({"data": DATA * 10}, LABEL, batch_size=3)
    it = io.PrefetchingIter([first, second], rename_data=[{"data": "d1"}, {"data": "d2"}])
    assert [d.name for d in it.provide_data] == ["d1", "d2"] and it.batch_size == 3
    for _ in range(2):
        got = batches(it, 1)[0]
        want = batches(io.NDArrayIter({"a": DATA, "b": DATA * 10}, [LABEL, LABEL], batch_size=3), 1)[0]
        assert got == want
    it.close()


def test_prefetching_iter_reraises_worker_errors_and_resets():
    class Failing(io.DataIter):
        def __init__(self):
            super().__init__(2)
            self.provide_data = [io.DataDesc("data", (2, 1))]
            self.provide_label = []
            self.calls = 0

        def next(self):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("disk on fire")
            return io.DataBatch([NDArray(np.zeros((2, 1), np.float32))], [], pad=0)

        def reset(self):
            self.calls = 0

    it = io.PrefetchingIter(Failing())
    assert it.next().data[0].shape == (2, 1)
    with pytest.raises(RuntimeError, match="disk on fire"):
        it.next()
    assert it.next().data[0].shape == (2, 1)  # the worker survives and keeps fetching
    finished = threading.Event()

    def reset_twice():
        it.reset()
        it.reset()
        finished.set()

    threading.Thread(target=reset_twice, daemon=True).start()
    assert finished.wait(5), "reset hung"
    it.close()


def test_prefetching_iter_mismatch():
    it = io.PrefetchingIter([io.NDArrayIter(DATA, batch_size=3), io.NDArrayIter(DATA[:6], batch_size=3)])
    it.next()
    it.next()
    with pytest.raises(MXNetError, match="mismatch"):
        it.next()
    it.close()


def write_csv(tmp_path):
    np.savetxt(tmp_path / "d.csv", MX["csv_rows"], delimiter=",", fmt="%g")
    np.savetxt(tmp_path / "l.csv", MX["csv_labels"], delimiter=",", fmt="%g")
    return str(tmp_path / "d.csv"), str(tmp_path / "l.csv")


def strip_uninitialised(epochs, kwargs):
    """MXNet pads round_batch=False batches with whatever its buffer held; where that was never written
    (batch_size > rows) it is uninitialised memory, so compare the real rows only."""
    batch_size = kwargs["batch_size"]
    if kwargs.get("round_batch", True):
        return epochs
    for epoch in epochs:
        for batch in epoch:
            keep = batch_size - batch["pad"] if batch["pad"] and batch_size > len(MX["csv_rows"]) else batch_size
            batch["data"] = [d[:keep] for d in batch["data"]]
            batch["label"] = [lab[:keep] for lab in batch["label"]]
            batch["index"] = batch["index"][:keep]
    return epochs


@pytest.mark.parametrize("case", MX["csviter"], ids=lambda c: json.dumps(c["kwargs"]))
def test_csviter_matches_mxnet(case, tmp_path):
    data_csv, label_csv = write_csv(tmp_path)
    it = io.CSVIter(data_csv=data_csv, data_shape=(2,), label_csv=label_csv, **case["kwargs"])
    assert descs(it.provide_data) == case["provide_data"]
    assert descs(it.provide_label) == case["provide_label"]
    got = strip_uninitialised(batches(it, len(case["epochs"])), case["kwargs"])
    assert got == strip_uninitialised(case["epochs"], case["kwargs"])


def test_csviter_shapes_folder_and_errors(tmp_path):
    data_csv, label_csv = write_csv(tmp_path)
    it = io.CSVIter(data_csv=data_csv, data_shape=(1, 2), batch_size=2)
    batch = it.next()
    assert batch.data[0].shape == (2, 1, 2) and batch.label[0].asnumpy().tolist() == [0, 0]
    # getdata()/getlabel() of MXNet's C++ iterators give one array each (NDArrayIter's give lists)
    assert it.getdata() is batch.data[0] and it.getlabel() is batch.label[0]
    with pytest.raises(MXNetError, match="bigger than batch size"):
        batches(io.CSVIter(data_csv=data_csv, data_shape=(2,), batch_size=10), 3)
    with pytest.raises(MXNetError, match="data_shape"):
        io.CSVIter(data_csv=data_csv, data_shape=(3,))
    (tmp_path / "short.csv").write_text("1\n2\n")
    with pytest.raises(MXNetError, match="label_csv has 2 rows"):
        io.CSVIter(data_csv=data_csv, data_shape=(2,), label_csv=str(tmp_path / "short.csv"))
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("1,2\n3,4\n")
    (folder / "b.csv").write_text("5,6\n")
    assert io.CSVIter(data_csv=str(folder), data_shape=(2,), batch_size=3).next().data[0].asnumpy()[:, 0].tolist() \
        == [1, 3, 5]


def write_mnist(folder, compress=False):
    n, rows, cols = MX["mnist_shape"]
    images = struct.pack(">IIII", 2051, n, rows, cols) + bytes(MX["mnist_pixels"])
    labels = struct.pack(">II", 2049, n) + bytes(MX["mnist_labels"])
    paths = []
    for name, raw in (("img", images), ("lab", labels)):
        path = os.path.join(folder, name + (".gz" if compress else ""))
        with open(path, "wb") as out:
            out.write(gzip.compress(raw) if compress else raw)
        paths.append(path)
    return paths


@pytest.mark.parametrize("case", MX["mnistiter"], ids=lambda c: json.dumps(c["kwargs"]))
def test_mnistiter_matches_mxnet(case, tmp_path):
    image, label = write_mnist(tmp_path)
    it = io.MNISTIter(image=image, label=label, shuffle=False, silent=True, **case["kwargs"])
    assert descs(it.provide_data) == case["provide_data"]
    assert descs(it.provide_label) == case["provide_label"]
    assert batches(it, 2) == case["epochs"]


def test_mnistiter_gzip_shuffle_and_errors(tmp_path):
    write_mnist(tmp_path, compress=True)
    plain = io.MNISTIter(image=str(tmp_path / "img"), label=str(tmp_path / "lab"), batch_size=10, shuffle=False,
                         silent=True)  # finds img.gz / lab.gz
    shuffled = io.MNISTIter(image=str(tmp_path / "img.gz"), label=str(tmp_path / "lab.gz"), batch_size=10, seed=4,
                            silent=True)
    a, b = plain.next(), shuffled.next()
    order = np.random.RandomState(4).permutation(10)
    np.testing.assert_array_equal(b.data[0].asnumpy(), a.data[0].asnumpy()[order])
    np.testing.assert_array_equal(b.label[0].asnumpy(), np.array(MX["mnist_labels"], np.float32)[order])
    with pytest.raises(MXNetError, match=r"not found.*never downloads.*put it at .*missing-images"):
        io.MNISTIter(image=str(tmp_path / "missing-images"), label=str(tmp_path / "lab"))
    with pytest.raises(MXNetError, match="batch_size 11 is larger"):
        io.MNISTIter(image=str(tmp_path / "img"), label=str(tmp_path / "lab"), batch_size=11, silent=True)
    with pytest.raises(MXNetError, match="not an MNIST label file"):
        io.MNISTIter(image=str(tmp_path / "img"), label=str(tmp_path / "img"), silent=True)


def test_prefetching_iter_does_not_hang_on_slow_iterator():
    class Slow(io.NDArrayIter):
        def next(self):
            time.sleep(0.01)
            return super().next()

    it = io.PrefetchingIter(Slow(DATA, LABEL, batch_size=2))
    it.next()
    it.reset()
    assert len(list(it)) == 4
    it.close()


def test_unused_prefetching_iter_stops_its_thread():
    it = io.PrefetchingIter(io.NDArrayIter(DATA, LABEL, batch_size=2))
    thread = it._worker.thread
    del it
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_get_mnist_iterator_says_where_to_put_the_files(tmp_path):
    import subprocess
    import sys
    # as in MXNet, `import onnxsym as mx` alone makes mx.test_utils available (a fresh process, nothing else imported)
    script = ("import onnxsym as mx\n"
              "try:\n    mx.test_utils.get_mnist_iterator(10, (1, 28, 28), path=%r)\n"
              "except mx.MXNetError as err:\n    print('MXNetError:', err)\n" % str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MXNetError:" in result.stdout and "train-images-idx3-ubyte" in result.stdout
