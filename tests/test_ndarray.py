"""NDArray: creation, dtype rules, repr, indexing, arithmetic and imperative ops, against numpy."""
import numpy as np
import pytest

import onnxsym as mx


def test_creation_and_dtype_rules():
    assert mx.nd.array([[1, 2]]).dtype == np.float32          # lists become float32
    assert mx.nd.array(np.arange(3)).dtype == np.float32      # so do numpy arrays, as in MXNet 1.x
    assert mx.nd.array(np.arange(3), dtype="int32").dtype == np.int32
    assert mx.nd.array(mx.nd.array([1], dtype=np.float64)).dtype == np.float64   # NDArray sources keep theirs
    assert mx.nd.zeros((2, 3)).asnumpy().tolist() == [[0] * 3] * 2
    assert mx.nd.ones(2, dtype="float16").dtype == np.float16
    assert mx.nd.full((2,), 7).asnumpy().tolist() == [7, 7]
    assert mx.nd.empty((1, 2)).shape == (1, 2)
    np.testing.assert_array_equal(mx.nd.arange(0, 3, 0.5).asnumpy(), np.arange(0, 3, 0.5, dtype=np.float32))
    np.testing.assert_array_equal(mx.nd.arange(3, repeat=2).asnumpy(), [0, 0, 1, 1, 2, 2])
    a = mx.nd.array([[1, 2], [3, 4]])
    assert (a.shape, a.size, a.ndim, a.context, a.stype) == ((2, 2), 4, 2, mx.cpu(0), "default")
    with pytest.raises(TypeError):
        mx.nd.array([[1, 2], [3]])


def test_repr_like_mxnet():
    assert repr(mx.nd.ones((1, 2))) == "\n[[1. 1.]]\n<NDArray 1x2 @cpu(0)>"
    assert repr(mx.nd.zeros(3)) == "\n[0. 0. 0.]\n<NDArray 3 @cpu(0)>"


def test_conversions():
    a = mx.nd.array([[1.5, 2], [3, 4]])
    n = a.asnumpy()
    n[0, 0] = 100
    assert a.asnumpy()[0, 0] == 1.5                           # asnumpy copies
    assert mx.nd.array([3]).asscalar() == 3
    with pytest.raises(ValueError, match="not a scalar"):
        a.asscalar()
    b = a.copy()
    b[:] = 0
    assert a.asnumpy().sum() == 10.5
    c = mx.nd.zeros((2, 2))
    assert a.copyto(c) is c and c.asnumpy().sum() == 10.5
    with pytest.raises(ValueError, match="shape"):
        a.copyto(mx.nd.zeros((3,)))
    assert a.as_in_context(mx.cpu()) is a
    assert a.astype("int32").dtype == np.int32 and a.astype("int32").asnumpy()[0, 0] == 1
    assert a.astype(np.float32, copy=False) is a


def test_setitem_getitem():
    a = mx.nd.zeros((3, 4))
    a[:] = 5
    assert a.asnumpy().sum() == 60
    a[1] = np.arange(4)
    a[2, 1:3] = mx.nd.array([7, 8])
    expected = np.full((3, 4), 5, np.float32)
    expected[1] = np.arange(4)
    expected[2, 1:3] = [7, 8]
    np.testing.assert_array_equal(a.asnumpy(), expected)
    row = a[1]
    row[:] = -1                                                # basic slices on axis 0 are views
    assert a.asnumpy()[1].tolist() == [-1] * 4
    assert a[0:2].shape == (2, 4)
    assert a[1, 2].shape == (1,)
    with pytest.raises(ValueError, match="shape"):
        a[:] = np.ones((2, 2))


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "%", "==", "!=", ">", ">=", "<", "<="])
def test_arithmetic_matches_numpy(op):
    rng = np.random.RandomState(0)
    x = rng.uniform(0.5, 2, (2, 3)).astype(np.float32)
    y = rng.uniform(0.5, 2, (1, 3)).astype(np.float32)
    fn = eval("lambda a, b: a %s b" % op)
    a, b = mx.nd.array(x), mx.nd.array(y)
    np.testing.assert_allclose(fn(a, b).asnumpy(), fn(x, y).astype(np.float32), rtol=1e-6)     # broadcasting
    np.testing.assert_allclose(fn(a, 1.5).asnumpy(), fn(x, np.float32(1.5)).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(fn(1.5, a).asnumpy(), fn(np.float32(1.5), x).astype(np.float32), rtol=1e-6)
    assert fn(a, b).dtype == np.float32


def test_inplace_and_unary():
    a = mx.nd.array([1.0, -2.0])
    buffer = a.handle
    a += 1
    a *= mx.nd.array([2.0, 2.0])
    assert a.handle is buffer and a.asnumpy().tolist() == [4.0, -2.0]
    assert (-a).asnumpy().tolist() == [-4.0, 2.0] and abs(a).asnumpy().tolist() == [4.0, 2.0]
    np.testing.assert_allclose(a.exp().asnumpy(), np.exp([4.0, -2.0]), rtol=1e-6)
    with pytest.raises(ValueError):
        bool(mx.nd.ones(2))
    with pytest.raises(TypeError):
        mx.nd.ones(2) + "x"


def test_imperative_ops_share_the_registry():
    x = np.random.RandomState(1).uniform(-1, 1, (4, 5)).astype(np.float32)
    w = np.random.RandomState(2).uniform(-1, 1, (3, 5)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    out = mx.nd.FullyConnected(mx.nd.array(x), mx.nd.array(w), mx.nd.array(b), num_hidden=3)
    np.testing.assert_allclose(out.asnumpy(), x @ w.T + b, rtol=1e-5)
    np.testing.assert_allclose(mx.nd.relu(mx.nd.array(x)).asnumpy(), np.maximum(x, 0))
    target = mx.nd.zeros((4, 5))
    mx.nd.sigmoid(mx.nd.array(x), out=target)
    np.testing.assert_allclose(target.asnumpy(), 1 / (1 + np.exp(-x)), rtol=1e-6)
    with pytest.raises(mx.MXNetError, match="weight"):
        mx.nd.FullyConnected(mx.nd.array(x), num_hidden=3)


def test_gpu_context_without_cuda_is_a_clear_error():
    if mx.num_gpus():
        pytest.skip("a CUDA-enabled onnxruntime is installed")
    with pytest.raises(mx.MXNetError, match="CUDAExecutionProvider"):
        mx.nd.zeros((2,), ctx=mx.gpu(0))


def test_context_objects():
    assert str(mx.cpu()) == "cpu(0)" and mx.gpu(1).device_id == 1 and mx.gpu(1).device_type == "gpu"
    assert mx.current_context() == mx.cpu()
    with mx.Context("cpu", 2):
        assert mx.current_context() == mx.cpu(2)
    assert mx.current_context() == mx.cpu(0)


def test_creation_into_out_and_inplace_views():
    """MXNet's test_output / test_ndarray_flatten: nd.zeros/ones/full write into `out` (they ignored it and left
    `out` unchanged); flatten/expand_dims/squeeze(inplace=True) are views of the same buffer, the default a copy."""
    out = mx.nd.array([[5, 5], [5, 5]])
    assert mx.nd.ones((2, 2), out=out) is out and out.asnumpy().tolist() == [[1, 1], [1, 1]]
    mx.nd.zeros((2, 2), out=out)
    assert out.asnumpy().tolist() == [[0, 0], [0, 0]]
    mx.nd.full((2, 2), 2, out=out)
    assert out.asnumpy().tolist() == [[2, 2], [2, 2]]
    with pytest.raises(mx.base.MXNetError, match="out has shape"):
        mx.nd.ones((3,), out=out)
    tensor = (mx.nd.arange(30) + 1).reshape(2, 3, 5)
    views = [tensor.flatten(inplace=True), tensor.expand_dims(1, inplace=True)]
    copies = [tensor.flatten(), tensor.expand_dims(-1)]
    assert [v.shape for v in views] == [(2, 15), (2, 1, 3, 5)] and copies[1].shape == (2, 3, 5, 1)
    tensor[0] = -1
    assert all(v.asnumpy().min() == -1 for v in views) and all(c.asnumpy().min() == 1 for c in copies)
    column = mx.nd.ones((2, 1, 3))
    squeezed = column.squeeze(inplace=True)
    column[:] = 7
    assert squeezed.shape == (2, 3) and squeezed.asnumpy().max() == 7
    assert column.squeeze(axis=1).shape == (2, 3)


def test_broadcast_to_method_as_mxnets():
    # MXNet's NDArray.broadcast_to takes any int sequence and adds leading axes; only size-1 axes broadcast
    x = mx.nd.array([[1.0], [2.0]])
    assert x.broadcast_to(np.array([3, 2, 4])).asnumpy().tolist() == [[[1.0] * 4, [2.0] * 4]] * 3
    assert x.broadcast_to([2, 5]).shape == (2, 5)
    with pytest.raises(ValueError, match="could not be broadcast"):
        x.broadcast_to((3, 4))
    with pytest.raises(ValueError, match="could not be broadcast"):
        x.broadcast_to((4,))


def test_pickles_as_mxnets_raw_bytes():
    import pickle
    for value in (np.arange(6, dtype=np.float16).reshape(2, 3), np.array([7], np.int64), np.array(2.5)):
        array = mx.nd.array(value, dtype=value.dtype)
        state = array.__getstate__()
        assert set(state) == {"handle"} and bytes(state["handle"][:4]) in (b"\xc9\xfa\x93\xf9", b"\xca\xfa\x93\xf9")
        back = pickle.loads(pickle.dumps(array))
        assert back.dtype == value.dtype and back.shape == array.shape
        np.testing.assert_array_equal(back.asnumpy(), array.asnumpy())
    # the state MXNet 1.9.1 pickles mx.nd.arange(1, ctx=mx.gpu()) as (MXNet's own test): loads on the cpu
    state = {"handle": bytearray(b"\xc9\xfa\x93\xf9\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
                                 b"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")}
    array = mx.nd.ones((3,))
    array.__setstate__(state)
    assert array.shape == (1,) and array.asnumpy().tolist() == [0.0]
    with pytest.raises(mx.MXNetError, match="truncated"):
        array.__setstate__({"handle": state["handle"][:-2]})


def test_from_numpy_shares_memory_as_mxnets():
    source = np.arange(6, dtype=np.float32).reshape(3, 2)
    shared = mx.nd.from_numpy(source)
    with pytest.raises(ValueError):
        source[0, 0] = 5                 # numpy's side becomes read-only
    shared[2, 1] = 100                   # writes go through the NDArray into the same memory
    assert source[2, 1] == 100 and shared.dtype == np.float32
    copied = mx.nd.from_numpy(np.arange(3, dtype=np.int64), zero_copy=False)
    assert copied.dtype == np.int64 and copied.asnumpy().tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="c-contiguous"):
        mx.nd.from_numpy(np.ones((2, 3)).T)
    assert mx.nd.from_numpy(np.zeros((1, 0, 2))).shape == (1, 0, 2)


def test_reshape_size_errors_and_scalar_arrays_as_mxnets():
    tensor = mx.nd.arange(30).reshape(2, 3, 5)
    with pytest.raises(ValueError, match="Cannot reshape array of size 30 into shape"):
        tensor.reshape((2, 3))           # MXNet: its Python layer refuses a smaller size (ValueError)
    with pytest.raises(mx.MXNetError):
        tensor.reshape((4, 10))
    # a 0-d source gives a 0-d array (MXNet 1.9.1)
    assert mx.nd.array(np.ones([])).shape == () and mx.nd.array(2.5).asnumpy() == 2.5


def test_numpy_conversion_and_single_element_assignment():
    a = mx.nd.array([50000001], dtype="int32")
    assert np.all(a == 50000001) and np.asarray(mx.nd.ones((2, 3))).shape == (2, 3)
    assert np.asarray(mx.nd.ones((2,)), dtype=np.float64).dtype == np.float64
    assert isinstance(np.float32(2) * mx.nd.ones(3), mx.nd.NDArray)     # numpy still defers to NDArray's operators
    b = mx.nd.zeros(1)
    b[0] = np.array([47.844944], dtype=np.float32)       # MXNet: x[0] of a 1-D array is a (1,) slot
    assert b.asnumpy()[0] == np.float32(47.844944)
    with pytest.raises(ValueError, match="cannot assign"):
        b[0] = np.array([1.0, 2.0])


def test_cached_op_runs_a_symbol_on_ndarrays_and_differentiates():
    sym = mx.sym.Convolution(kernel=(3, 3), num_filter=2, name="c") + 2
    op = mx.nd.CachedOp(sym)
    data, weight, bias = mx.nd.ones((1, 1, 4, 4)), mx.nd.ones((2, 1, 3, 3)), mx.nd.ones((2,))
    out = op(data, weight, bias)
    assert out.shape == (1, 2, 2, 2) and (out.asnumpy() == 12).all()       # 9 + bias 1 + 2
    target = mx.nd.zeros((1, 2, 2, 2))
    op(data, weight, bias * 2, out=target)
    assert (target.asnumpy() == 13).all()
    weight.attach_grad()
    with mx.autograd.record():
        loss = (op(data, weight, bias) * 2).sum()
    loss.backward()
    assert (weight.grad.asnumpy() == 8).all()       # 2 * (4 output positions) per weight
    x = mx.sym.var("x")
    two = mx.nd.CachedOp(mx.sym.Group([x * 2, x + 1]))
    a, b = two(mx.nd.array([1.0, 2.0]))
    assert a.asnumpy().tolist() == [2.0, 4.0] and b.asnumpy().tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="takes 3 arrays"):
        op(data, weight)


def test_basic_indexing_contiguity_predicate_matches_numpy():
    import itertools
    x = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    slices = [slice(None), slice(2), slice(1, 3), slice(None, None, 2), slice(0, 1), slice(None, None, -1)]
    for key in itertools.product(slices, repeat=3):
        assert mx.nd.NDArray._basic_indexing_slice_is_contiguous(key, x.shape) == x[key].flags.contiguous, key


def test_dlpack_round_trip_shares_memory():
    for dtype in ("float32", "int32", "float16"):
        a = mx.nd.array(np.arange(12).reshape(3, 4), dtype=dtype)
        b = mx.nd.from_dlpack(a.to_dlpack_for_read())
        assert b.dtype == np.dtype(dtype) and b.asnumpy().tolist() == a.asnumpy().tolist()
        c = mx.nd.from_dlpack(mx.nd.to_dlpack_for_write(a))
        c[0, 0] = 100                       # the same memory
        assert a.asnumpy()[0, 0] == 100
    assert mx.nd.from_dlpack(np.arange(3.0)).asnumpy().tolist() == [0.0, 1.0, 2.0]    # any __dlpack__ producer
