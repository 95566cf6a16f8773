"""onnxsym.test_utils against independent truths: numpy computations, MXNet 1.9's documented tolerances and the
exceptions MXNet raises. The names are those `from mxnet.test_utils import *` gives MXNet's unit tests."""
import math
import os
import sys

import numpy as np
import pytest

import onnxsym as mx
from onnxsym import test_utils as tu

# Names MXNet 1.9's unit tests (and their common.py) take from mxnet.test_utils, by import or through `import *`.
USED_BY_MXNET_TESTS = [
    "DummyIter", "almost_equal", "array", "assert_almost_equal", "assert_almost_equal_ignore_nan", "assert_exception",
    "check_consistency", "check_numeric_gradient", "check_symbolic_backward", "check_symbolic_forward",
    "compare_ndarray_tuple", "compare_optimizer", "default_context", "default_numeric_eps", "default_rtols",
    "discard_stderr", "environment", "gen_buckets_probs_with_ppf", "get_bz2_data", "get_cifar10", "get_mnist_ubyte",
    "is_aarch64_run", "logging", "np_reduce", "npt", "rand_ndarray", "rand_shape_nd", "rand_sparse_ndarray",
    "random_arrays", "random_sample", "retry", "rnd", "same", "same_array", "set_default_context", "sys", "use_np",
    "verify_generator", "np"]


def test_star_import_exports_what_mxnet_tests_use():
    namespace = {}
    exec("from onnxsym.test_utils import *", namespace)
    missing = [n for n in USED_BY_MXNET_TESTS if n not in namespace]
    assert not missing
    assert namespace["np"] is np and namespace["sys"] is sys


def test_default_tolerances_are_mxnets():
    assert tu.default_rtols()[np.dtype(np.float16)] == 1e-2 and tu.default_atols()[np.dtype(np.float16)] == 1e-1
    assert tu.default_rtols()[np.dtype(np.float32)] == 1e-4 and tu.default_atols()[np.dtype(np.float32)] == 1e-3
    assert tu.default_rtols()[np.dtype(np.float64)] == 1e-5 and tu.default_atols()[np.dtype(np.float64)] == 1e-20
    assert tu.default_rtols()[np.dtype(np.int64)] == 0 and tu.default_atols()[np.dtype(np.uint8)] == 0
    assert tu.default_numeric_eps() == {np.dtype(np.float16): 2 ** -6, np.dtype(np.float32): 2 ** -9,
                                        np.dtype(np.float64): 2 ** -14}
    assert tu.get_rtol() == 1e-5 and tu.get_atol() == 1e-20 and tu.get_rtol(0.5) == 0.5
    assert tu.get_rtol(dtype=np.float16) == 1e-2 and tu.get_etol() == 0


def test_tolerance_lookup_takes_the_less_precise_operand():
    half, single = np.zeros(2, np.float16), mx.nd.zeros((2,))
    assert tu.effective_dtype(single) == np.float32
    assert tu.get_tolerance(half, None, tu.default_rtols()) == 1e-2
    assert tu.get_tolerance(half, 0.3, tu.default_rtols()) == 0.3
    assert tu.get_tolerance(half, {np.dtype(np.float16): 0.2}, tu.default_rtols()) == 0.2
    assert tu.get_tolerance(half, {np.dtype(np.float32): 0.2}, tu.default_rtols()) == 1e-2
    assert tu.get_tols(half, single, None, None) == (1e-2, 1e-1)
    assert tu.get_tols(1.0, np.float64(1.0), None, None) == (1e-5, 1e-20)


def test_almost_equal_uses_float64_defaults():
    a = np.array([1.0, 2.0], np.float32)
    assert tu.almost_equal(a, a + 5e-6)
    assert not tu.almost_equal(a, a + 1e-3)          # float32's 1e-4 would pass; MXNet uses float64 defaults
    assert tu.almost_equal(a, a + 1e-3, rtol=1e-3)
    assert tu.almost_equal(mx.nd.array(a), a)
    assert tu.almost_equal(np.array([np.nan]), np.array([np.nan]), equal_nan=True)
    assert not tu.almost_equal(np.array([np.nan]), np.array([np.nan]))
    assert tu.almost_equal(np.ones((2, 3)), np.ones(3))
    with pytest.raises(AssertionError):
        tu.almost_equal(np.ones((2, 3)), np.ones(3), use_broadcast=False)


@pytest.mark.parametrize("dtype, ok, bad", [(np.float16, 0.0995, 0.13), (np.float32, 9.9e-4, 2e-3),
                                            (np.float64, 9.9e-6 * 1.0, 2e-5)])
def test_assert_almost_equal_per_dtype(dtype, ok, bad):
    b = np.ones(4, dtype)
    # |a-b| <= atol + rtol*|b| with b = 1
    tol = tu.default_atols()[np.dtype(dtype)] + tu.default_rtols()[np.dtype(dtype)]
    assert ok < tol < bad
    tu.assert_almost_equal((b + np.asarray(ok, dtype)).astype(dtype), b)
    with pytest.raises(AssertionError):
        tu.assert_almost_equal((b + np.asarray(bad, dtype)).astype(dtype), b)


def test_assert_almost_equal_options_and_report():
    a = np.arange(6.0).reshape(2, 3)
    b = a.copy()
    b[1, 2] += 1
    with pytest.raises(AssertionError) as info:
        tu.assert_almost_equal(a, b, names=("got", "want"))
    assert "(1, 2)" in str(info.value) and "got" in str(info.value) and "mismatch" in str(info.value)
    tu.assert_almost_equal(a, b, atol=1.01, rtol=0)
    tu.assert_almost_equal(a, b, rtol={np.dtype(np.float64): 0.2}, atol=0)
    tu.assert_almost_equal(mx.nd.array(a), a.astype(np.float32))
    tu.assert_almost_equal(np.ones((2, 3)), np.ones(3))
    with pytest.raises(AssertionError):
        tu.assert_almost_equal(np.ones((2, 3)), np.ones(3), use_broadcast=False)
    nan = np.array([1.0, np.nan])
    tu.assert_almost_equal(nan, nan, equal_nan=True)
    with pytest.raises(AssertionError):
        tu.assert_almost_equal(nan, nan)
    tu.assert_almost_equal(np.array([True, False]), np.array([True, False]))
    with pytest.raises(AssertionError):
        tu.assert_almost_equal(np.array([True]), np.array([False]))
    tu.assert_allclose(nan, nan)                        # equal_nan=True by default
    with pytest.raises(AssertionError):
        tu.assert_allclose(np.array([1.0]), np.array([1.0 + 1e-6]))   # rtol 1e-7, atol 0


def test_with_err_and_ignore_nan():
    a, b = np.zeros(10), np.zeros(10)
    b[0] = 1
    tu.assert_almost_equal_with_err(a, b, etol=0.1)
    with pytest.raises(AssertionError):
        tu.assert_almost_equal_with_err(a, b, etol=0.05)
    x, y = np.array([1.0, np.nan, 3.0]), np.array([1.0, 5.0, np.nan])
    tu.assert_almost_equal_ignore_nan(x, y)
    assert tu.almost_equal_ignore_nan(x, y) and not tu.almost_equal_ignore_nan(x, y + 1)
    assert np.isnan(x[1])                                # the inputs are not modified
    with pytest.raises(AssertionError):
        tu.assert_almost_equal_ignore_nan(x, np.array([2.0, 0.0, 0.0]))


def test_assert_exception():
    tu.assert_exception(int, ValueError, "x")
    with pytest.raises(AssertionError):
        tu.assert_exception(int, ValueError, "1")
    with pytest.raises(ZeroDivisionError):
        tu.assert_exception(lambda: 1 / 0, ValueError)


def test_same_np_reduce_collapse():
    assert tu.same(np.arange(3), mx.nd.array([0, 1, 2], dtype="int64"))
    assert not tu.same(np.arange(3), np.arange(3).reshape(1, 3))
    data = np.random.RandomState(0).rand(2, 3, 4)
    for axis in (None, 1, (0, 2), [2, 1]):
        for keepdims in (False, True):
            np.testing.assert_allclose(tu.np_reduce(data, axis, keepdims, np.sum),
                                       np.sum(data, axis=tuple(axis) if isinstance(axis, list) else axis,
                                              keepdims=keepdims))
    np.testing.assert_allclose(tu.collapse_sum_like(data, (3, 1)), data.sum(axis=(0, 2)).reshape(3, 1))
    tu.compare_ndarray_tuple((np.ones(2), (np.zeros(1),)), (np.ones(2), (np.zeros(1),)))
    with pytest.raises(AssertionError):
        tu.compare_ndarray_tuple((np.ones(2),), (np.zeros(2),))


def test_random_shapes_and_arrays():
    np.random.seed(3)
    for _ in range(20):
        shape = tu.rand_shape_nd(4, dim=3)
        assert len(shape) == 4 and all(1 <= d <= 3 for d in shape)
        assert all(1 <= d <= 5 for d in tu.rand_shape_2d(5, 5)) and len(tu.rand_shape_3d()) == 3
        assert all(0 <= d <= 2 for d in tu.rand_shape_nd(3, 2, allow_zero_size=True))
        x, y = tu.rand_coord_2d(0, 4, 10, 12)
        assert 0 <= x < 4 and 10 <= y < 12
    single = tu.random_arrays((2, 3))
    assert single.shape == (2, 3) and single.dtype == np.float32
    a, b = tu.random_arrays((1,), ())
    assert a.shape == (1,) and b.shape == ()
    (u,) = tu.random_uniform_arrays((100,), low=2, high=3)
    assert u.min() >= 2 and u.max() < 3
    population = list(range(10))
    sample = tu.random_sample(population, 4)
    assert len(set(sample)) == 4 and set(sample) <= set(population) and population == list(range(10))
    arr = tu.rand_ndarray((3, 4), "default", dtype=np.float16)
    assert isinstance(arr, mx.nd.NDArray) and arr.shape == (3, 4) and arr.dtype == np.float16
    assert tu.rand_ndarray((2,)).dtype == np.float32


@pytest.mark.parametrize("stype", ["csr", "row_sparse"])
def test_sparse_stypes_give_sparse_arrays(stype):
    np.random.seed(0)
    for array in (tu.rand_ndarray((4, 3), stype, density=0.5), tu.rand_sparse_ndarray((4, 3), stype)[0],
                  tu.create_sparse_array((4, 3), stype)):
        assert array.stype == stype and array.shape == (4, 3)
        stored = array.data.asnumpy()
        assert np.all(stored != 0) and np.count_nonzero(array.asnumpy()) == stored.size
    with pytest.raises(mx.MXNetError, match="coo"):
        tu.rand_ndarray((2, 2), "coo")


def test_shuffle_csr_and_large_tensor_builders():
    class Csr:
        indptr = np.array([0, 3, 5])
        indices = np.array([0, 1, 2, 3, 4])
    csr = Csr()
    tu.shuffle_csr_column_indices(csr)
    assert sorted(csr.indices[:3]) == [0, 1, 2] and sorted(csr.indices[3:]) == [3, 4]
    np.testing.assert_array_equal(tu.create_2d_tensor(3, 2).asnumpy(), [[0, 0], [1, 1], [2, 2]])
    assert tu.create_vector(4).asnumpy().tolist() == [0, 1, 2, 3] and tu.create_vector(4).dtype == np.int64
    np.testing.assert_array_equal(tu.get_identity_mat(3).asnumpy(), np.eye(3))
    assert tu.get_identity_mat_batch(2).shape == (2, 2, 2)


def test_chisquare_pvalue_matches_closed_forms():
    # 2 degrees of freedom: p = exp(-x/2); 1 degree: p = erfc(sqrt(x/2)); 4 degrees: exp(-x/2)(1 + x/2)
    stat, p = tu.chisquare_pvalue([60, 40, 100], [50, 50, 100])
    assert stat == pytest.approx(4.0) and p == pytest.approx(math.exp(-2.0), rel=1e-10)
    _, p = tu.chisquare_pvalue([55, 45], [50, 50])
    assert p == pytest.approx(math.erfc(math.sqrt(1.0 / 2)), rel=1e-10)
    for x in (0.5, 3.0, 30.0):   # series and continued-fraction branches
        obs = [100 + math.sqrt(x * 100), 100, 100, 100, 100]
        stat, p = tu.chisquare_pvalue(obs, [100] * 5)
        assert p == pytest.approx(math.exp(-stat / 2) * (1 + stat / 2), rel=1e-9)


def test_generator_checks():
    uniform_ppf = lambda q: q   # noqa: E731
    buckets, probs = tu.gen_buckets_probs_with_ppf(uniform_ppf, 4)
    assert buckets == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)] and probs == [0.25] * 4
    rng = np.random.RandomState(0)
    good = lambda n: rng.uniform(size=n)   # noqa: E731
    pvalues = tu.verify_generator(good, buckets, probs, nsamples=20000, nrepeat=5)
    assert len(pvalues) == 5
    with pytest.raises(AssertionError, match="Generator test fails"):
        tu.verify_generator(lambda n: rng.uniform(size=n) ** 2, buckets, probs, nsamples=20000)
    p, observed, expected = tu.chi_square_check(lambda n: rng.randint(0, 3, size=n), [0, 1, 2], [1 / 3.] * 3, 3000)
    assert observed.sum() == 3000 and expected.tolist() == [1000] * 3 and 0 <= p <= 1
    assert tu.mean_check(lambda n: rng.normal(0, 1, size=n), 0, 1, nsamples=100000)
    assert not tu.mean_check(lambda n: rng.normal(0.1, 1, size=n), 0, 1, nsamples=100000)
    assert tu.var_check(lambda n: rng.normal(0, 2, size=n), 2, nsamples=100000)
    assert not tu.var_check(lambda n: rng.normal(0, 2.2, size=n), 2, nsamples=100000)


def test_environment_context_manager_and_decorator():
    os.environ.pop("ONNXSYM_TU_A", None)
    os.environ["ONNXSYM_TU_B"] = "old"
    with tu.environment({"ONNXSYM_TU_A": "1", "ONNXSYM_TU_B": None}):
        assert os.environ["ONNXSYM_TU_A"] == "1" and "ONNXSYM_TU_B" not in os.environ
    assert "ONNXSYM_TU_A" not in os.environ and os.environ["ONNXSYM_TU_B"] == "old"
    with pytest.raises(RuntimeError):
        with tu.environment("ONNXSYM_TU_B", "new"):
            assert tu.getenv("ONNXSYM_TU_B") == "new"
            raise RuntimeError
    assert os.environ["ONNXSYM_TU_B"] == "old"

    @tu.environment("ONNXSYM_TU_A", "decorated")
    def read():
        return os.environ.get("ONNXSYM_TU_A")
    assert read() == "decorated" and "ONNXSYM_TU_A" not in os.environ
    del os.environ["ONNXSYM_TU_B"]
    with pytest.raises(AssertionError):
        with tu.environment("a", "b", "c"):
            pass


def test_retry_use_np_and_platform_flags(monkeypatch):
    calls = []

    def flaky():
        calls.append(1)
        assert len(calls) == 3
    tu.retry(3)(flaky)()
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(AssertionError):
        tu.retry(2)(flaky)()
    assert len(calls) == 2

    def f():
        return 1
    assert tu.use_np is mx.util.use_np      # one definition: NumPy arrays are refused when the function runs
    with pytest.raises(mx.MXNetError, match="no mx.np arrays"):
        tu.use_np(f)()
    monkeypatch.setenv("CD_JOB", "1")
    assert tu.is_cd_run()
    monkeypatch.setenv("CD_JOB", "0")
    assert not tu.is_cd_run()
    assert isinstance(tu.is_aarch64_run(), bool)
    assert list(tu.list_gpus()) == list(range(mx.num_gpus()))


def test_discard_stderr_silences_fd2(capfd):
    with tu.discard_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_default_context(monkeypatch):
    assert tu.default_context() == mx.current_context()
    try:
        tu.set_default_context(mx.cpu(1))
        assert tu.default_context() == mx.cpu(1) and mx.current_context() == mx.cpu(1)
    finally:
        tu.set_default_context(mx.cpu(0))
    assert tu.default_dtype() == np.float32


def test_download_skips_existing_and_reads_file_urls(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    target = tu.download(source.as_uri(), dirname=str(tmp_path / "out"))
    assert target == str(tmp_path / "out" / "src.bin") and open(target, "rb").read() == b"payload"
    source.write_bytes(b"changed")
    assert open(tu.download(source.as_uri(), dirname=str(tmp_path / "out")), "rb").read() == b"payload"
    tu.download(source.as_uri(), dirname=str(tmp_path / "out"), overwrite=True)
    assert open(target, "rb").read() == b"changed"
    with pytest.raises(Exception):
        tu.download((tmp_path / "absent").as_uri(), dirname=str(tmp_path), retries=1)


def test_get_bz2_data(tmp_path):
    import bz2
    archive = tmp_path / "data.txt.bz2"
    archive.write_bytes(bz2.compress(b"line1\nline2\n"))
    out = tmp_path / "out"
    tu.get_bz2_data(str(out), "data.txt", archive.as_uri(), "data.txt.bz2")
    assert (out / "data.txt").read_bytes() == b"line1\nline2\n" and not (out / "data.txt.bz2").exists()


def test_dummy_iter_repeats_the_first_batch():
    real = mx.io.NDArrayIter(np.arange(8, dtype=np.float32).reshape(4, 2), batch_size=2)
    dummy = tu.DummyIter(real)
    first, second = next(dummy), next(dummy)
    assert first is second and dummy.batch_size == 2 and dummy.provide_data == real.provide_data
    np.testing.assert_array_equal(first.data[0].asnumpy(), [[0, 1], [2, 3]])


def _fc():
    return mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc")


def test_simple_forward_and_check_speed():
    rng = np.random.RandomState(0)
    x, w, b = rng.rand(2, 4), rng.rand(3, 4), rng.rand(3)
    out = tu.simple_forward(_fc(), data=x, fc_weight=w, fc_bias=b)
    np.testing.assert_allclose(out, x @ w.T + b, rtol=1e-5)
    assert tu.check_speed(_fc(), N=2, data=(2, 4)) > 0
    assert tu.check_speed(_fc(), location={"data": x, "fc_weight": w, "fc_bias": b}, N=2, typ="forward") > 0
    with pytest.raises(ValueError):
        tu.check_speed(_fc(), N=1, typ="other", data=(2, 4))


def test_check_consistency_across_dtypes():
    ctx_list = [{"ctx": mx.cpu(0), "data": (2, 4), "type_dict": {"data": t}} for t in (np.float64, np.float32,
                                                                                          np.float16)]
    truth = tu.check_consistency(_fc(), ctx_list)
    assert set(truth) == {"fc_output", "data", "fc_weight", "fc_bias"}
    assert truth["fc_output"].dtype == np.float64          # the most precise executor is the truth
    # a symbol that differs beyond the tolerance fails, or only reports with raise_on_err=False
    other = mx.sym.FullyConnected(mx.sym.Variable("data") * 1.5, num_hidden=3, name="fc")
    ctx_list = ctx_list[:2]
    with pytest.raises(AssertionError):
        tu.check_consistency([_fc(), other], ctx_list, grad_req="null")
    tu.check_consistency([_fc(), other], ctx_list, raise_on_err=False)


def test_compare_optimizer():
    tu.compare_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9),
                         mx.optimizer.SGD(learning_rate=0.1, momentum=0.9), (3, 4), np.float32)
    with pytest.raises(AssertionError):
        tu.compare_optimizer(mx.optimizer.SGD(learning_rate=0.1), mx.optimizer.SGD(learning_rate=0.2), (3, 4),
                             np.float32)
    # a row_sparse gradient: lazy SGD (opt2, sparse) and dense SGD (opt1) agree without momentum and weight decay
    tu.compare_optimizer(mx.optimizer.SGD(learning_rate=0.1), mx.optimizer.SGD(learning_rate=0.1), (4, 3),
                         np.float32, g_stype="row_sparse")
    with pytest.raises(mx.MXNetError, match="coo"):
        tu.compare_optimizer(mx.optimizer.SGD(), mx.optimizer.SGD(), (3, 4), np.float32, g_stype="coo")


def test_same_array_and_symbol_structure():
    a = mx.nd.ones((2,))
    exe = _fc().simple_bind(mx.cpu(), data=(2, 4))
    assert tu.same_array(exe.arg_dict["data"], exe.arg_arrays[0])
    assert not tu.same_array(a, a.copy())
    assert a.asnumpy().tolist() == [1, 1]
    assert tu.same_symbol_structure(_fc(), _fc())
    assert not tu.same_symbol_structure(_fc(), mx.sym.Activation(mx.sym.Variable("data"), act_type="relu"))


def test_location_dtypes_as_mxnets_parse_location():
    # numpy arrays take `dtype` (ints included), "asnumpy" keeps each array's own dtype, NDArrays keep theirs
    x = mx.sym.Variable("x")
    y = mx.sym.Variable("y")
    sym = mx.sym.broadcast_add(x, y)
    ints = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = mx.test_utils.check_symbolic_forward(sym, [ints, ints], [2 * ints], dtype=np.float64)
    assert out[0].dtype == np.float64
    out = mx.test_utils.check_symbolic_forward(sym, [ints, ints], [2 * ints], dtype="asnumpy")
    assert out[0].dtype == np.int32
    halves = mx.nd.array(ints, dtype=np.float16)
    out = mx.test_utils.check_symbolic_forward(sym, [halves, halves], [2 * ints], dtype=np.float64)
    assert out[0].dtype == np.float16
    lengths = mx.sym.Variable("len")
    masked = mx.sym.SequenceMask(x, sequence_length=lengths, use_sequence_length=True)
    data = np.ones((3, 2, 2), np.float32)
    want = data.copy()
    want[1:, 0] = 0
    want[2:, 1] = 0
    mx.test_utils.check_symbolic_forward(masked, [data, np.array([1, 2], np.float32)], [want], dtype="asnumpy")
    mx.test_utils.check_symbolic_backward(masked, [data, np.array([1, 2], np.float32)], [data], [want],
                                          dtype="asnumpy")
    mx.test_utils.check_numeric_gradient(mx.sym.tanh(x), [np.linspace(-1, 1, 6).reshape(2, 3)], dtype="asnumpy")


def test_check_numeric_gradient_grad_nodes_as_reqs():
    # MXNet's dict form: 'write' and 'add' are checked against finite differences, 'null' must stay untouched
    x, y = mx.sym.Variable("x"), mx.sym.Variable("y")
    sym = x * y
    values = [np.array([[1.0, -2.0]]), np.array([[3.0, 0.5]])]
    grads = mx.test_utils.check_numeric_gradient(sym, values, grad_nodes={"x": "add", "y": "null"}, dtype=np.float64)
    assert set(grads) == {"x", "y"}
    np.testing.assert_allclose(grads["x"] / mx.test_utils.random_projection((1, 2)), values[1], rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid grad_req"):
        mx.test_utils.check_numeric_gradient(sym, values, grad_nodes={"x": "inplace"})
    # a wrong gradient is caught through 'add' too (BlockGrad: symbolic 0, numeric y)
    with pytest.raises(AssertionError):
        mx.test_utils.check_numeric_gradient(mx.sym.BlockGrad(x) * y, values, grad_nodes={"x": "add"},
                                             dtype=np.float64)
