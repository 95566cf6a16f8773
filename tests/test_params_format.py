"""`.params` files: byte-for-byte against files MXNet 1.9.1 wrote (tests/fixtures/make_io_fixtures.py)."""
import json
import os
import struct

import numpy as np
import pytest

import onnxsym as mx

from onnxsym.base import MXNetError
from onnxsym.ndarray import serialization
from onnxsym.runtime.ndarray import NDArray

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet")
with open(os.path.join(FIXTURES, "params_cases.json")) as _f:
    CASES = json.load(_f)
EXPECTED = dict(np.load(os.path.join(FIXTURES, "params_expected.npz")))
WRITTEN_BY_SAVE = ["dict_dtypes", "checkpoint", "list", "single", "empty"]


def fixture_path(case):
    return os.path.join(FIXTURES, "params_%s.params" % case)


def expected_arrays(case):
    return [EXPECTED["%s/%d" % (case, i)] for i in range(CASES[case]["count"])]


def rebuild(case):
    """The value `mx.nd.save` was given in the fixture script, rebuilt from the arrays MXNet loaded back."""
    arrays = [NDArray(a.copy()) for a in expected_arrays(case)]
    if case == "single":
        return arrays[0]
    names = CASES[case]["names"]
    return dict(zip(names, arrays)) if names is not None else arrays


@pytest.mark.parametrize("case", WRITTEN_BY_SAVE)
def test_save_writes_mxnet_bytes(case, tmp_path):
    target = tmp_path / "out.params"
    serialization.save(target, rebuild(case))
    with open(fixture_path(case), "rb") as mxnet_file:
        assert target.read_bytes() == mxnet_file.read()
    assert os.listdir(tmp_path) == ["out.params"]  # no temporary file left behind


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_mxnet_files(case):
    with mx.np_shape(case == "v3"):      # MXNet: V3 files (NumPy shape semantics) load only inside np_shape
        loaded = serialization.load(fixture_path(case))
    meta = CASES[case]
    if meta["names"] is None:
        assert isinstance(loaded, list)
        arrays = loaded
    else:
        assert isinstance(loaded, dict) and list(loaded) == meta["names"]
        arrays = list(loaded.values())
    assert all(isinstance(a, NDArray) for a in arrays)
    for got, want in zip(arrays, expected_arrays(case), strict=True):
        assert got.shape == want.shape and got.asnumpy().dtype == want.dtype
        np.testing.assert_array_equal(got.asnumpy(), want)


def test_load_float16_and_int64_values():
    loaded = serialization.load(fixture_path("dict_dtypes"))
    assert loaded["p_float16"].asnumpy().dtype == np.float16
    np.testing.assert_array_equal(loaded["p_float16"].asnumpy(), np.array([[-0.375, 0.375], [1.125, -0.875]],
                                                                          dtype=np.float16))
    assert loaded["p_int64"].asnumpy().dtype == np.int64
    np.testing.assert_array_equal(loaded["p_int64"].asnumpy(), [2000006, 5000015])


def test_v3_scalar_and_zero_size():
    with pytest.raises(mx.MXNetError, match="inside `with mx.np_shape"):
        serialization.load(fixture_path("v3"))
    with mx.np_shape():
        loaded = serialization.load(fixture_path("v3"))
    assert loaded["scalar"].shape == () and loaded["scalar"].asnumpy() == 2.5
    assert loaded["empty"].shape == (2, 0)


def test_round_trip_and_path_types(tmp_path):
    data = {"a": NDArray(np.arange(6, dtype=np.uint8).reshape(2, 3)), "b": NDArray(np.zeros((0, 4), np.float32))}
    serialization.save(str(tmp_path / "x.params"), data)
    loaded = serialization.load(tmp_path / "x.params")
    assert sorted(loaded) == ["a", "b"] and loaded["b"].shape == (0, 4)
    np.testing.assert_array_equal(loaded["a"].asnumpy(), data["a"].asnumpy())
    with open(tmp_path / "x.params", "rb") as source:
        again = serialization.load_frombuffer(source.read())
    np.testing.assert_array_equal(again["a"].asnumpy(), data["a"].asnumpy())


@pytest.mark.parametrize("bad, error", [
    ([np.zeros(3)], TypeError), ({1: NDArray(np.zeros(2, np.float32))}, TypeError), ("x", ValueError),
    ([NDArray(np.zeros((), np.float32))], MXNetError), ([NDArray(np.zeros(2, np.complex64))], MXNetError)])
def test_save_rejects_bad_input_and_leaves_nothing(bad, error, tmp_path):
    with pytest.raises(error):
        serialization.save(tmp_path / "bad.params", bad)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="fname"):
        serialization.save(3, [])


def _header(count):
    return struct.pack("<QQQ", 0x112, 0, count)


def _array(body_after_magic, magic=0xF993FAC9):
    return struct.pack("<I", magic) + body_after_magic


@pytest.mark.parametrize("payload, message", [
    (b"\x00" * 24, "not an MXNet .params file"),
    (_header(1) + _array(struct.pack("<ii", 1, 1) + struct.pack("<iq", 1, 4)), r"row_sparse array"),
    (_header(1) + _array(struct.pack("<ii", 2, 1) + struct.pack("<iq", 1, 4)), r"csr array"),
    (_header(1) + _array(struct.pack("<i", 0) + struct.pack("<iq", 1, 1) + struct.pack("<iii", 1, 0, 12) + b"\0\0"),
     "bfloat16 dtype flag 12"),
    (_header(1) + _array(struct.pack("<i", 0) + struct.pack("<iq", 1, 1) + struct.pack("<iii", 1, 0, 40) + b"\0"),
     "unknown dtype flag 40"),
    (_header(1) + _array(struct.pack("<i", 0) + struct.pack("<iq", 1, 1) + struct.pack("<iii", 1, 0, 0))
     + b"\0\0\0\0" + struct.pack("<Q", 2), "2 names for 1 arrays"),
    (_header(1) + _array(b"", magic=0xDEADBEEF), "unknown array magic"),
])
def test_load_errors_name_the_problem(payload, message):
    with pytest.raises(MXNetError, match=message):
        serialization.load_frombuffer(payload)


def test_truncation_error_says_where():
    with open(fixture_path("list"), "rb") as source:
        raw = source.read()
    with pytest.raises(MXNetError, match=r"array 1 of 2: the data of shape \(5,\) int64 needs 40 bytes"):
        serialization.load_frombuffer(raw[:-20])


@pytest.mark.parametrize("case", ["checkpoint", "list", "v1", "legacy", "v3"])
def test_every_truncation_raises_mxneterror(case):
    with open(fixture_path(case), "rb") as source:
        raw = source.read()
    for end in range(len(raw)):
        with pytest.raises(MXNetError):
            serialization.load_frombuffer(raw[:end])


def test_random_corruption_never_crashes():
    with open(fixture_path("dict_dtypes"), "rb") as source:
        raw = bytearray(source.read())
    rng = np.random.RandomState(0)
    for _ in range(400):
        broken = bytearray(raw)
        for pos in rng.randint(0, len(raw), size=rng.randint(1, 4)):
            broken[pos] = rng.randint(256)
        try:
            serialization.load_frombuffer(bytes(broken))
        except MXNetError:
            pass
