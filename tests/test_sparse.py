"""Sparse storage types (row_sparse, csr) against MXNet 1.9.1 itself: the cases in fixtures/sparse_cases.py run
here under onnxsym and were recorded under MXNet by fixtures/make_sparse_fixtures.py (mxnet/sparse_cases.json,
mxnet/sparse.params)."""
import builtins
import json
import os
import pickle

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.runtime import sparse
from onnxsym.runtime.sparse import BaseSparseNDArray

from .fixtures import sparse_cases

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet")
with open(os.path.join(HERE, "sparse_cases.json")) as _handle:
    MXNET = json.load(_handle)["cases"]

def _check(got, want, where):
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (where, got, want)
        for key in want:
            _check(got[key], want[key], "%s.%s" % (where, key))
    elif isinstance(want, list) and want and isinstance(want[0], dict):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for index, (g, w) in enumerate(zip(got, want)):
            _check(g, w, "%s[%d]" % (where, index))
    elif isinstance(want, list) and want and isinstance(want[0], (list, float, int)) and \
            not isinstance(want[0], bool):
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=2e-5,
                                   atol=1e-6, err_msg=where)
    else:
        assert got == want, (where, got, want)


@pytest.mark.parametrize("name", ["construction", "assignment", "operators", "kvstore"])
def test_arrays_operators_and_kvstore_match_mxnet(name):
    _check(getattr(sparse_cases, name)(mx), MXNET[name]["value"], name)


def test_errors_match_mxnet():
    """Each case raises MXNet's exception class or a subclass of it (MXNet raises a bare Exception where onnxsym
    raises an MXNetError with a message)."""
    got = sparse_cases.errors(mx)
    for case, want in MXNET["errors"].items():
        assert "error" in got[case], (case, got[case])
        assert want["error"] in _class_names(got[case]["error"]), (case, got[case], want)


def _class_names(name):
    """The names of the classes the onnxsym exception class `name` derives from, itself included."""
    cls = getattr(sparse, name, None) or getattr(mx, name, None) or getattr(builtins, name)
    return {c.__name__ for c in cls.__mro__}


@pytest.mark.parametrize("name", sorted(sparse_cases.OPTIMIZERS))
def test_row_sparse_gradient_updates_match_mxnet(name):
    """Lazy updates (SGD, Adam with lazy_update, Ftrl, AdaGrad's sparse kernel) touch only the gradient's rows;
    std updates and optimizers without a sparse kernel (RMSProp) update every row."""
    _check(sparse_cases.optimizer(mx, name), MXNET["optimizer_" + name]["value"], name)


def test_lazy_update_is_what_the_fixture_tells_apart():
    """The recorded lazy and std SGD runs differ (a row the gradients never store keeps its value only in the lazy
    one), so comparing against them can fail."""
    lazy, std = np.asarray(MXNET["optimizer_sgd_lazy"]["value"]), np.asarray(MXNET["optimizer_sgd_std"]["value"])
    start = np.random.RandomState(3).uniform(-1, 1, (5, 3)).astype(np.float32)
    np.testing.assert_array_equal(lazy[2], start[2])
    assert not np.allclose(std[2], start[2])


def test_retain_method():
    rsp = mx.nd.sparse.row_sparse_array(([[1., 2.], [3., 4.]], [0, 2]), shape=(4, 2))
    kept = rsp.retain(mx.nd.array([2, 3]))
    assert kept.stype == "row_sparse" and kept.indices.asnumpy().tolist() == [2, 3]
    np.testing.assert_array_equal(kept.asnumpy(), [[0, 0], [0, 0], [3, 4], [0, 0]])
    symbol = mx.sym.sparse.retain(mx.sym.var("d"), mx.sym.var("i"))
    out = symbol.eval(d=rsp.tostype("default"), i=mx.nd.array([0]))[0]
    np.testing.assert_array_equal(out.asnumpy(), [[1, 2], [0, 0], [0, 0], [0, 0]])


@pytest.mark.parametrize("name", ["factorization_machine", "sparse_embedding"])
def test_modules_with_row_sparse_parameters_match_mxnet(name):
    _check(getattr(sparse_cases, name)(mx), MXNET[name]["value"], name)


@pytest.mark.parametrize("name, threshold", [("compressed_module_0.05", 0.05), ("compressed_module_0.2", 0.2),
                                             ("uncompressed_module", None)])
def test_module_gradients_through_2bit_compression_match_mxnet(name, threshold):
    """Module(compression_params=...) on two devices with kvstore 'device': the devices' gradients are quantized
    with per-device residuals before they are summed, as MXNet's kvstore does."""
    _check(sparse_cases.compressed_module(mx, threshold), MXNET[name]["value"], name)


def test_compression_changes_the_module_numbers():
    plain, compressed = MXNET["uncompressed_module"]["value"], MXNET["compressed_module_0.2"]["value"]
    assert not np.allclose(plain[-1]["fc_weight"], compressed[-1]["fc_weight"])


def test_loads_and_saves_mxnet_sparse_files_byte_for_byte(tmp_path):
    path = os.path.join(HERE, "sparse.params")
    loaded = mx.nd.load(path)
    _check({n: sparse_cases._show(a) for n, a in sorted(loaded.items())}, MXNET["saved_file"]["value"], "load")
    # the row_sparse array keeps the zero row MXNet stored (indices [1, 3])
    assert loaded["rsp"].indices.asnumpy().tolist() == [1, 3]
    mx.nd.save(str(tmp_path / "again.params"), loaded)
    with open(path, "rb") as mxnet_file, open(tmp_path / "again.params", "rb") as ours:
        assert ours.read() == mxnet_file.read()
    written = sparse_cases.saved_file(mx, str(tmp_path / "written.params"))
    with open(path, "rb") as mxnet_file, open(tmp_path / "written.params", "rb") as ours:
        assert ours.read() == mxnet_file.read()
    _check(written, MXNET["saved_file"]["value"], "save")


def test_pickle_round_trip_keeps_storage():
    rsp = mx.nd.sparse.row_sparse_array(([[1., 2.], [0., 0.]], [0, 2]), shape=(3, 2))
    csr = mx.nd.sparse.csr_matrix(([1., 0.], [1, 0], [0, 1, 2]), shape=(2, 2))
    for array in (rsp, csr):
        back = pickle.loads(pickle.dumps(array))
        assert type(back) is type(array)
        _check(sparse_cases._show(back), sparse_cases._show(array), "pickle")


def test_damaged_sparse_files_raise_naming_the_problem(tmp_path):
    with open(os.path.join(HERE, "sparse.params"), "rb") as handle:
        good = bytearray(handle.read())
    # the first array is the csr (names sorted: csr, dense, empty, rsp); its column indices follow its data
    bad = bytearray(good)
    marker = np.array([0, 2, 1], np.int64).tobytes()
    at = bytes(bad).index(marker)
    bad[at:at + 8] = np.array([7], np.int64).tobytes()       # a column index beyond the 3 columns
    (tmp_path / "bad.params").write_bytes(bytes(bad))
    with pytest.raises(mx.MXNetError, match="column indices"):
        mx.nd.load(str(tmp_path / "bad.params"))
    (tmp_path / "cut.params").write_bytes(bytes(good[:100]))
    with pytest.raises(mx.MXNetError, match="truncated|cut short"):
        mx.nd.load(str(tmp_path / "cut.params"))


def test_definitions_are_checked():
    with pytest.raises(mx.MXNetError, match="sorted"):
        mx.nd.sparse.row_sparse_array(([[1.], [2.]], [2, 1]), shape=(3, 1))
    with pytest.raises(mx.MXNetError, match="within"):
        mx.nd.sparse.row_sparse_array(([[1.]], [5]), shape=(3, 1))
    with pytest.raises(mx.MXNetError, match="indptr"):
        mx.nd.sparse.csr_matrix(([1.], [0], [0, 2]), shape=(1, 2))
    with pytest.raises(mx.MXNetError, match="unique"):
        mx.nd.sparse.csr_matrix(([1., 2.], [1, 1], [0, 2]), shape=(1, 2))
    with pytest.raises(ValueError, match="Shape mismatch"):
        mx.nd.sparse.row_sparse_array(np.ones((2, 2)), shape=(3, 2))
    with pytest.raises(mx.MXNetError, match="storage type"):
        mx.nd.ones((2, 2)).tostype("coo")


def test_scipy_and_rand_sparse_ndarray():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    matrix = scipy_sparse.random(6, 5, density=0.4, format="csr", random_state=0)
    array = mx.nd.array(matrix)
    assert array.stype == "csr" and array.dtype == np.float64
    np.testing.assert_array_equal(array.asnumpy(), matrix.toarray())
    np.testing.assert_array_equal(array.asscipy().toarray(), matrix.toarray())
    np.random.seed(0)
    rsp, (values, rows) = mx.test_utils.rand_sparse_ndarray((8, 3), "row_sparse", density=0.5)
    assert rsp.indices.asnumpy().tolist() == list(rows)
    np.testing.assert_array_equal(rsp.data.asnumpy(), values)
    csr = mx.test_utils.rand_ndarray((20, 30), "csr", density=0.2)
    assert isinstance(csr, BaseSparseNDArray) and abs(csr.data.shape[0] - 120) <= 1
    powerlaw = mx.test_utils.rand_ndarray((5, 16), "csr", density=0.5, distribution="powerlaw")
    counts = np.diff(powerlaw.indptr.asnumpy())
    assert counts[2] == 2 * counts[1] and counts[3] == 2 * counts[2]


def test_ndarray_iter_batches_csr_rows():
    dense = np.zeros((6, 4), np.float32)
    dense[[0, 2, 3, 5], [1, 0, 3, 2]] = [1, 2, 3, 4]
    csr = mx.nd.array(dense).tostype("csr")
    with pytest.raises(NotImplementedError, match="discard"):
        mx.io.NDArrayIter(csr, np.arange(6), batch_size=4)
    batches = list(mx.io.NDArrayIter(csr, np.arange(6), batch_size=4, last_batch_handle="discard"))
    assert len(batches) == 1 and batches[0].data[0].stype == "csr"
    np.testing.assert_array_equal(batches[0].data[0].asnumpy(), dense[:4])
    np.random.seed(1)
    shuffled = mx.io.NDArrayIter(csr, np.arange(6, dtype=np.float32), batch_size=3, shuffle=True,
                                 last_batch_handle="discard")
    for batch in shuffled:
        order = batch.label[0].asnumpy().astype(int)
        np.testing.assert_array_equal(batch.data[0].asnumpy(), dense[order])


def test_mixed_dtype_module_updates_every_parameter():
    """A float64 parameter beside float32 ones: SGD updates it too (the float32 ones take a fast path).
    By hand: x = 1s, weights 1, bias 0 -> fc = 3, output 3 + sum(w64) = 6, label 0; LinearRegressionOutput's
    gradient (6 - 0) / 3 outputs = 2 per entry; w64's gradient 4 examples * 3 outputs * 2 = 24, lr 0.1 and
    rescale 1/4 -> 1 - 0.6 = 0.4, with MXNet's float32 operator parameters (lr float32(0.1) in float64) exactly
    1 - 24 * 0.25 * float32(0.1); fc_weight's 4 * 2 = 8 -> 1 - 0.2 = 0.8."""
    x = mx.sym.var("data")
    w64 = mx.sym.var("w64_weight", shape=(1, 3), dtype="float64")
    fc = mx.sym.FullyConnected(x, num_hidden=3, name="fc")
    out = mx.sym.LinearRegressionOutput(mx.sym.broadcast_add(fc, mx.sym.Cast(mx.sym.sum(w64), dtype="float32")),
                                        name="out")
    it = mx.io.NDArrayIter(np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32), batch_size=4,
                           label_name="out_label")
    mod = mx.mod.Module(out, label_names=["out_label"])
    mod.bind(it.provide_data, it.provide_label)
    mod.init_params(mx.init.One())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    mod.forward(next(iter(it)), is_train=True)
    mod.backward()
    mod.update()
    arg, _ = mod.get_params()
    np.testing.assert_array_equal(arg["w64_weight"].asnumpy(), 1 - np.float64(np.float32(0.1)) * 0.25 * 24)
    np.testing.assert_allclose(arg["fc_weight"].asnumpy(), 0.8, rtol=1e-6)


def test_executors_with_sparse_arrays_reshape_and_count_bytes():
    """Executor.reshape gives a sparse argument of a new shape its storage type again; _total_exec_bytes counts
    sparse arrays by their dense size (their memory here)."""
    x = mx.sym.var("data", stype="csr")
    w = mx.sym.var("w", shape=(6, 2), stype="row_sparse")
    exe = mx.sym.dot(x, w).simple_bind(mx.cpu(), data=(4, 6), w=(6, 2))
    assert exe.arg_dict["data"].stype == "csr" and exe.arg_dict["w"].stype == "row_sparse"
    assert exe.grad_dict["w"].stype == "row_sparse" and exe.grad_dict["data"].stype == "default"
    exe.arg_dict["data"][:] = mx.nd.array(np.eye(4, 6))
    exe.arg_dict["w"][:] = mx.nd.array(np.arange(12).reshape(6, 2))
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((4, 2)))
    assert exe.grad_dict["w"].indices.asnumpy().tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(exe.outputs[0].asnumpy(), np.arange(8).reshape(4, 2))
    wider = exe.reshape(allow_up_sizing=True, data=(8, 6), w=(6, 2))
    assert wider.arg_dict["data"].stype == "csr" and wider.arg_dict["data"].shape == (8, 6)
    assert wider.arg_dict["w"] is exe.arg_dict["w"]
    mod = mx.mod.Module(mx.sym.LinearRegressionOutput(mx.sym.dot(x, w), name="out"), label_names=["out_label"])
    mod.bind([("data", (4, 6))], [("out_label", (4, 2))])
    # data, w and its gradient, the label, the output (float32)
    assert mod._exec_group._total_exec_bytes == 4 * (4 * 6 + 6 * 2 * 2 + 4 * 2 + 4 * 2)
