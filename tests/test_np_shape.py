"""MXNet 1.x's NumPy shape semantics (mx.np_shape / set_np_shape / use_np_shape) against its legacy ones: -1 and
None mark unknown dimensions and shapes, 0 is a zero-size dimension, () a scalar (MXNet 1.9.1's test_infer_shape,
test_operator and test_symbol expectations)."""
import json

import numpy as np
import pytest

import onnxsym as mx


def test_partial_inference_notation():
    x, y = mx.sym.Variable("x"), mx.sym.Variable("y")
    z = mx.sym.dot(x, y)
    assert z.infer_shape_partial(x=(0, 3, 4), y=(4, 5))[1] == [(0, 3, 5)]
    assert mx.sym.sin(mx.sym.var("d")).infer_shape_partial()[:2] == ([()], [()])
    with mx.np_shape():
        assert z.infer_shape_partial(x=(-1, 3, 4), y=(4, 5))[1] == [(-1, 3, 5)]
        assert mx.sym.sin(mx.sym.var("d")).infer_shape_partial()[:2] == ([None], [None])
        b = mx.sym.batch_dot(x, y)
        assert b.infer_shape_partial(x=(-1, 3, 4), y=(-1, -1, 5))[1] == [None]
        assert mx.sym.transpose(x, axes=(0, 3, 2, 1)).infer_shape_partial(x=(-1, 3, 4, 5))[1] == [(-1, 5, 4, 3)]


def test_zero_size_and_scalar_arrays():
    with pytest.raises(mx.MXNetError):
        mx.nd.zeros(shape=())            # legacy: () is an unknown shape
    with pytest.raises(mx.MXNetError):
        mx.nd.ones((0, 1, 3, 0))
    with mx.np_shape():
        assert mx.nd.ones(shape=()).asnumpy() == 1 and mx.nd.zeros((0, 3)).shape == (0, 3)
        out = mx.nd.Concat(mx.nd.ones((0, 3, 4)), mx.nd.ones((5, 3, 4)), dim=0)
        assert out.shape == (5, 3, 4) and (out.asnumpy() == 1).all()
        assert mx.nd.Concat(mx.nd.ones((8, 0, 0)), mx.nd.ones((8, 0, 0)), dim=2).shape == (8, 0, 0)
        assert mx.nd.ones((0, 4)).sum(axis=0).asnumpy().tolist() == [0, 0, 0, 0]
        with pytest.raises(mx.MXNetError, match="zero-size axis"):
            mx.nd.zeros((5, 0)).max()
        assert mx.nd.contrib.index_array(mx.nd.ones(())).shape == (0,)


def test_json_records_the_semantics_and_legacy_files_load_inside_them():
    net = mx.sym.FullyConnected(mx.sym.var("data"), mx.sym.var("weight", shape=(128, 0)), num_hidden=128)
    legacy = json.loads(net.tojson())
    assert "is_np_shape" not in legacy["attrs"]
    with mx.np_shape():
        assert json.loads(net.tojson())["attrs"]["is_np_shape"] == ["int", 1]
        # a file of legacy semantics: its 0 is an unknown dimension even inside NumPy shape semantics
        loaded = mx.sym.load_json(json.dumps(legacy))
        args, outs, _ = loaded.infer_shape(data=(10, 784))
        assert args == [(10, 784), (128, 784), (128,)] and outs == [(10, 128)]


def test_fill_ops_learn_unknown_dimensions_from_the_graph():
    # MXNet's test_transpose_infer_shape_back: ones(shape=(-1, -1)) takes its shape from what it meets
    total = mx.sym.ones(shape=[2, 3]) + mx.sym.transpose(mx.sym.ones(shape=[-1, -1]))
    out = total.bind(mx.cpu(), args={}).forward()[0]
    assert out.shape == (2, 3) and (out.asnumpy() == 2).all()


def test_save_and_load_follow_the_semantics(tmp_path):
    # MXNet: NumPy-shape files (V3 records, scalars allowed) load only inside np_shape; legacy files whose arrays
    # have zero-size dimensions only outside it
    legacy_file, numpy_file = str(tmp_path / "legacy"), str(tmp_path / "numpy")
    mx.nd.save(legacy_file, [mx.nd.array(np.zeros((2, 0, 1))), mx.nd.array([[1, 2]])])
    assert [a.shape for a in mx.nd.load(legacy_file)] == [(2, 0, 1), (1, 2)]
    with mx.np_shape():
        with pytest.raises(mx.MXNetError, match="saved outside NumPy shape semantics"):
            mx.nd.load(legacy_file)
        mx.nd.save(numpy_file, [mx.nd.array(np.ones(())), mx.nd.array(np.zeros((0, 4)))])
        loaded = mx.nd.load(numpy_file)
        assert [a.shape for a in loaded] == [(), (0, 4)] and loaded[0].asnumpy() == 1
    with pytest.raises(mx.MXNetError, match="inside `with mx.np_shape"):
        mx.nd.load(numpy_file)


def test_a_zero_size_dimension_an_op_computes_is_real_in_legacy_semantics_too():
    # MXNet 1.x marks unknown dimensions -1 inside; only the user-facing shapes read 0 as unknown (its
    # test_one_hot: depth=0 gives an empty (..., 0) array)
    out = mx.nd.one_hot(mx.nd.array(np.ones((2, 3)), dtype="int32"), depth=0, dtype="int32")
    assert out.shape == (2, 3, 0) and out.dtype == np.int32
