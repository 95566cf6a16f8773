"""mx.runtime.Features, mx.engine and mx.util (MXNet's names; what onnxsym can do under them)."""
import pytest

import onnxsym as mx


def test_features_under_mxnet_names():
    features = mx.runtime.Features()
    assert features is mx.runtime.Features()            # one instance, as MXNet's
    assert list(features)[:3] == ["CUDA", "CUDNN", "NCCL"] and len(features) == 32
    assert features.is_enabled("CUDA") == (mx.num_gpus() > 0) == features.is_enabled("cuda")
    assert features.is_enabled("LAPACK") and not features.is_enabled("DIST_KVSTORE")
    assert not features.is_enabled("OPENCV")            # no image decoding here
    assert repr(features["LAPACK"]) == "✔ LAPACK" and repr(features["MKLDNN"]) == "✖ MKLDNN"
    assert [f.name for f in mx.runtime.feature_list()] == list(features)
    with pytest.raises(RuntimeError, match="Feature 'NOPE' is unknown, known features are"):
        features.is_enabled("nope")


def test_engine_bulk_is_a_scoped_setting():
    previous = mx.engine.set_bulk_size(30)
    try:
        with mx.engine.bulk(5):
            assert mx.engine.set_bulk_size(5) == 5
        assert mx.engine.set_bulk_size(30) == 30
    finally:
        mx.engine.set_bulk_size(previous)


def test_numpy_shape_semantics_switch_and_numpy_arrays_are_refused():
    assert mx.is_np_shape() is False and mx.util.is_np_array() is False
    assert mx.set_np_shape(False) is False
    with mx.np_shape():
        assert mx.is_np_shape() is True
        with mx.np_shape(False):
            assert mx.is_np_shape() is False
        assert mx.is_np_shape() is True
    assert mx.is_np_shape() is False
    assert mx.set_np_shape(True) is False and mx.set_np_shape(False) is True

    @mx.use_np_shape
    def scalar_one():
        """doc"""
        return mx.nd.ones(shape=()).shape, mx.is_np_shape()
    assert scalar_one() == ((), True) and scalar_one.__doc__ == "doc" and mx.is_np_shape() is False

    @mx.use_np
    class Net:
        def forward(self):
            return 1
    with pytest.raises(mx.MXNetError, match="use_np\\(forward\\)"):
        Net().forward()
    with pytest.raises(mx.MXNetError, match="mx.np arrays"):
        mx.util.set_np()
    mx.util.set_np(shape=True, array=False)
    assert mx.is_np_shape()
    mx.util.reset_np()
    assert not mx.is_np_shape()


def test_environment_helpers(monkeypatch):
    monkeypatch.delenv("ONNXSYM_TEST_VAR", raising=False)
    assert mx.util.getenv("ONNXSYM_TEST_VAR") is None
    mx.util.setenv("ONNXSYM_TEST_VAR", 3)
    assert mx.util.getenv("ONNXSYM_TEST_VAR") == "3"
    mx.util.setenv("ONNXSYM_TEST_VAR", None)
    assert mx.util.getenv("ONNXSYM_TEST_VAR") is None
    assert mx.util.get_gpu_count() == mx.num_gpus()


def test_base_and_module_paths_mxnet_programs_import():
    from onnxsym.base import _as_list, integer_types, py_str
    from onnxsym.ndarray.ndarray import NDArray, py_slice
    assert py_str(b"caf\xc3\xa9") == "café" and _as_list(3) == [3] and _as_list((1, 2)) == (1, 2)
    assert isinstance(mx.nd.ones(1), NDArray) and py_slice is slice and int in integer_types
