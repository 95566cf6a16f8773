"""Comparison helpers of `mx.test_utils`: per-dtype tolerances, almost_equal / assert_almost_equal and friends.

Semantics follow MXNet 1.9's python/mxnet/test_utils.py: `almost_equal` with no tolerance uses the float64
defaults (rtol 1e-5, atol 1e-20) whatever the dtypes, while `assert_almost_equal` picks the larger default of the
two operands' dtypes; both test |a - b| <= atol + rtol * |b| elementwise (numpy.allclose).
"""
import numbers

import numpy as np
import numpy.testing as npt

from .runtime.ndarray import NDArray

__all__ = ["default_rtols", "default_atols", "default_numeric_eps", "effective_dtype", "get_tolerance", "get_tols",
           "get_atol", "get_rtol", "get_etol", "same", "checkShapes", "almost_equal", "locationError",
           "assert_almost_equal", "assert_allclose", "assert_almost_equal_with_err",
           "assert_almost_equal_ignore_nan", "almost_equal_ignore_nan", "assert_exception", "np_reduce",
           "compare_ndarray_tuple", "collapse_sum_like"]

_EXACT = (np.bool_, np.int8, np.uint8, np.int32, np.uint32, np.int64, np.uint64)


def default_rtols():
    """Default relative tolerance per dtype (floating types only; exact types compare exactly)."""
    tols = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-5}
    tols.update({np.dtype(t): 0 for t in _EXACT})
    return tols


def default_atols():
    """Default absolute tolerance per dtype."""
    tols = {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-20}
    tols.update({np.dtype(t): 0 for t in _EXACT})
    return tols


def default_numeric_eps():
    """Finite-difference step per dtype: powers of two, so adding them to an input drops no bits."""
    return {np.dtype(np.float16): 1.0 / 2 ** 6, np.dtype(np.float32): 1.0 / 2 ** 9,
            np.dtype(np.float64): 1.0 / 2 ** 14}


def effective_dtype(dat):
    """The dtype that decides `dat`'s tolerance. MXNet lowers float32 to float16 on TF32 GPUs (compute capability
    >= 80); ONNX Runtime's CUDA provider keeps TF32 off unless asked, so here it is always the array's dtype."""
    return np.dtype(dat.dtype)


def get_tolerance(dat, tol, default_tol):
    """`tol` when it is a number; else the entry for `dat`'s effective dtype in `tol` (a dict) or `default_tol`."""
    if isinstance(tol, numbers.Number):
        return tol
    dtype = effective_dtype(dat)
    tol = {} if tol is None else tol
    return tol.get(dtype, default_tol[dtype])


def get_tols(x, y, rtol, atol):
    """(rtol, atol) to compare `x` with `y`: the larger of the two operands' tolerances."""
    x = np.array(x) if isinstance(x, numbers.Number) else x
    y = np.array(y) if isinstance(y, numbers.Number) else y
    rtol = max(get_tolerance(x, rtol, default_rtols()), get_tolerance(y, rtol, default_rtols()))
    atol = max(get_tolerance(x, atol, default_atols()), get_tolerance(y, atol, default_atols()))
    return rtol, atol


def get_atol(atol=None, dtype=np.dtype(np.float64)):
    return default_atols()[np.dtype(dtype)] if atol is None else atol


def get_rtol(rtol=None, dtype=np.dtype(np.float64)):
    return default_rtols()[np.dtype(dtype)] if rtol is None else rtol


def get_etol(etol=None):
    """Tolerated fraction of mismatching elements (assert_almost_equal_with_err); 0 by default."""
    return 0 if etol is None else etol


def _numpy(value):
    return value.asnumpy() if isinstance(value, NDArray) else value


def same(a, b):
    """True when `a` and `b` have the same shape and elements (numpy.array_equal)."""
    return np.array_equal(_numpy(a), _numpy(b))


def checkShapes(a, b):
    if a.shape != b.shape:
        raise AssertionError(npt.build_err_msg([a, b], err_msg="a.shape = %s and b.shape = %s are not equal"
                                               % (a.shape, b.shape)))


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True):
    """numpy.allclose(a, b) with MXNet's float64 defaults (rtol 1e-5, atol 1e-20) when no tolerance is given."""
    a, b = _numpy(a), _numpy(b)
    if not use_broadcast:
        checkShapes(a, b)
    return bool(np.allclose(a, b, rtol=get_rtol(rtol), atol=get_atol(atol), equal_nan=equal_nan))


def almost_equal_ignore_nan(a, b, rtol=None, atol=None):
    """almost_equal after zeroing the positions where either array is NaN (MXNet 1.x before 1.6)."""
    a, b = _without_nan(a, b)
    return almost_equal(a, b, rtol, atol)


def _find_max_violation(a, b, rtol, atol):
    """(index, ratio) of the element with the largest |a-b| / (atol + rtol*|b|); equal infinities count as 0."""
    with np.errstate(invalid="ignore"):
        absdiff = np.where(np.equal(a, b), 0, np.abs(a - b))
        violation = absdiff / (atol + rtol * np.abs(b) + 1e-20)
    violation = np.where(np.isnan(violation), np.inf, violation)
    index = tuple(int(i) for i in np.unravel_index(np.argmax(violation), violation.shape))
    return index, np.max(violation)


def locationError(a, b, index, names, maxError=False):
    return "Location of %serror: %s, %s=%.8f, %s=%.8f" % ("maximum " if maxError else "", index, names[0],
                                                          a[index], names[1], b[index])


def _mismatch_message(a, b, rtol, atol, names, equal_nan, mismatches):
    """MXNet's report: the worst element, then up to mismatches[0] of the next worst, and the share of
    mismatching elements counted up to mismatches[1] (<= 0: count them all)."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    index, worst = _find_max_violation(a, b, rtol, atol)
    if index == ():
        return "Error %f exceeds tolerance rtol=%e, atol=%e.\n" % (worst, rtol, atol)
    lines, a_left, b_left, count, ratio, where = [], a.copy(), b.copy(), 1, worst, index
    while count <= a.size:
        if count <= mismatches[0]:
            lines.append("%3d: Error %f  %s" % (count, ratio, locationError(a, b, where, names)))
        a_left[where] = b_left[where] = 0
        if np.allclose(a_left, b_left, rtol=rtol, atol=atol, equal_nan=equal_nan):
            break
        count += 1
        if count > mismatches[1] > 0:
            break
        where, ratio = _find_max_violation(a_left, b_left, rtol, atol)
    degree = "at least " if mismatches[1] > 0 and count > mismatches[1] else ""
    return ("Error %f exceeds tolerance rtol=%e, atol=%e (mismatch %s%f%%).\n%s\n%s"
            % (worst, rtol, atol, degree, 100.0 * count / a.size, locationError(a, b, index, names, True),
               "\n".join(lines)))


def assert_almost_equal(a, b, rtol=None, atol=None, names=("a", "b"), equal_nan=False, use_broadcast=True,
                        mismatches=(10, 10)):
    """Raise AssertionError unless |a - b| <= atol + rtol * |b| everywhere (broadcasting unless
    `use_broadcast=False`). rtol/atol: a number, None (the larger per-dtype default of a and b) or a dict
    dtype -> tolerance. Boolean arrays must be equal. The message names the worst mismatches."""
    a, b = _numpy(a), _numpy(b)
    if not use_broadcast:
        checkShapes(a, b)
    rtol, atol = get_tols(a, b, rtol, atol)
    if getattr(a, "dtype", None) == np.bool_ and getattr(b, "dtype", None) == np.bool_:
        np.testing.assert_equal(a, b)
        return
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    message = _mismatch_message(a, b, rtol, atol, names, equal_nan, mismatches)
    with np.printoptions(threshold=4, suppress=True):
        raise AssertionError(npt.build_err_msg([a, b], err_msg=message, names=names))


def assert_allclose(a, b, rtol=1e-07, atol=0, equal_nan=True):
    """assert_almost_equal with numpy.testing.assert_allclose's defaults."""
    assert_almost_equal(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def assert_almost_equal_with_err(a, b, rtol=None, atol=None, etol=None, names=("a", "b"), equal_nan=False,
                                 mismatches=(10, 10)):
    """Like assert_almost_equal, but passes while at most a fraction `etol` of the elements mismatch."""
    etol = get_etol(etol)
    if etol <= 0:
        assert_almost_equal(a, b, rtol=rtol, atol=atol, names=names, equal_nan=equal_nan, mismatches=mismatches)
        return
    a, b = _numpy(a), _numpy(b)
    rtol, atol = get_tols(a, b, rtol, atol)
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if 1 - np.count_nonzero(close) / close.size > etol:
        message = _mismatch_message(a, b, rtol, atol, names, equal_nan, mismatches)
        raise AssertionError(npt.build_err_msg([a, b], err_msg=message, names=names))


def _without_nan(a, b):
    a, b = np.array(_numpy(a)), np.array(_numpy(b))
    nan = np.logical_or(np.isnan(a), np.isnan(b))
    a[nan] = 0
    b[nan] = 0
    return a, b


def assert_almost_equal_ignore_nan(a, b, rtol=None, atol=None, names=("a", "b")):
    """assert_almost_equal after zeroing the positions where either array is NaN."""
    a, b = _without_nan(a, b)
    assert_almost_equal(a, b, rtol, atol, names)


def assert_exception(f, exception_type, *args, **kwargs):
    """Call f(*args, **kwargs); AssertionError unless it raises `exception_type`."""
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError("%s did not raise %s" % (getattr(f, "__name__", f), getattr(exception_type, "__name__",
                                                                                    exception_type)))


def np_reduce(dat, axis, keepdims, numpy_reduce_func):
    """Reduce `dat` with `numpy_reduce_func` (np.sum, np.max, ...) one axis at a time, highest axis first;
    axis: None (all), an int or a list."""
    axis = [axis] if isinstance(axis, int) else (list(axis) if axis is not None else list(range(dat.ndim)))
    ret = dat
    for i in sorted(axis, reverse=True):
        ret = numpy_reduce_func(ret, axis=i)
    if keepdims:
        ret = np.reshape(ret, tuple(1 if i in axis else d for i, d in enumerate(dat.shape)))
    return ret


def compare_ndarray_tuple(t1, t2, rtol=None, atol=None):
    """assert_almost_equal over (nested tuples of) arrays; nothing to compare when either is None."""
    if t1 is None or t2 is None:
        return
    if isinstance(t1, tuple):
        for s1, s2 in zip(t1, t2):
            compare_ndarray_tuple(s1, s2, rtol, atol)
    else:
        assert_almost_equal(t1, t2, rtol=rtol, atol=atol)


def collapse_sum_like(a, shape):
    """Sum numpy array `a` over the axes that `shape` (broadcastable to a.shape) lacks or has as 1."""
    assert a.ndim >= len(shape)
    if np.prod(shape) == 0 or a.size == 0:
        return np.zeros(shape, dtype=a.dtype)
    lead = a.ndim - len(shape)
    axes = list(range(lead))
    for i, size in enumerate(shape):
        if size != a.shape[lead + i]:
            assert size == 1
            axes.append(lead + i)
    return np.sum(a, axis=tuple(axes)).reshape(shape)
