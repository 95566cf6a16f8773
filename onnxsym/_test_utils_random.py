"""Random data helpers of `mx.test_utils` (arrays, shapes, large-tensor builders) and its statistical checks of
random generators (mean, variance and chi-square tests, as in MXNet 1.9).

Sparse storage types ('csr', 'row_sparse') give mx.nd.sparse arrays, drawn as MXNet's helpers draw them.
The chi-square p-value is computed here (regularized upper incomplete gamma), so scipy is not needed.
"""
import math

import numpy as np
import numpy.random as rnd

from .base import MXNetError
from .context import current_context
from .ndarray import sparse
from .runtime.ndarray import NDArray, as_ndarray

__all__ = ["default_dtype", "random_arrays", "random_uniform_arrays", "random_sample", "rand_shape_2d",
           "rand_shape_3d", "rand_shape_nd", "rand_coord_2d", "assign_each", "assign_each2", "rand_ndarray",
           "rand_sparse_ndarray", "create_sparse_array", "create_sparse_array_zd", "shuffle_csr_column_indices",
           "create_2d_tensor", "create_vector", "get_identity_mat", "get_identity_mat_batch",
           "gen_buckets_probs_with_ppf", "mean_check", "var_check", "chi_square_check", "verify_generator",
           "chisquare_pvalue", "new_matrix_with_real_eigvals_2d", "new_matrix_with_real_eigvals_nd",
           "new_orthonormal_matrix_2d", "new_sym_matrix_with_real_eigvals_2d", "new_sym_matrix_with_real_eigvals_nd"]


def default_dtype():
    """The dtype of the random test data: float32."""
    return np.float32


def random_arrays(*shapes):
    """Standard-normal numpy arrays of default_dtype(), one per shape (the array itself when one shape)."""
    arrays = [np.array(np.random.randn(), dtype=default_dtype()) if len(s) == 0
              else np.random.randn(*s).astype(default_dtype()) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def random_uniform_arrays(*shapes, low=0.0, high=1.0, dtype=None):
    """Uniform [low, high) numpy arrays, one per shape (always a list)."""
    dtype = default_dtype() if dtype is None else dtype
    return [np.random.uniform(low, high, size=s).astype(dtype) for s in shapes]


def random_sample(population, k):
    """k elements of `population` in random order, without replacement."""
    assert 0 <= k <= len(population)
    population = population[:]
    np.random.shuffle(population)
    return population[0:k]


def rand_shape_2d(dim0=10, dim1=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return rnd.randint(low, dim0 + 1), rnd.randint(low, dim1 + 1)


def rand_shape_3d(dim0=10, dim1=10, dim2=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return rnd.randint(low, dim0 + 1), rnd.randint(low, dim1 + 1), rnd.randint(low, dim2 + 1)


def rand_shape_nd(num_dim, dim=10, allow_zero_size=False):
    """A random shape of `num_dim` dims, each in [1, dim] ([0, dim] with allow_zero_size)."""
    low = 0 if allow_zero_size else 1
    return tuple(rnd.randint(low, dim + 1, size=num_dim))


def rand_coord_2d(x_low, x_high, y_low, y_high):
    return np.random.randint(x_low, x_high, dtype=np.int64), np.random.randint(y_low, y_high, dtype=np.int64)


def assign_each(the_input, function):
    """numpy array with `function` applied to each element (a copy of `the_input` when function is None)."""
    if function is None:
        return np.array(the_input)
    return np.vectorize(function)(the_input)


def assign_each2(input1, input2, function):
    """numpy array function(input1[i], input2[i]) elementwise (a copy of input1 when function is None)."""
    if function is None:
        return np.array(input1)
    return np.vectorize(function)(input1, input2)


def rand_ndarray(shape, stype="default", density=None, dtype=None, modifier_func=None, shuffle_csr_indices=False,
                 distribution=None, ctx=None):
    """A random NDArray: standard-normal values for stype 'default' (float32 unless `dtype`), else
    rand_sparse_ndarray's sparse array."""
    if stype == "default":
        return as_ndarray(random_arrays(shape), ctx or current_context(), dtype)
    return rand_sparse_ndarray(shape, stype, density=density, modifier_func=modifier_func, dtype=dtype,
                               shuffle_csr_indices=shuffle_csr_indices, distribution=distribution, ctx=ctx)[0]


def rand_sparse_ndarray(shape, stype, density=None, dtype=None, distribution=None, data_init=None,
                        rsp_indices=None, modifier_func=None, shuffle_csr_indices=False, ctx=None):
    """(a random sparse array, its numpy parts) as MXNet's: row_sparse keeps each row with probability
    `density` (uniform values in [0, 1)), csr draws a scipy.sparse.rand matrix ('uniform') or fills rows with
    exponentially growing counts ('powerlaw'); numpy's global RNG throughout."""
    ctx = ctx or current_context()
    density = rnd.rand() if density is None else density
    dtype = default_dtype() if dtype is None else dtype
    distribution = "uniform" if distribution is None else distribution
    if stype == "row_sparse":
        if distribution != "uniform":
            raise MXNetError("Distribution %s not supported for row_sparse" % distribution)
        if rsp_indices is not None:
            indices = np.asarray(rsp_indices)
            if len(indices) > shape[0]:
                raise MXNetError("rsp_indices has more entries (%d) than rows (%d)" % (len(indices), shape[0]))
        else:
            indices = np.argwhere(rnd.rand(shape[0]) < density).flatten()
        if indices.shape[0] == 0:
            return sparse.zeros("row_sparse", shape, ctx=ctx, dtype=dtype), (np.array([], dtype=dtype),
                                                                             np.array([]))
        values = rnd.rand(indices.shape[0], *shape[1:]).astype(dtype)
        if data_init is not None:
            values.fill(data_init)
        if modifier_func is not None:
            values = assign_each(values, modifier_func)
        array = sparse.row_sparse_array((values, indices), shape=shape, dtype=dtype, ctx=ctx)
        return array, (values, indices)
    if stype == "csr":
        if len(shape) != 2:
            raise MXNetError("a csr array is 2-D; got shape %s" % (tuple(shape),))
        if distribution == "uniform":
            array = _uniform_csr(shape, density, dtype, data_init, shuffle_csr_indices)
        elif distribution == "powerlaw":
            array = _powerlaw_csr(shape, density, dtype)
        else:
            raise MXNetError("Distribution not supported: %s" % distribution)
        array = array.copyto(ctx) if array.context != ctx else array
        return array, (array.indptr, array.indices, array.data)
    raise MXNetError("unknown storage type %r (MXNet's sparse ones are 'row_sparse' and 'csr')" % (stype,))


def _uniform_csr(shape, density, dtype, data_init, shuffle_csr_indices):
    """MXNet's _get_uniform_dataset_csr: scipy.sparse.rand's matrix, or without scipy uniform values below
    `density` kept."""
    _check_density(density)
    try:
        import scipy.sparse
    except ImportError:
        if data_init is not None or shuffle_csr_indices:
            raise MXNetError("data_init and shuffle_csr_indices need scipy") from None
        dense = rnd.uniform(size=shape).astype(dtype)
        return sparse.csr_matrix(dense * (dense < density), dtype=dtype)
    matrix = scipy.sparse.rand(shape[0], shape[1], density, dtype=dtype, format="csr")
    if data_init is not None:
        matrix.data.fill(data_init)
    if shuffle_csr_indices:
        shuffle_csr_column_indices(matrix)
    matrix.sort_indices()   # (the dense-backed CSRNDArray lists each row's columns in order)
    return sparse.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=shape, dtype=dtype)


def _powerlaw_csr(shape, density, dtype):
    """MXNet's _get_powerlaw_dataset_csr: each row's first entry, then rows with 2, 4, 8, ... entries until
    int(rows * cols * density) are set."""
    _check_density(density)
    rows, cols = shape
    unused = int(rows * cols * density)
    if unused < 2 * rows:
        raise ValueError("not supported for this density: %s for this shape (%s,%s)" % (density, rows, cols))
    dense = np.zeros(shape, dtype=dtype)
    for row in range(rows):
        dense[row][0] = 1 + rnd.uniform(0.001, 2)
        unused -= 1
        if unused <= 0:
            return sparse.csr_matrix(dense)
    col_max = 2
    for row in range(rows):
        col_limit = min(cols, col_max)
        if col_limit == cols and unused > col_limit:
            dense[row] = 1 + rnd.uniform(0.001, 2)
            unused = unused - col_limit + 1
            if unused <= 0:
                return sparse.csr_matrix(dense)
            continue
        for col in range(1, col_limit):
            dense[row][col] = 1 + rnd.uniform(0.001, 2)
            unused -= 1
            if unused <= 0:
                return sparse.csr_matrix(dense)
        col_max *= 2
    if unused > 0:
        raise ValueError("not supported for this density: %s for this shape (%s,%s)" % (density, rows, cols))
    return sparse.csr_matrix(dense)


def _check_density(density):
    if not 0 <= density <= 1:
        raise ValueError("density has to be between 0 and 1")


def create_sparse_array(shape, stype, data_init=None, rsp_indices=None, dtype=None, modifier_func=None,
                        density=.5, shuffle_csr_indices=False):
    """A random sparse array (row_sparse indices sorted first, as MXNet's)."""
    if stype == "row_sparse" and rsp_indices is not None:
        rsp_indices = np.sort(np.asarray(rsp_indices))
    return rand_sparse_ndarray(shape, stype, density=density, dtype=dtype, data_init=data_init,
                               rsp_indices=rsp_indices, modifier_func=modifier_func,
                               shuffle_csr_indices=shuffle_csr_indices)[0]


def create_sparse_array_zd(shape, stype, density, data_init=None, rsp_indices=None, dtype=None,
                           modifier_func=None, shuffle_csr_indices=False):
    """create_sparse_array whose row_sparse rows are rsp_indices alone (density 0 otherwise), as MXNet's."""
    if stype == "row_sparse":
        density = 0.0
    return create_sparse_array(shape, stype, data_init, rsp_indices, dtype, modifier_func, density,
                               shuffle_csr_indices)


def shuffle_csr_column_indices(csr):
    """Shuffle the column indices within each row of a scipy.sparse.csr_matrix in place (MXNet's helper)."""
    for row in range(len(csr.indptr) - 1):
        start, end = csr.indptr[row], csr.indptr[row + 1]
        part = np.array(csr.indices[start:end])
        np.random.shuffle(part)
        csr.indices[start:end] = part


def create_2d_tensor(rows, columns, dtype=np.int64):
    """NDArray (rows, columns) whose row i is all i (large-tensor tests)."""
    column = np.arange(rows, dtype=dtype).reshape(rows, 1)
    return NDArray(np.ascontiguousarray(np.broadcast_to(column, (rows, columns))))


def create_vector(size, dtype=np.int64):
    """NDArray [0, 1, ..., size-1]."""
    return NDArray(np.arange(size, dtype=dtype))


def get_identity_mat(size):
    return NDArray(np.eye(size, dtype=np.float32))


def get_identity_mat_batch(size):
    return NDArray(np.stack([np.eye(size, dtype=np.float32)] * 2))


# ----- checks of random generators -----

def gen_buckets_probs_with_ppf(ppf, nbuckets):
    """`nbuckets` equal-probability buckets [(ppf(i/n), ppf((i+1)/n))] and their probabilities 1/n, from a
    quantile function (e.g. lambda x: scipy.stats.norm.ppf(x, 0, 1))."""
    assert nbuckets > 0
    probs = [1.0 / nbuckets] * nbuckets
    buckets = [(ppf(i / float(nbuckets)), ppf((i + 1) / float(nbuckets))) for i in range(nbuckets)]
    return buckets, probs


def mean_check(generator, mu, sigma, nsamples=1000000):
    """True when the mean of generator(nsamples) is within mu +- 3 sigma / sqrt(nsamples)."""
    mean = np.array(generator(nsamples)).mean()
    bound = 3 * sigma / np.sqrt(nsamples)
    return bool(mu - bound < mean < mu + bound)


def var_check(generator, sigma, nsamples=1000000):
    """True when the sample variance is within sigma^2 +- 3 sqrt(2 sigma^4 / (nsamples - 1))."""
    var = np.array(generator(nsamples)).var(ddof=1)
    bound = 3 * np.sqrt(2 * sigma ** 4 / (nsamples - 1))
    return bool(sigma ** 2 - bound < var < sigma ** 2 + bound)


def _upper_gamma_q(a, x):
    """Regularized upper incomplete gamma Q(a, x) (Numerical Recipes: series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chisquare_pvalue(f_obs, f_exp):
    """(statistic, p) of Pearson's chi-square test with len(f_obs) - 1 degrees of freedom, as
    scipy.stats.chisquare(f_obs, f_exp)."""
    f_obs, f_exp = np.asarray(f_obs, np.float64), np.asarray(f_exp, np.float64)
    statistic = float(((f_obs - f_exp) ** 2 / f_exp).sum())
    return statistic, _upper_gamma_q((len(f_obs) - 1) / 2.0, statistic / 2.0)


def chi_square_check(generator, buckets, probs, nsamples=1000000):
    """Chi-square test of generator(nsamples) against `probs`. `buckets`: ascending, disjoint (low, high)
    ranges for a continuous distribution, or the possible values of a discrete one.
    Returns (p, observed counts, expected counts)."""
    assert isinstance(buckets, list)
    assert len(probs) == len(buckets)
    samples = np.asarray(generator(nsamples))
    expected = (nsamples * np.array(probs, dtype=np.float32)).astype(np.int32)
    observed = np.zeros(len(buckets), dtype=np.int64)
    if isinstance(buckets[0], (list, tuple)):
        edges = np.zeros(2 * len(buckets), dtype=np.float32)
        for i, (low, high) in enumerate(buckets):
            assert low <= high
            if i < len(buckets) - 1:
                assert high <= buckets[i + 1][0]
            edges[2 * i], edges[2 * i + 1] = low, high
        ids = np.searchsorted(edges, samples, side="right") // 2
        for i in range(len(buckets)):
            observed[i] = (ids == i).sum()
    else:
        for i, value in enumerate(buckets):
            observed[i] = (samples == value).sum()
    _, p = chisquare_pvalue(observed, expected)
    return p, observed, expected


def verify_generator(generator, buckets, probs, nsamples=1000000, nrepeat=5, success_rate=0.2, alpha=0.05):
    """Run chi_square_check `nrepeat` times; AssertionError unless p > alpha in at least success_rate of them.
    Returns the p values."""
    results = [chi_square_check(generator, buckets, probs, nsamples) for _ in range(nrepeat)]
    pvalues = [r[0] for r in results]
    if (np.array(pvalues) > alpha).sum() < nrepeat * success_rate:
        raise AssertionError("Generator test fails, Chi-square p=%s, obs_freq=%s, expected_freq=%s.\nbuckets=%s, "
                             "probs=%s" % (pvalues, [r[1] for r in results], [r[2] for r in results], buckets,
                                           probs))
    return pvalues


# ----- matrices for linear-algebra tests -----

def new_matrix_with_real_eigvals_2d(n):
    """A random n x n matrix with real eigenvalues: Q diag(d) Q^-1 with d of distinct-ish magnitudes."""
    shape = (n, n)
    q = np.random.normal(size=shape)
    while abs(np.linalg.det(q)) < 1e-2:
        q = np.random.normal(size=shape)
    d = np.random.uniform(0.5, 1.5, n) * np.random.choice([-1, 1], n)
    return q @ np.diag(d) @ np.linalg.inv(q)


def new_matrix_with_real_eigvals_nd(shape):
    n = int(np.prod(shape[:-2]))
    return np.array([new_matrix_with_real_eigvals_2d(shape[-1]) for _ in range(n)]).reshape(shape)


def new_orthonormal_matrix_2d(n):
    q, _ = np.linalg.qr(np.random.normal(size=(n, n)))
    return q


def new_sym_matrix_with_real_eigvals_2d(n):
    q = new_orthonormal_matrix_2d(n)
    return q @ np.diag(np.random.uniform(-1, 1, n)) @ q.T


def new_sym_matrix_with_real_eigvals_nd(shape):
    n = int(np.prod(shape[:-2]))
    return np.array([new_sym_matrix_with_real_eigvals_2d(shape[-1]) for _ in range(n)]).reshape(shape)
