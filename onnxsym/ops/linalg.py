"""MXNet's linear-algebra operators `_linalg_<name>` (mx.sym.linalg / mx.nd.linalg): gemm, gemm2, potrf, potri,
trmm, trsm, syrk, sumlogdiag, extractdiag, makediag, extracttrian, maketrian, inverse, det, slogdet, gelqf, syevd.
Mirrors MXNet 1.9.1 src/operator/tensor/la_op.{h,cc}, la_op-inl.h.

Every op works on a batch of matrices (leading axes); the lowerings flatten them into one batch axis, so the
matrices have static sizes and the factorizations unroll into straight-line ONNX: Cholesky by columns, LU with
partial pivoting (det, slogdet), Householder LQ as LAPACK's gelqf + orglq (its signs: L's diagonal is -sign of the
pivot), cyclic Jacobi sweeps in parallel (round-robin) order for syevd. Those factorizations run in float64 and are
not differentiated: their gradient is MXNet's backward formula written as its linearization, `stop(out) +
J (A - stop(A))` with the coefficients of J stopped, which adds exactly zero to the value (la_op-inl.h *_backward).
The other ops (products, triangular solves and multiplies, inverse, potri, diagonals, triangles) are compositions of
differentiable ONNX ops whose derivative is MXNet's backward (triangular inputs are masked, so their gradient is
zero outside the triangle, as MXNet's ZeroTriangular). MXNet runs them on float32 and float64 only.
"""
import math

import numpy as np
from onnx import TensorProto, helper

from .._shapes import fmt
from ..base import MXNetError
from ..lower.builder import GraphBuilder, onnx_dtype
from .indexing import _axis, _batch_matmul_shape, batch_matmul
from .params import param
from .registry import OpDef, register

_CORE = np.dtype(np.float64)      # the unrolled factorizations run in double precision


# ---------------------------------------------------------------- helpers
def _check_float(op, dtype):
    if dtype is not None and np.dtype(dtype) not in (np.float32, np.float64):
        raise MXNetError("%s: This operation only supports 32-bit and 64-bit floating point (got %s)"
                         % (op.op_name, np.dtype(dtype).name))


def _square(op, shape, what="A"):
    if len(shape) < 2:
        raise MXNetError("%s: input %s %s must have at least 2 dimensions" % (op.op_name, what, fmt(shape)))
    if shape[-1] != shape[-2]:
        raise MXNetError("%s: input %s %s must be a tensor of square matrices" % (op.op_name, what, fmt(shape)))


class _LaOp(OpDef):
    """Elementwise type rule (MXNet's ElemwiseType); the dtype check runs when the op is lowered, where MXNet's
    kernels refuse float16 and integers. Subclasses lower in `_lower` (several have an attribute named `lower`)."""
    inputs = ("A",)

    def infer_type(self, *in_types):
        known = [t for t in in_types if t is not None]
        if not known:
            return None
        for t in known:
            if np.dtype(t) != np.dtype(known[0]):
                raise MXNetError("%s: inputs must have the same dtype, got %s"
                                 % (self.op_name, ", ".join(np.dtype(k).name for k in known)))
        return [known[0]] * len(in_types), [known[0]] * self.count_outputs()

    def lower_onnx(self, g, *inputs):
        _check_float(self, g.dtype(inputs[0]))
        return self._lower(g, *inputs)


def _to3(g, value):
    """(batch, rows, cols) view of a (..., rows, cols) value, and its original shape."""
    shape = tuple(g.shape(value))
    if len(shape) == 3:
        return value, shape
    return g.Reshape(value, g.int64s([_batch(shape), shape[-2], shape[-1]])), shape


def _back(g, value, shape):
    return value if len(shape) == 3 else g.Reshape(value, g.int64s(list(shape)))


def _mm(g, a, b, dtype, ta=False, tb=False):
    return batch_matmul(g, a, b, ta, tb, 3, dtype)


def _t(g, a):
    return g.Transpose(a, perm=[0, 2, 1])


def _mask(g, keep, dtype):
    return g.const(np.asarray(keep, dtype=dtype))


def _tri(g, a, lower, n, dtype, k=0):
    """The lower (upper) triangle of (batch, n, n) `a`, zeros elsewhere (MXNet reads only that part: a Where, so
    an inf or NaN outside it does not leak in as 0 * inf)."""
    keep = np.tril(np.ones((n, n), dtype=bool), k) if lower else np.triu(np.ones((n, n), dtype=bool), -k)
    return g.Where(g.const(keep[None]), a, g.scalar(0, dtype))


def _cast(g, value, dtype):
    """A float64 factorization result in the op's dtype."""
    return value if np.dtype(dtype) == _CORE else g.cast(value, dtype)


def _core(g, value, dtype):
    """`value` as float64, with no gradient through it (a factorization's input)."""
    stopped = g.stop_gradient(value, dtype)
    return stopped if np.dtype(dtype) == _CORE else g.cast(stopped, _CORE)


def _linearized(g, forward, term, dtype):
    """stop(forward) + term, `term` linear in delta = A - stop(A) (exactly 0): the value is unchanged and the
    gradient is the adjoint of the linear map, MXNet's backward formula. A NaN term (coefficients of a singular or
    non-positive-definite input) is dropped from the value. Training graphs only."""
    term = g.Where(g.Equal(g.Sub(term, term), g.scalar(0, dtype)), term, g.scalar(0, dtype))
    return g.Add(g.stop_gradient(forward, dtype), term)


def _delta(g, a, dtype):
    return g.Sub(a, g.stop_gradient(a, dtype))


def _inverse(g, a, shape, dtype):
    """inv(a) of (..., n, n) `a` (com.microsoft Inverse, which ONNX shape inference does not know: declared)."""
    out = g.Inverse(a, _domain="com.microsoft")
    g.declare(out, shape, dtype)
    return out


def _batch(shape):
    return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1


def _gather_flat(g, a3, rows, cols, index, zeros=False):
    """(batch, len(index)) entries of (batch, rows, cols) a3 at flat positions `index`; with `zeros`, -1 reads a
    zero padded on (a gather, so no 0 * inf of a product with a 0/1 matrix)."""
    flat = g.Reshape(a3, g.int64s([-1, rows * cols]))
    index = np.asarray(index, dtype=np.int64)
    if zeros:
        flat = g.Pad(flat, g.int64s([0, 0, 0, 1]))
        index = np.where(index < 0, rows * cols, index)
    return g.Gather(flat, g.const(index), axis=1)


def _diag(g, a3, n):
    return _gather_flat(g, a3, n, n, np.arange(n) * (n + 1))


def _row(g, a3, i):
    """Row i of (batch, r, c) as (batch, 1, c)."""
    return g.Slice(a3, g.int64s([i]), g.int64s([i + 1]), g.int64s([1]))


def _col(g, a3, j):
    """Column j of (batch, r, c) as (batch, r, 1)."""
    return g.Slice(a3, g.int64s([j]), g.int64s([j + 1]), g.int64s([2]))


def _unit(n, i, dtype, axis):
    e = np.zeros(n, dtype=dtype)
    e[i] = 1
    return e.reshape((1, 1, n) if axis == 2 else (1, n, 1))


# ---------------------------------------------------------------- products
class _Gemm(_LaOp):
    def _perm(self, ndim):
        """The swapaxes(axis, ndim-2) permutation that moves the row axis next to the column axis."""
        axis = _axis(self, self.axis, ndim)
        if axis == ndim - 1:
            raise MXNetError("%s: Invalid row axis (%d): it is the column axis" % (self.op_name, self.axis))
        perm = list(range(ndim))
        perm[axis], perm[-2] = perm[-2], perm[axis]
        return perm

    def _product_shape(self, a, b):
        if len(a) < 2 or len(a) != len(b):
            raise MXNetError("%s: A %s and B %s must have the same number (>= 2) of dimensions"
                             % (self.op_name, fmt(a), fmt(b)))
        perm = self._perm(len(a))
        out = _batch_matmul_shape(self, tuple(a[p] for p in perm), tuple(b[p] for p in perm), 2)
        return tuple(out[p] for p in perm)

    def _product(self, g, a, b):
        ndim, dtype = len(g.shape(a)), g.dtype(a)
        perm = self._perm(ndim)
        moved = perm != list(range(ndim))
        if moved:
            a, b = g.Transpose(a, perm=perm), g.Transpose(b, perm=perm)
        out = batch_matmul(g, a, b, self.transpose_a, self.transpose_b, ndim, dtype)
        if self.alpha != 1.0:
            out = g.Mul(out, g.scalar(self.alpha, dtype))
        return (g.Transpose(out, perm=perm) if moved else out), perm, moved


@register(name="_linalg_gemm")
class linalg_gemm(_Gemm):
    """out = alpha * op(A) @ op(B) + beta * C, batched over leading dims; rows on `axis`. Mirrors MXNet gemm."""
    aliases = ("linalg_gemm",)
    transpose_a: bool = param(False, doc="Multiply with transposed of first input (A).")
    transpose_b: bool = param(False, doc="Multiply with transposed of second input (B).")
    alpha: float = param(1.0, doc="Scalar factor multiplied with A*B.")
    beta: float = param(1.0, doc="Scalar factor multiplied with C.")
    axis: int = param(-2, doc="Axis corresponding to the matrix rows.")
    inputs = ("A", "B", "C")

    def infer_shape(self, a, b, c):
        if a is None or b is None:
            return None
        out = self._product_shape(a, b)
        if c is not None and tuple(c) != out:
            raise MXNetError("%s: C %s must have the shape %s of alpha * op(A) * op(B)"
                             % (self.op_name, fmt(c), fmt(out)))
        return [a, b, out], [out]

    def _lower(self, g, a, b, c):
        out, _, _ = self._product(g, a, b)
        return g.Add(out, g.Mul(c, g.scalar(self.beta, g.dtype(a))) if self.beta != 1.0 else c)


@register(name="_linalg_gemm2")
class linalg_gemm2(_Gemm):
    """out = alpha * op(A) @ op(B), batched over leading dims; rows on `axis`. Mirrors MXNet la_op.cc gemm2."""
    aliases = ("linalg_gemm2",)
    transpose_a: bool = param(False, doc="Multiply with transposed of first input (A).")
    transpose_b: bool = param(False, doc="Multiply with transposed of second input (B).")
    alpha: float = param(1.0, doc="Scalar factor multiplied with A*B.")
    axis: int = param(-2, doc="Axis corresponding to the matrix row indices.")
    inputs = ("A", "B")

    def infer_shape(self, a, b):
        if a is None or b is None:
            return None
        return [a, b], [self._product_shape(a, b)]

    def _lower(self, g, a, b):
        return self._product(g, a, b)[0]


@register(name="_linalg_syrk")
class linalg_syrk(_LaOp):
    """out = alpha * A @ A^T (A^T @ A when transpose), batched. Mirrors MXNet syrk."""
    aliases = ("linalg_syrk",)
    transpose: bool = param(False, doc="Use transpose of input matrix.")
    alpha: float = param(1.0, doc="Scalar factor to be applied to the result.")

    def infer_shape(self, a):
        if a is None:
            return None
        if len(a) < 2:
            raise MXNetError("%s: input A %s must have at least 2 dimensions" % (self.op_name, fmt(a)))
        k = a[-1] if self.transpose else a[-2]
        return [a], [tuple(a[:-2]) + (k, k)]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        out = _mm(g, a3, a3, g.dtype(a), ta=self.transpose, tb=not self.transpose)
        if self.alpha != 1.0:
            out = g.Mul(out, g.scalar(self.alpha, g.dtype(a)))
        k = shape[-1] if self.transpose else shape[-2]
        return _back(g, out, tuple(shape[:-2]) + (k, k))


class _Triangular(_LaOp):
    """trmm / trsm: A is triangular (only its `lower` or upper triangle is read), B general."""
    inputs = ("A", "B")

    def infer_shape(self, a, b):
        if a is None or b is None:
            return None
        _square(self, a)
        if len(a) != len(b) or tuple(a[:-2]) != tuple(b[:-2]):
            raise MXNetError("%s: Shapes of inputs A %s and B %s must be the same, except on the last two "
                             "dimensions" % (self.op_name, fmt(a), fmt(b)))
        if (b[-1] if self.rightside else b[-2]) != a[-1]:
            raise MXNetError("%s: Incompatible matrix dimensions for multiplication: A %s, B %s, rightside=%s"
                             % (self.op_name, fmt(a), fmt(b), self.rightside))
        return [a, b], [b]

    def _lower(self, g, a, b):
        a3, _ = _to3(g, a)
        b3, shape = _to3(g, b)
        n, dtype = shape[-1] if self.rightside else shape[-2], g.dtype(a)
        tri = self._factor(g, _tri(g, a3, self.lower, n, dtype), (_batch(shape), n, n), dtype)
        if self.rightside:
            out = _mm(g, b3, tri, dtype, tb=self.transpose)
        else:
            out = _mm(g, tri, b3, dtype, ta=self.transpose)
        if self.alpha != 1.0:
            out = g.Mul(out, g.scalar(self.alpha, dtype))
        return _back(g, out, shape)


_TRIANGULAR_DOCS = dict(
    transpose=dict(doc="Use transposed of the triangular matrix"),
    rightside=dict(doc="Multiply triangular matrix from the right to non-triangular one."),
    lower=dict(doc="True if the triangular matrix is lower triangular, false if it is upper triangular."),
    alpha=dict(doc="Scalar factor to be applied to the result."))


@register(name="_linalg_trmm")
class linalg_trmm(_Triangular):
    """out = alpha * op(A) @ B (B @ op(A) when rightside), A triangular. Mirrors MXNet trmm."""
    aliases = ("linalg_trmm",)
    transpose: bool = param(False, **_TRIANGULAR_DOCS["transpose"])
    rightside: bool = param(False, **_TRIANGULAR_DOCS["rightside"])
    lower: bool = param(True, **_TRIANGULAR_DOCS["lower"])
    alpha: float = param(1.0, **_TRIANGULAR_DOCS["alpha"])

    def _factor(self, g, tri, shape, dtype):
        return tri


@register(name="_linalg_trsm")
class linalg_trsm(_Triangular):
    """out = alpha * op(A)^-1 @ B (B @ op(A)^-1 when rightside), A triangular. Mirrors MXNet trsm."""
    aliases = ("linalg_trsm",)
    transpose: bool = param(False, **_TRIANGULAR_DOCS["transpose"])
    rightside: bool = param(False, **_TRIANGULAR_DOCS["rightside"])
    lower: bool = param(True, **_TRIANGULAR_DOCS["lower"])
    alpha: float = param(1.0, **_TRIANGULAR_DOCS["alpha"])

    def _factor(self, g, tri, shape, dtype):
        return _inverse(g, tri, shape, dtype)


# ---------------------------------------------------------------- Cholesky, inverses
class _Square(_LaOp):
    """One tensor of square matrices in, one of the same shape out."""

    def infer_shape(self, a):
        if a is None:
            return None
        _square(self, a)
        return [a], [a]


def _cholesky(g, s3, n):
    """Lower Cholesky factor of (batch, n, n) float64 s3 from its lower triangle, by columns."""
    factor = _tri(g, s3, True, n, _CORE, k=-n)          # zeros
    for j in range(n):
        # v = A[:, j] - L[:, :j] L[j, :j]^T; rows < j are dropped
        v = g.Sub(_col(g, s3, j), _mm(g, factor, _row(g, factor, j), _CORE, tb=True))
        pivot = g.Sqrt(g.Slice(v, g.int64s([j]), g.int64s([j + 1]), g.int64s([1])))
        below = np.zeros((1, n, 1), dtype=bool)
        below[0, j:, 0] = True
        column = g.Where(g.const(below), g.Div(v, pivot), g.scalar(0, _CORE))
        factor = g.Where(g.const(_unit(n, j, _CORE, 2).astype(bool)), column, factor)
    return factor


@register(name="_linalg_potrf")
class linalg_potrf(_Square):
    """out = L with A = L L^T (U with A = U^T U when lower=False), read from A's lower (upper) triangle.
    Mirrors MXNet potrf; gradient 0.5 L^-T copyLTU(L^T dL) L^-1 (symmetric). A matrix that is not positive
    definite gives NaN from the failing column on, where MXNet's LAPACK call raises."""
    aliases = ("linalg_potrf",)
    lower: bool = param(True, doc="True if the triangular matrix is lower triangular, false if it is upper "
                                  "triangular.")

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        if not self.lower:
            a3 = _t(g, a3)
        n, dtype = shape[-1], g.dtype(a)
        out = _cast(g, _cholesky(g, _core(g, a3, dtype), n), dtype)
        if g.is_train:
            # dL = L phi(L^-1 dA L^-T), phi(P) = 0.5 (tril(P) + triu(P, 1)^T): the adjoint of MXNet's formula
            stopped = g.stop_gradient(out, dtype)
            inv = g.stop_gradient(_inverse(g, stopped, (_batch(shape), n, n), dtype), dtype)
            p = _mm(g, _mm(g, inv, _delta(g, a3, dtype), dtype), inv, dtype, tb=True)
            phi = g.Mul(g.Add(_tri(g, p, True, n, dtype), _t(g, _tri(g, p, False, n, dtype, k=-1))),
                        g.scalar(0.5, dtype))
            out = _linearized(g, out, _mm(g, stopped, phi, dtype), dtype)
        return _back(g, out if self.lower else _t(g, out), shape)


@register(name="_linalg_potri")
class linalg_potri(_Square):
    """out = (L L^T)^-1 from the triangular Cholesky factor L in A (lower, or U^T U when lower=False).
    Mirrors MXNet potri."""
    aliases = ("linalg_potri",)
    lower: bool = param(True, doc="True if the triangular matrix is lower triangular, false if it is upper "
                                  "triangular.")

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        dtype = g.dtype(a)
        n = shape[-1]
        inv = _inverse(g, _tri(g, a3, self.lower, n, dtype), (_batch(shape), n, n), dtype)
        out = _mm(g, inv, inv, dtype, ta=True) if self.lower else _mm(g, inv, inv, dtype, tb=True)
        return _back(g, out, shape)


@register(name="_linalg_inverse")
class linalg_inverse(_Square):
    """out = A^-1, batched. Mirrors MXNet inverse (gradient -A^-T dOut A^-T); a singular matrix gives inf / NaN
    entries where MXNet raises."""
    aliases = ("linalg_inverse", "_npi_inv")

    def _lower(self, g, a):
        return _inverse(g, a, g.shape(a), g.dtype(a))


# ---------------------------------------------------------------- diagonals and triangles
def _reduced_shape(a):
    return tuple(a[:-2]) if len(a) > 2 else (1,)


@register(name="_linalg_sumlogdiag")
class linalg_sumlogdiag(_LaOp):
    """out = sum(log(diag(A))) per matrix. Mirrors MXNet sumlogdiag."""
    aliases = ("linalg_sumlogdiag",)

    def infer_shape(self, a):
        if a is None:
            return None
        _square(self, a)
        return [a], [_reduced_shape(a)]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        out = g.ReduceSum(g.Log(_diag(g, a3, shape[-1])), g.int64s([1]), keepdims=0)
        return g.Reshape(out, g.int64s(list(_reduced_shape(shape))))


def _diag_index(n, k):
    index = np.arange(n - abs(k))
    return (index - min(k, 0)) * n + index + max(k, 0)


def _trian_index(n, k, lower):
    """Flat matrix position of each entry of MXNet's packed triangle (CopyTrian's ordering), and its length."""
    size = n - abs(k)
    order = np.zeros(size * (size + 1) // 2, dtype=np.int64)
    for i in range(n * n):
        row, col = divmod(i, n)
        if k > 0 or (k == 0 and not lower):
            row, col = col, row
        row -= abs(k)
        if row >= col:
            order[row * (row + 1) // 2 + col] = i
    return order


class _DiagTrian(_LaOp):
    def _extract_shape(self, a):
        _square(self, a)
        n = a[-1] - abs(self.offset)
        if n <= 0:
            raise MXNetError("%s: Illegal offset %d for diag/trian extraction of matrix with dimension %d"
                             % (self.op_name, self.offset, a[-1]))
        return n


@register(name="_linalg_extractdiag")
class linalg_extractdiag(_DiagTrian):
    """out = the `offset` diagonal of A, batched. Mirrors MXNet extractdiag."""
    aliases = ("linalg_extractdiag",)
    offset: int = param(0, doc="Offset of the diagonal versus the main diagonal. 0 corresponds to the main "
                               "diagonal, a negative/positive value to diagonals below/above the main diagonal.")

    def infer_shape(self, a):
        if a is None:
            return None
        return [a], [tuple(a[:-2]) + (self._extract_shape(a),)]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        n = shape[-1]
        out = _gather_flat(g, a3, n, n, _diag_index(n, self.offset))
        return g.Reshape(out, g.int64s(list(shape[:-2]) + [n - abs(self.offset)]))


@register(name="_linalg_makediag")
class linalg_makediag(_DiagTrian):
    """out = square matrices with A on the `offset` diagonal, zeros elsewhere. Mirrors MXNet makediag."""
    aliases = ("linalg_makediag",)
    offset: int = param(0, doc="Offset of the diagonal versus the main diagonal. 0 corresponds to the main "
                               "diagonal, a negative/positive value to diagonals below/above the main diagonal.")

    def infer_shape(self, a):
        if a is None:
            return None
        if len(a) < 1:
            raise MXNetError("%s: input A must have at least 1 dimension" % self.op_name)
        n = a[-1] + abs(self.offset)
        return [a], [tuple(a[:-1]) + (n, n)]

    def _lower(self, g, a):
        shape = tuple(g.shape(a))
        m = shape[-1]
        n = m + abs(self.offset)
        source = np.full(n * n, -1, dtype=np.int64)
        source[_diag_index(n, self.offset)] = np.arange(m)
        flat = g.Reshape(a, g.int64s([-1, 1, m]))
        out = _gather_flat(g, flat, 1, m, source, zeros=True)
        return g.Reshape(out, g.int64s(list(shape[:-1]) + [n, n]))


_TRIAN_DOCS = dict(
    offset=dict(doc="Offset of the diagonal versus the main diagonal. 0 corresponds to the main diagonal, a "
                    "negative/positive value to diagonals below/above the main diagonal."),
    lower=dict(doc="Refer to the lower triangular matrix if lower=true, refer to the upper otherwise. Only "
                   "relevant when offset=0"))


@register(name="_linalg_extracttrian")
class linalg_extracttrian(_DiagTrian):
    """out = the triangle of A from the `offset` diagonal, packed row by row. Mirrors MXNet extracttrian."""
    aliases = ("linalg_extracttrian",)
    offset: int = param(0, **_TRIAN_DOCS["offset"])
    lower: bool = param(True, **_TRIAN_DOCS["lower"])

    def infer_shape(self, a):
        if a is None:
            return None
        n = self._extract_shape(a)
        return [a], [tuple(a[:-2]) + (n * (n + 1) // 2,)]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        n = shape[-1]
        index = _trian_index(n, self.offset, self.lower)
        out = _gather_flat(g, a3, n, n, index)
        return g.Reshape(out, g.int64s(list(shape[:-2]) + [len(index)]))


@register(name="_linalg_maketrian")
class linalg_maketrian(_DiagTrian):
    """out = square matrices whose `offset` triangle is A (packed as extracttrian), zeros elsewhere. Mirrors
    MXNet maketrian."""
    aliases = ("linalg_maketrian",)
    offset: int = param(0, **_TRIAN_DOCS["offset"])
    lower: bool = param(True, **_TRIAN_DOCS["lower"])

    def _size(self, length):
        m = int(math.floor(0.5 + (math.sqrt(8 * length + 1) - 1.0) * 0.5))
        if m * (m + 1) // 2 != length:
            raise MXNetError("%s: Input tensor of maketrian has an invalid dimension for the last axis (%d is not "
                             "a triangular number)" % (self.op_name, length))
        return m + abs(self.offset)

    def infer_shape(self, a):
        if a is None:
            return None
        if len(a) < 1:
            raise MXNetError("%s: input A must have at least 1 dimension" % self.op_name)
        n = self._size(a[-1])
        return [a], [tuple(a[:-1]) + (n, n)]

    def _lower(self, g, a):
        shape = tuple(g.shape(a))
        length = shape[-1]
        n = self._size(length)
        source = np.full(n * n, -1, dtype=np.int64)
        source[_trian_index(n, self.offset, self.lower)] = np.arange(length)
        flat = g.Reshape(a, g.int64s([-1, 1, length]))
        out = _gather_flat(g, flat, 1, length, source, zeros=True)
        return g.Reshape(out, g.int64s(list(shape[:-1]) + [n, n]))


# ---------------------------------------------------------------- determinants
def _lu(g, a3, n):
    """LAPACK getrf of float64 (batch, n, n) a3: (packed L\\U, 0-based pivot rows (batch, n) int64, permutation
    sign (batch,)). Row swaps move whole rows, the multipliers included, as LAPACK's."""
    u = a3
    sign = g.Add(g.ReduceSum(g.Mul(_diag(g, a3, n), g.scalar(0, _CORE)), g.int64s([1]), keepdims=0),
                 g.scalar(1, _CORE))
    rows = np.arange(n)
    pivots = []
    for k in range(n):
        column = g.Abs(g.Squeeze(_col(g, u, k), g.int64s([2])))
        column = g.Where(g.const(rows >= k), column, g.scalar(-1, _CORE))
        pivot = g.ArgMax(column, axis=1, keepdims=1)                            # (batch, 1) int64
        pivots.append(pivot)
        if k == n - 1:
            break
        # swap rows k and pivot: perm_i = i + (pivot - k) [i == k] - (pivot - k) [i == pivot]
        shift = g.Sub(pivot, g.const(np.asarray([[k]], dtype=np.int64)))
        at_pivot = g.Cast(g.Equal(g.const(rows[None, :].astype(np.int64)), pivot), to=7)
        perm = g.Add(g.const(rows[None, :].astype(np.int64)),
                     g.Sub(g.Mul(shift, g.const((rows == k)[None, :].astype(np.int64))), g.Mul(shift, at_pivot)))
        index = g.Expand(g.Unsqueeze(perm, g.int64s([2])), g.int64s([1, n, n]))
        u = g.GatherElements(u, index, axis=1)
        sign = g.Mul(sign, g.Where(g.Equal(g.Squeeze(shift, g.int64s([1])), g.const(np.asarray(0, np.int64))),
                                   g.scalar(1, _CORE), g.scalar(-1, _CORE)))
        head = g.Slice(_col(g, u, k), g.int64s([k]), g.int64s([k + 1]), g.int64s([1]))     # (batch, 1, 1)
        singular = g.Equal(head, g.scalar(0, _CORE))
        below = np.zeros((1, n, 1), dtype=bool)
        below[0, k + 1:, 0] = True
        factors = g.Where(singular, g.scalar(0, _CORE), g.Div(_col(g, u, k), g.Where(singular, g.scalar(1, _CORE),
                                                                                      head)))
        factors = g.Where(g.const(below), factors, g.scalar(0, _CORE))             # (batch, n, 1)
        right = np.zeros((1, 1, n), dtype=_CORE)
        right[0, 0, k + 1:] = 1
        # the trailing block loses factor * row k; column k below the pivot keeps the multipliers (L)
        u = g.Sub(u, g.Mul(g.Mul(factors, _row(g, u, k)), g.const(right)))
        multipliers = g.const(below & (np.arange(n) == k)[None, None, :])
        u = g.Where(multipliers, g.Expand(factors, g.int64s([1, n, n])), u)
    return u, g.Concat(*pivots, axis=1) if n > 1 else pivots[0], sign


class _Det(_LaOp):
    """det / slogdet: the visible outputs, then MXNet's hidden LU (LAPACK's packed factors) and pivot (int32,
    1-based row swaps)."""
    outputs_visible = 1

    def num_visible_outputs(self):
        return self.outputs_visible

    def infer_shape(self, a):
        if a is None:
            return None
        _square(self, a)
        return [a], [_reduced_shape(a)] * self.outputs_visible + [a, tuple(a[:-1])]

    def infer_type(self, a):
        if a is None:
            return None
        return [a], [a] * (self.outputs_visible + 1) + [np.dtype(np.int32)]

    def _factor(self, g, a):
        a3, shape = _to3(g, a)
        n, dtype = shape[-1], g.dtype(a)
        lu, pivots, sign = _lu(g, _core(g, a3, dtype), n)
        hidden = [g.Reshape(_cast(g, lu, dtype), g.int64s(list(shape))),
                  g.Reshape(g.Cast(g.Add(pivots, g.const(np.asarray(1, np.int64))), to=6),
                            g.int64s(list(shape[:-1])))]
        return a3, shape, _diag(g, lu, n), sign, hidden

    def _jacobi(self, g, a3, shape, value, weight, singular, dtype):
        """value + weight * sum(A^-T * dA) (Jacobi's formula) when training; no gradient where `singular`."""
        if not g.is_train:
            return value
        n = shape[-1]
        inv = g.stop_gradient(_inverse(g, g.stop_gradient(a3, dtype), (_batch(shape), n, n), dtype), dtype)
        coef = g.Mul(_t(g, inv), g.Unsqueeze(weight, g.int64s([1, 2])))
        coef = g.Where(g.Unsqueeze(singular, g.int64s([1, 2])), g.scalar(0, dtype), coef)
        term = g.ReduceSum(g.Mul(coef, _delta(g, a3, dtype)), g.int64s([1, 2]), keepdims=0)
        return _linearized(g, value, term, dtype)


@register(name="_linalg_det")
class linalg_det(_Det):
    """out = det(A) per matrix (LU with partial pivoting). Mirrors MXNet det; no gradient where det(A) = 0."""
    aliases = ("linalg_det", "_npi_det")
    outputs = ("output0", "output1", "output2")

    def _lower(self, g, a):
        a3, shape, diagonal, sign, hidden = self._factor(g, a)
        dtype = g.dtype(a)
        det = _cast(g, g.Mul(sign, g.ReduceProd(diagonal, axes=[1], keepdims=0)), dtype)
        if g.is_train:
            stopped = g.stop_gradient(det, dtype)
            det = self._jacobi(g, a3, shape, det, stopped, g.Equal(stopped, g.scalar(0, dtype)), dtype)
        return (g.Reshape(det, g.int64s(list(_reduced_shape(shape)))), *hidden)


@register(name="_linalg_slogdet")
class linalg_slogdet(_Det):
    """(sign, logabsdet) = (sign(det(A)), log|det(A)|) per matrix. Mirrors MXNet slogdet (no gradient for sign,
    none where det(A) = 0)."""
    aliases = ("linalg_slogdet", "_npi_slogdet")
    outputs = ("output0", "output1", "output2", "output3")
    outputs_visible = 2

    def _lower(self, g, a):
        a3, shape, diagonal, sign, hidden = self._factor(g, a)
        dtype = g.dtype(a)
        sign = _cast(g, g.Mul(sign, g.ReduceProd(g.Sign(diagonal), axes=[1], keepdims=0)), dtype)
        logabs = _cast(g, g.ReduceSum(g.Log(g.Abs(diagonal)), g.int64s([1]), keepdims=0), dtype)
        if g.is_train:
            stopped = g.stop_gradient(logabs, dtype)
            one = g.Add(g.Mul(stopped, g.scalar(0, dtype)), g.scalar(1, dtype))
            logabs = self._jacobi(g, a3, shape, logabs, one, g.Equal(stopped, g.scalar(-np.inf, dtype)), dtype)
            sign = g.stop_gradient(sign, dtype)
        out = g.int64s(list(_reduced_shape(shape)))
        return (g.Reshape(sign, out), g.Reshape(logabs, out), *hidden)


# ---------------------------------------------------------------- LQ factorization
def _householder_lq(g, a3, m, n):
    """(Q, L) of float64 (batch, m, n) a3 as LAPACK gelqf + orglq: reflections H_i = I - tau v v^T from dlarfg
    (beta = -sign(alpha) ||x||, no reflection when the row's tail is zero)."""
    zero, one = g.scalar(0, _CORE), g.scalar(1, _CORE)
    r, reflections, betas = a3, [], []
    for i in range(m):
        row = _row(g, r, i)                                                     # (batch, 1, n)
        tail_mask = np.zeros((1, 1, n), dtype=_CORE)
        tail_mask[0, 0, i + 1:] = 1
        tail = g.Mul(row, g.const(tail_mask))
        alpha = g.Slice(row, g.int64s([i]), g.int64s([i + 1]), g.int64s([2]))   # (batch, 1, 1)
        xnorm = g.Sqrt(g.ReduceSum(g.Mul(tail, tail), g.int64s([2]), keepdims=1))
        flat = g.Equal(xnorm, zero)
        sign = g.Where(g.Less(alpha, zero), g.Neg(one), one)
        beta = g.Neg(g.Mul(sign, g.Sqrt(g.Add(g.Mul(alpha, alpha), g.Mul(xnorm, xnorm)))))
        beta = g.Where(flat, alpha, beta)
        safe_beta = g.Where(g.Equal(beta, zero), one, beta)
        tau = g.Where(flat, zero, g.Div(g.Sub(beta, alpha), safe_beta))
        denominator = g.Where(flat, one, g.Sub(alpha, beta))
        v = g.Add(g.Div(tail, denominator), g.const(_unit(n, i, _CORE, 2)))     # (batch, 1, n)
        if i + 1 < m:
            rows_below = np.zeros((1, m, 1), dtype=_CORE)
            rows_below[0, i + 1:, 0] = 1
            rv = _mm(g, r, v, _CORE, tb=True)                                           # (batch, m, 1)
            update = g.Mul(g.Mul(rv, tau), v)
            r = g.Sub(r, g.Mul(update, g.const(rows_below)))
        reflections.append((v, tau))
        betas.append(beta)
    lower = _tri(g, g.Slice(r, g.int64s([0]), g.int64s([m]), g.int64s([2])), True, m, _CORE, k=-1)
    diagonal = g.Concat(*betas, axis=2) if m > 1 else betas[0]                  # (batch, 1, m)
    lower = g.Add(lower, g.Mul(diagonal, g.const(np.eye(m, dtype=_CORE)[None])))
    q = g.const(np.eye(m, n, dtype=_CORE)[None])
    for v, tau in reversed(reflections):
        q = g.Sub(q, g.Mul(g.Mul(_mm(g, q, v, _CORE, tb=True), tau), v))
    return q, lower


@register(name="_linalg_gelqf")
class linalg_gelqf(_LaOp):
    """(Q, L) with A = L Q, Q's rows orthonormal, L lower triangular (m <= n), LAPACK's signs. Mirrors MXNet
    gelqf; gradient L^-T (dQ + copyLTU(L^T dL - dQ Q^T) Q)."""
    aliases = ("linalg_gelqf",)
    outputs = ("output0", "output1")       # MXNet names them by index

    def infer_shape(self, a):
        if a is None:
            return None
        if len(a) < 2:
            raise MXNetError("%s: input A %s must have at least 2 dimensions" % (self.op_name, fmt(a)))
        if a[-2] > a[-1]:
            raise MXNetError("%s: Input A shape wrong: Last dimension must be >= than second to last, got %s"
                             % (self.op_name, fmt(a)))
        return [a], [a, tuple(a[:-1]) + (a[-2],)]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        m, n, dtype = shape[-2], shape[-1], g.dtype(a)
        q, low = _householder_lq(g, _core(g, a3, dtype), m, n)
        q, low = _cast(g, q, dtype), _cast(g, low, dtype)
        if g.is_train:
            # C = L^-1 dA Q^T, Omega = triu(C, 1) - triu(C, 1)^T, dL = L (C - Omega), dQ = L^-1 (dA - dL Q)
            delta = _delta(g, a3, dtype)
            sq, sl = g.stop_gradient(q, dtype), g.stop_gradient(low, dtype)
            inv = g.stop_gradient(_inverse(g, sl, (_batch(shape), m, m), dtype), dtype)
            c = _mm(g, _mm(g, inv, delta, dtype), sq, dtype, tb=True)
            upper = _tri(g, c, False, m, dtype, k=-1)
            d_low = _mm(g, sl, g.Add(_tri(g, c, True, m, dtype), _t(g, upper)), dtype)
            d_q = _mm(g, inv, g.Sub(delta, _mm(g, d_low, sq, dtype)), dtype)
            q, low = _linearized(g, q, d_q, dtype), _linearized(g, low, d_low, dtype)
        return _back(g, q, shape), _back(g, low, tuple(shape[:-1]) + (m,))


# ---------------------------------------------------------------- symmetric eigendecomposition
def _round_robin(n):
    """Rounds of disjoint index pairs covering every pair once (n even): the circle method."""
    players = list(range(n))
    rounds = []
    for _ in range(n - 1):
        rounds.append([(min(players[i], players[n - 1 - i]), max(players[i], players[n - 1 - i]))
                       for i in range(n // 2)])
        players = [players[0], players[-1]] + players[1:-1]
    return rounds


# Jacobi converges quadratically: the sweep after the one that starts below 1e-12 (relative off-diagonal norm)
# reaches rounding level, and the sweeps stop (a NaN stops them too); at most this many.
_MAX_SWEEPS = 60


def _rotations(g, s, v, n, pairs):
    """One round of disjoint Jacobi rotations (Golub & Van Loan's symmetric Schur: [c s; -s c] zeroes s_pq)."""
    zero, one = g.scalar(0, _CORE), g.scalar(1, _CORE)
    p = np.asarray([pair[0] for pair in pairs])
    q = np.asarray([pair[1] for pair in pairs])
    app, aqq, apq = (_gather_flat(g, s, n, n, i * n + j) for i, j in ((p, p), (q, q), (p, q)))
    done = g.Equal(apq, zero)
    tau = g.Div(g.Sub(aqq, app), g.Mul(g.Where(done, one, apq), g.scalar(2, _CORE)))
    t = g.Div(g.Where(g.Less(tau, zero), g.Neg(one), one), g.Add(g.Abs(tau), g.Sqrt(g.Add(one, g.Mul(tau, tau)))))
    t = g.Where(done, zero, t)
    c = g.Reciprocal(g.Sqrt(g.Add(one, g.Mul(t, t))))
    place_c = np.zeros((len(pairs), n * n), dtype=_CORE)
    place_s = np.zeros((len(pairs), n * n), dtype=_CORE)
    for k, (i, j) in enumerate(pairs):
        place_c[k, i * n + i] = place_c[k, j * n + j] = 1
        place_s[k, i * n + j], place_s[k, j * n + i] = 1, -1
    cos, sin = g.MatMul(g.Sub(c, one), g.const(place_c)), g.MatMul(g.Mul(t, c), g.const(place_s))
    eye, shape = g.const(np.eye(n, dtype=_CORE)[None]), g.int64s([-1, n, n])
    rotation = g.Add(g.Reshape(g.Add(cos, sin), shape), eye)
    transposed = g.Add(g.Reshape(g.Sub(cos, sin), shape), eye)
    # float64 MatMul of untransposed operands (no Transpose for ORT to fuse into a float-only FusedMatMul)
    return g.MatMul(g.MatMul(transposed, s), rotation), g.MatMul(v, rotation)


def _jacobi(g, s3, n, batch):
    """(eigenvalues (batch, n), eigenvectors as columns (batch, n, n)) of float64 symmetric s3 (n even): cyclic
    Jacobi in round-robin order, one sweep per iteration of an ONNX Loop (not differentiated: behind a stop)."""
    body = GraphBuilder()
    body.scope = g.fresh("%s/jacobi" % g.scope)
    body.add_input(body.scope + "/sweep", [], np.int64)
    body.add_input(body.scope + "/cond", [], np.bool_)
    s = body.add_input(body.scope + "/s", [batch, n, n], _CORE)
    v = body.add_input(body.scope + "/v", [batch, n, n], _CORE)
    # another sweep follows while some matrix entered this one with an off-diagonal norm above 1e-12 of its norm
    total = body.ReduceSum(body.Mul(s, s), body.int64s([1, 2]), keepdims=0)
    diagonal = _diag(body, s, n)
    off = body.Sub(total, body.ReduceSum(body.Mul(diagonal, diagonal), body.int64s([1]), keepdims=0))
    more = body.Cast(body.Greater(off, body.Mul(total, body.scalar(1e-24, _CORE))), to=onnx_dtype(_CORE))
    more = body.Greater(body.ReduceMax(more, axes=[0], keepdims=0), body.scalar(0, _CORE))
    for pairs in _round_robin(n):
        s, v = _rotations(body, s, v, n, pairs)
    outs = [more, body.Identity(s), body.Identity(v)]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in body.initializers] + body.nodes
    infos = [helper.make_tensor_value_info(outs[0], TensorProto.BOOL, [])] + [
        helper.make_tensor_value_info(o, onnx_dtype(_CORE), [batch, n, n]) for o in outs[1:]]
    graph = helper.make_graph(nodes, body.scope, body.inputs, infos)
    start = g.Add(g.Mul(s3, g.scalar(0, _CORE)), g.const(np.eye(n, dtype=_CORE)[None]))
    s3, vectors = g.Loop(g.const(np.array(_MAX_SWEEPS, np.int64)), g.const(np.array(True)), s3, start,
                         body=graph, _outputs=2)
    for value in (s3, vectors):
        g.declare(value, (batch, n, n), _CORE)
    return _diag(g, s3, n), vectors


@register(name="_linalg_syevd")
class linalg_syevd(_LaOp):
    """(U, L) with A = U^T diag(L) U for symmetric A (lower triangle read), L ascending, each row of U signed so
    that its largest-magnitude entry is positive. Mirrors MXNet syevd and its backward."""
    outputs = ("output0", "output1")       # MXNet names them by index

    def infer_shape(self, a):
        if a is None:
            return None
        _square(self, a)
        return [a], [a, tuple(a[:-1])]

    def _lower(self, g, a):
        a3, shape = _to3(g, a)
        n, dtype = shape[-1], g.dtype(a)
        core = _core(g, a3, dtype)
        size = n + n % 2            # the round-robin order pairs an even count (a zero row and column pads)
        if size != n:
            core = g.Pad(core, g.int64s([0, 0, 0, 0, 1, 1]))
        core = g.Add(_tri(g, core, True, size, _CORE), _t(g, _tri(g, core, True, size, _CORE, k=-1)))
        values, vectors = _jacobi(g, core, size, _batch(shape))
        if size != n:
            values = g.Slice(values, g.int64s([0]), g.int64s([n]), g.int64s([1]))
            vectors = g.Slice(vectors, g.int64s([0, 0]), g.int64s([n, n]), g.int64s([1, 2]))
        values, order = g.TopK(values, g.int64s([n]), axis=1, largest=0, sorted=1, _outputs=2)
        rows = g.GatherElements(_t(g, vectors), g.Expand(g.Unsqueeze(order, g.int64s([2])), g.int64s([1, n, n])),
                                axis=1)
        biggest = g.GatherElements(rows, g.ArgMax(g.Abs(rows), axis=2, keepdims=1), axis=2)
        rows = g.Mul(rows, g.Where(g.Less(biggest, g.scalar(0, _CORE)), g.scalar(-1, _CORE), g.scalar(1, _CORE)))
        u, lam = _cast(g, rows, dtype), _cast(g, values, dtype)
        if g.is_train:
            # W = U sym(dA) U^T; dL = diag(W); dU = (S o W) U with S_ij = 1/(l_i - l_j) below the diagonal,
            # -1/(l_j - l_i) above (differences clamped at MXNet's eps): the adjoint of MXNet's syevd backward
            su, sl = g.stop_gradient(u, dtype), g.stop_gradient(lam, dtype)
            delta = _delta(g, a3, dtype)
            sym = g.Mul(g.Add(delta, _t(g, delta)), g.scalar(0.5, dtype))
            w = _mm(g, _mm(g, su, sym, dtype), su, dtype, tb=True)
            eps = g.scalar(1e-30 if dtype == np.float32 else 1e-100, dtype)
            gap = g.Sub(g.Unsqueeze(sl, g.int64s([2])), g.Unsqueeze(sl, g.int64s([1])))    # l_i - l_j
            below = g.Reciprocal(g.Max(gap, eps))
            above = g.Neg(g.Reciprocal(g.Max(g.Neg(gap), eps)))
            scale = g.Add(g.Mul(below, _mask(g, np.tril(np.ones((n, n)), -1)[None], dtype)),
                          g.Mul(above, _mask(g, np.triu(np.ones((n, n)), 1)[None], dtype)))
            d_u = _mm(g, g.Mul(scale, w), su, dtype)
            u, lam = _linearized(g, u, d_u, dtype), _linearized(g, lam, _diag(g, w, n), dtype)
        return _back(g, u, shape), g.Reshape(lam, g.int64s(list(shape[:-1])))
