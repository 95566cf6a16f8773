"""Spatial ops (GridGenerator, BilinearSampler, SpatialTransformer, Correlation, im2col, col2im) against MXNet 1.9.1
(fixtures from tests/fixtures/make_spatial_fixtures.py: forward outputs and the gradients of a seeded head
gradient), independent numpy references (loops over taps, displacements and neighbours) and finite differences."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.ops import spatial
from onnxsym.test_utils import lowered_model
from .opcase import OpCase, run_case, run_gradient_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "mxnet")


def _load():
    with open(os.path.join(FIXTURES, "spatial.json")) as handle:
        metas = json.load(handle)["cases"]
    arrays = np.load(os.path.join(FIXTURES, "spatial.npz"))
    cases = {}
    for meta in metas:
        prefix = meta["name"] + "/"
        cases[meta["name"]] = (meta, {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)})
    return cases


FIXTURE = _load()
# float16: MXNet's CPU kernels round every step to float16, onnxsym computes in float32 and rounds once
TOLERANCES = {"float16": (2e-2, 2e-2), "float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12)}


def _mxnet(name, **kw):
    """An OpCase whose inputs and expected outputs are MXNet 1.9.1's recorded ones."""
    meta, arrays = FIXTURE[name]
    values = {k: arrays["in:" + k] for k in meta["inputs"]}
    rtol, atol = TOLERANCES[meta["dtype"]]
    kw.setdefault("rtol", rtol)
    kw.setdefault("atol", atol)
    return OpCase(meta["op"], dict(meta["attrs"]), {k: v.shape for k, v in values.items()},
                  lambda **_: [arrays["out:0"]], values=values, dtype=meta["dtype"], name="mxnet-" + name, **kw)


# ---------------------------------------------------------------- numpy references
def _affine_target(height, width):
    """[x; y; 1] (3, H*W) over the target grid, row-major, normalized to [-1, 1]."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    return np.stack([x.ravel(), y.ravel(), np.ones(height * width)])


def _grid_affine(height, width):
    def ref(data):
        grid = data.astype(np.float64).reshape(-1, 2, 3) @ _affine_target(height, width)
        return grid.reshape(-1, 2, height, width).astype(data.dtype)
    return ref


def _grid_warp(data):
    _, _, height, width = data.shape
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    flow = data.astype(np.float64)
    out = np.stack([(flow[:, 0] + x) / ((width - 1) / 2) - 1, (flow[:, 1] + y) / ((height - 1) / 2) - 1], axis=1)
    return out.astype(data.dtype)


def _sample(data, grid_x, grid_y):
    """Bilinear interpolation of data (N, C, H, W) at normalized points (N, OH, OW); neighbours outside are 0."""
    n, channels, height, width = data.shape
    values = data.astype(np.float64)
    x = (grid_x.astype(np.float64) + 1) * (width - 1) / 2
    y = (grid_y.astype(np.float64) + 1) * (height - 1) / 2
    out = np.zeros((n, channels) + grid_x.shape[1:])
    batch = np.arange(n).reshape(n, 1, 1)
    for dy in (0, 1):
        for dx in (0, 1):
            col, row = np.floor(x) + dx, np.floor(y) + dy
            weight = (1 - np.abs(x - col)) * (1 - np.abs(y - row))
            inside = (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
            picked = values[batch, :, np.clip(row, 0, height - 1).astype(int), np.clip(col, 0, width - 1).astype(int)]
            out += np.moveaxis(picked, -1, 1) * (weight * inside)[:, None]
    return out


def _sampler(data, grid):
    return _sample(data, grid[:, 0], grid[:, 1]).astype(data.dtype)


def _transformer(height, width):
    def ref(data, loc):
        grid = _grid_affine(height, width)(loc.astype(np.float64))
        return _sample(data, grid[:, 0], grid[:, 1]).astype(data.dtype)
    return ref


def _correlation(kernel_size=1, max_displacement=1, stride1=1, stride2=1, pad_size=0, is_multiply=True):
    """MXNet's definition, one displacement and one kernel tap at a time."""
    def ref(data1, data2):
        n, channels, height, width = data1.shape
        pad = ((0, 0), (0, 0), (pad_size, pad_size), (pad_size, pad_size))
        a, b = np.pad(data1.astype(np.float64), pad), np.pad(data2.astype(np.float64), pad)
        border = max_displacement + (kernel_size - 1) // 2
        top_h = int(np.ceil((height + 2 * pad_size - 2 * border) / stride1))
        top_w = int(np.ceil((width + 2 * pad_size - 2 * border) / stride1))
        radius = max_displacement // stride2
        out = []
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                total = np.zeros((n, top_h, top_w))
                for h in range(kernel_size):
                    for w in range(kernel_size):
                        y1 = max_displacement + h + stride1 * np.arange(top_h)
                        x1 = max_displacement + w + stride1 * np.arange(top_w)
                        p = a[:, :, y1][:, :, :, x1]
                        q = b[:, :, y1 + dy * stride2][:, :, :, x1 + dx * stride2]
                        total += (p * q if is_multiply else np.abs(p - q)).sum(axis=1)
                out.append(total / (kernel_size ** 2 * channels))
        return np.stack(out, axis=1).astype(data1.dtype)
    return ref


def _windows(kernel, stride, dilate, pad, spatial):
    """[(tap index, slices of the padded image that tap reads for every block)], blocks per dimension."""
    blocks = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, k, st, d, p in zip(spatial, kernel, stride, dilate, pad)]
    out = []
    for tap in np.ndindex(*kernel):
        out.append((tap, tuple(slice(t * d, t * d + st * (b - 1) + 1, st)
                               for t, d, st, b in zip(tap, dilate, stride, blocks))))
    return out, blocks


def _im2col(kernel, stride=None, dilate=None, pad=None):
    ndim = len(kernel)
    stride, dilate, pad = stride or (1,) * ndim, dilate or (1,) * ndim, pad or (0,) * ndim

    def ref(data):
        n, channels = data.shape[:2]
        padded = np.pad(data, [(0, 0), (0, 0)] + [(p, p) for p in pad])
        windows, blocks = _windows(kernel, stride, dilate, pad, data.shape[2:])
        taps = [padded[(slice(None), slice(None)) + where].reshape(n, channels, -1) for _, where in windows]
        return np.stack(taps, axis=2).reshape(n, channels * len(taps), -1)
    return ref


def _col2im(output_size, kernel, stride=None, dilate=None, pad=None):
    ndim = len(kernel)
    stride, dilate, pad = stride or (1,) * ndim, dilate or (1,) * ndim, pad or (0,) * ndim

    def ref(data):
        n = data.shape[0]
        windows, blocks = _windows(kernel, stride, dilate, pad, output_size)
        channels = data.shape[1] // len(windows)
        columns = data.astype(np.float64).reshape(n, channels, len(windows), *blocks)
        image = np.zeros((n, channels) + tuple(s + 2 * p for s, p in zip(output_size, pad)))
        for k, (_, where) in enumerate(windows):
            image[(slice(None), slice(None)) + where] += columns[:, :, k]
        crop = tuple(slice(p, p + s) for p, s in zip(pad, output_size))
        return image[(slice(None), slice(None)) + crop].astype(data.dtype)
    return ref


# ---------------------------------------------------------------- forward cases
def _cases(dtype, tol):
    rtol, atol = tol
    kw = dict(dtype=dtype, rtol=rtol, atol=atol)
    return [
        OpCase("GridGenerator", dict(transform_type="affine", target_shape=(3, 5)), {"data": (2, 6)},
               _grid_affine(3, 5), **kw),
        OpCase("GridGenerator", dict(transform_type="warp"), {"data": (2, 2, 4, 3)}, _grid_warp, low=-3, high=3, **kw),
        OpCase("BilinearSampler", {}, {"data": (2, 3, 5, 4), "grid": (2, 2, 3, 6)}, _sampler, low=-1.2, high=1.2,
               **kw),
        OpCase("SpatialTransformer", dict(target_shape=(4, 3), transform_type="affine", sampler_type="bilinear"),
               {"data": (2, 2, 5, 6), "loc": (2, 6)}, _transformer(4, 3), **kw),
        OpCase("Correlation", dict(kernel_size=3, max_displacement=2, stride1=2, stride2=1, pad_size=1),
               {"data1": (2, 3, 8, 7), "data2": (2, 3, 8, 7)},
               _correlation(3, 2, 2, 1, 1), **kw),
        OpCase("Correlation", dict(kernel_size=1, max_displacement=4, stride2=2, pad_size=4, is_multiply=False),
               {"data1": (1, 2, 5, 6), "data2": (1, 2, 5, 6)}, _correlation(1, 4, 1, 2, 4, False), **kw),
        OpCase("im2col", dict(kernel=(2, 3), stride=(1, 2), dilate=(2, 1), pad=(1, 1)), {"data": (2, 3, 6, 7)},
               _im2col((2, 3), (1, 2), (2, 1), (1, 1)), **kw),
        OpCase("col2im", dict(output_size=(6, 7), kernel=(2, 3), stride=(1, 2), dilate=(2, 1), pad=(1, 1)),
               {"data": (2, 18, 24)}, _col2im((6, 7), (2, 3), (1, 2), (2, 1), (1, 1)), **kw),
    ]


CASES = (_cases("float32", (1e-5, 1e-6)) + _cases("float64", (1e-12, 1e-12)) + _cases("float16", (2e-2, 2e-2)) + [
    # 1-D and 3-D blocks (MXNet documents them; its CPU kernels fail on them in TBlob.get_with_shape)
    OpCase("im2col", dict(kernel=(3,), stride=(2,), pad=(1,)), {"data": (2, 3, 9)}, _im2col((3,), (2,), None, (1,))),
    OpCase("col2im", dict(output_size=(9,), kernel=(3,), stride=(2,), pad=(1,)), {"data": (2, 9, 5)},
           _col2im((9,), (3,), (2,), None, (1,))),
    OpCase("im2col", dict(kernel=(2, 2, 3), stride=(1, 2, 1), dilate=(1, 1, 2), pad=(0, 1, 1)),
           {"data": (1, 2, 3, 4, 6)}, _im2col((2, 2, 3), (1, 2, 1), (1, 1, 2), (0, 1, 1))),
    OpCase("col2im", dict(output_size=(3, 4, 6), kernel=(2, 2, 3), stride=(1, 2, 1), dilate=(1, 1, 2), pad=(0, 1, 1)),
           {"data": (1, 24, 24)}, _col2im((3, 4, 6), (2, 2, 3), (1, 2, 1), (1, 1, 2), (0, 1, 1))),
    # GridGenerator's + BilinearSampler's docstring examples (zoom out twice; shift left by one pixel)
    OpCase("BilinearSampler", {}, {"data": (1, 1, 4, 4), "grid": (1, 2, 4, 4)},
           lambda **_: np.array([[[[0, 0, 0, 0], [0, 3.5, 6.5, 0], [0, 1.25, 2.5, 0], [0, 0, 0, 0]]]], np.float32),
           values={"data": np.array([[[[1, 4, 3, 6], [1, 8, 8, 9], [0, 4, 1, 5], [1, 0, 1, 3]]]], np.float32),
                   "grid": _grid_affine(4, 4)(np.array([[2, 0, 0, 0, 2, 0]], np.float32))}, atol=1e-6),
    OpCase("BilinearSampler", {}, {"data": (1, 1, 4, 4), "grid": (1, 2, 4, 4)},
           lambda **_: np.array([[[[4, 3, 6, 0], [8, 8, 9, 0], [4, 1, 5, 0], [0, 1, 3, 0]]]], np.float32),
           values={"data": np.array([[[[1, 4, 3, 6], [1, 8, 8, 9], [0, 4, 1, 5], [1, 0, 1, 3]]]], np.float32),
                   "grid": _grid_warp(np.stack([np.ones((4, 4)), np.zeros((4, 4))])[None].astype(np.float32))},
           atol=1e-5),     # the float32 grid puts x = 3 a few ulps off the pixel
] + [_mxnet(name) for name in sorted(FIXTURE) if name != "gridgen_affine_row"])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_docstring_examples_through_both_ops():
    """MXNet's BilinearSampler docstring: GridGenerator's grids (affine zoom-out, warp by one pixel) sampled."""
    data = mx.nd.array([[[[1, 4, 3, 6], [1, 8, 8, 9], [0, 4, 1, 5], [1, 0, 1, 3]]]])
    zoom = mx.nd.GridGenerator(mx.nd.array([[2, 0, 0, 0, 2, 0]]), transform_type="affine", target_shape=(4, 4))
    np.testing.assert_allclose(mx.nd.BilinearSampler(data, zoom).asnumpy(),
                               [[[[0, 0, 0, 0], [0, 3.5, 6.5, 0], [0, 1.25, 2.5, 0], [0, 0, 0, 0]]]], atol=1e-6)
    flow = mx.nd.array(np.stack([np.ones((4, 4)), np.zeros((4, 4))])[None])
    shifted = mx.nd.BilinearSampler(data, mx.nd.GridGenerator(flow, transform_type="warp"))
    np.testing.assert_allclose(shifted.asnumpy(), [[[[4, 3, 6, 0], [8, 8, 9, 0], [4, 1, 5, 0], [0, 1, 3, 0]]]],
                               atol=1e-5)


def _bind(meta, arrays, grads=True, grad_req="write"):
    sym = mx.sym.load_json(meta["tojson"])
    args = {k: mx.nd.array(arrays["in:" + k], dtype=arrays["in:" + k].dtype) for k in meta["inputs"]}
    grad = {k: mx.nd.zeros(v.shape, dtype=v.dtype) for k, v in args.items()} if grads else None
    return sym, sym.bind(mx.cpu(), args=args, args_grad=grad, grad_req=grad_req), grad


@pytest.mark.parametrize("name", sorted(n for n in FIXTURE if FIXTURE[n][0]["grad"]))
def test_training_step_matches_mxnet(name):
    """MXNet's JSON loads; forward(is_train=True) and backward for MXNet's head gradient equal MXNet's."""
    meta, arrays = FIXTURE[name]
    sym, exe, grads = _bind(meta, arrays)
    assert sym.list_arguments() == meta["list_arguments"] and sym.list_outputs() == meta["list_outputs"]
    rtol, atol = TOLERANCES[meta["dtype"]]
    out = exe.forward(is_train=True)[0]
    assert out.dtype == np.dtype(meta["dtype"])
    np.testing.assert_allclose(out.asnumpy(), arrays["out:0"], rtol=rtol, atol=atol)
    exe.backward([mx.nd.array(arrays["head:0"], dtype=arrays["head:0"].dtype)])
    for k in meta["inputs"]:
        got = grads[k].asnumpy()
        assert got.dtype == np.dtype(meta["dtype"])
        # float16 grid gradients: products of O(1) values summed over channels, rounded by MXNet at each step
        np.testing.assert_allclose(got, arrays["grad:" + k], rtol=rtol, atol=atol * (4 if k == "grid" else 1),
                                   err_msg="gradient of " + k)


def test_grid_of_one_row_is_nan_as_in_mxnet():
    """target_shape (1, W): MXNet's target y = -1 + 0 * (2 / 0) is NaN, so is every output."""
    meta, arrays = FIXTURE["gridgen_affine_row"]
    sym, exe, _ = _bind(meta, arrays, grads=False)
    out = exe.forward()[0].asnumpy()
    assert np.isnan(arrays["out:0"]).all()
    np.testing.assert_allclose(out, arrays["out:0"], rtol=1e-6, equal_nan=True)


# ---------------------------------------------------------------- finite differences (float64)
GRADIENT_CASES = [
    OpCase("GridGenerator", dict(transform_type="affine", target_shape=(3, 4)), {"data": (2, 6)},
           _grid_affine(3, 4), dtype="float64"),
    OpCase("GridGenerator", dict(transform_type="warp"), {"data": (1, 2, 3, 4)}, _grid_warp, dtype="float64"),
    # points inside and across the borders, away from pixel positions (the kinks of bilinear interpolation)
    OpCase("BilinearSampler", {}, {"data": (2, 2, 4, 5), "grid": (2, 2, 3, 3)}, _sampler, dtype="float64",
           values={"grid": np.array([0.13, 0.61, -0.37, 1.09, -1.12, 0.27, 0.9, -0.77, 0.41], np.float64).reshape(
               1, 1, 3, 3) * np.array([1, -0.85]).reshape(1, 2, 1, 1) * np.array([1, 0.8]).reshape(2, 1, 1, 1)}),
    OpCase("SpatialTransformer", dict(target_shape=(3, 4), transform_type="affine", sampler_type="bilinear"),
           {"data": (1, 2, 5, 6), "loc": (1, 6)}, _transformer(3, 4), dtype="float64",
           values={"loc": np.array([[0.83, 0.12, 0.07, -0.09, 1.07, 0.063]])}),
    OpCase("Correlation", dict(kernel_size=3, max_displacement=1, stride1=2, pad_size=2),
           {"data1": (1, 2, 5, 5), "data2": (1, 2, 5, 5)}, _correlation(3, 1, 2, 1, 2), dtype="float64"),
    OpCase("Correlation", dict(kernel_size=1, max_displacement=2, stride2=2, pad_size=1, is_multiply=False),
           {"data1": (1, 2, 4, 5), "data2": (1, 2, 4, 5)}, _correlation(1, 2, 1, 2, 1, False), dtype="float64"),
    OpCase("im2col", dict(kernel=(2, 2), stride=(2, 1), dilate=(1, 2), pad=(1, 1)), {"data": (1, 2, 4, 5)},
           _im2col((2, 2), (2, 1), (1, 2), (1, 1)), dtype="float64"),
    OpCase("col2im", dict(output_size=(4, 5), kernel=(2, 2), stride=(2, 1), dilate=(1, 2), pad=(1, 1)),
           {"data": (1, 8, 15)}, _col2im((4, 5), (2, 2), (2, 1), (1, 2), (1, 1)), dtype="float64"),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=str)
def test_gradient_by_finite_differences(case):
    run_case(case)
    run_gradient_case(case, rtol=1e-5, atol=1e-8)


def _analytic_sampler_gradients(data, grid, head):
    """MXNet's BilinearSamplerBackward written out: data gradient scattered with the weights of the neighbours
    inside, grid gradient -head * (d out / d top-left weight) scaled by (size - 1) / 2."""
    n, channels, height, width = data.shape
    x = (grid[:, 0] + 1) * (width - 1) / 2
    y = (grid[:, 1] + 1) * (height - 1) / 2
    gdata, ggrid = np.zeros_like(data), np.zeros_like(grid)
    for b, i, j in np.ndindex(n, *grid.shape[2:]):
        x0, y0 = int(np.floor(x[b, i, j])), int(np.floor(y[b, i, j]))
        wx, wy = 1 - (x[b, i, j] - x0), 1 - (y[b, i, j] - y0)
        corner = lambda r, c: data[b, :, r, c] if 0 <= r < height and 0 <= c < width else np.zeros(channels)
        tl, tr, bl, br = corner(y0, x0), corner(y0, x0 + 1), corner(y0 + 1, x0), corner(y0 + 1, x0 + 1)
        for r, c, w in ((y0, x0, wy * wx), (y0, x0 + 1, wy * (1 - wx)), (y0 + 1, x0, (1 - wy) * wx),
                        (y0 + 1, x0 + 1, (1 - wy) * (1 - wx))):
            if 0 <= r < height and 0 <= c < width:
                gdata[b, :, r, c] += head[b, :, i, j] * w
        g = head[b, :, i, j]
        ggrid[b, 1, i, j] = -np.sum(g * (tr - br + (tl - tr - bl + br) * wx)) * (height - 1) / 2
        ggrid[b, 0, i, j] = -np.sum(g * (bl - br + (tl - tr - bl + br) * wy)) * (width - 1) / 2
    return gdata, ggrid


def test_sampler_gradient_on_pixels_and_borders_is_mxnets():
    """At integer positions (the kinks) the gradient is MXNet's one-sided one: floor picks the pixel itself, and
    a right/lower neighbour outside the image counts as 0."""
    rng = np.random.RandomState(3)
    data = rng.uniform(-1, 1, (1, 2, 3, 4))
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)))[None]
    grid = np.concatenate([grid, rng.uniform(-1.4, 1.4, grid.shape)], axis=3)
    head = rng.uniform(-1, 1, (1, 2) + grid.shape[2:])
    sym = mx.sym.BilinearSampler(mx.sym.Variable("data"), mx.sym.Variable("grid"))
    grads = {"data": mx.nd.zeros(data.shape, dtype="float64"), "grid": mx.nd.zeros(grid.shape, dtype="float64")}
    exe = sym.bind(mx.cpu(), args={"data": mx.nd.array(data, dtype="float64"),
                                   "grid": mx.nd.array(grid, dtype="float64")}, args_grad=grads)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(head, dtype="float64")])
    gdata, ggrid = _analytic_sampler_gradients(data, grid, head)
    np.testing.assert_allclose(grads["data"].asnumpy(), gdata, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["grid"].asnumpy(), ggrid, rtol=1e-12, atol=1e-12)


def test_correlation_abs_gradient_at_ties_is_mxnets():
    """|a - b| at a == b: data1 gets +head, data2 -head (MXNet's sign(a >= b)); checked on the recorded case."""
    meta, arrays = FIXTURE["corr_abs_ties"]
    assert np.array_equal(arrays["in:data1"], arrays["in:data2"])
    _, exe, grads = _bind(meta, arrays)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(arrays["head:0"])])
    np.testing.assert_allclose(grads["data1"].asnumpy(), arrays["grad:data1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["data2"].asnumpy(), arrays["grad:data2"], rtol=1e-5, atol=1e-6)


def test_correlation_in_chunks_of_displacements(monkeypatch):
    """Displacements gathered a few at a time (what large neighbourhoods do) give the same values and gradients."""
    monkeypatch.setattr(spatial, "_CHUNK", 4 * 2 * 16 * 3)        # 4 of the 9 displacements (N, 4x4 region, C)
    case = OpCase("Correlation", dict(kernel_size=3, max_displacement=2, stride2=2, pad_size=1, is_multiply=False),
                  {"data1": (2, 3, 6, 6), "data2": (2, 3, 6, 6)}, _correlation(3, 2, 1, 2, 1, False),
                  dtype="float64", name="correlation-chunks")
    run_case(case)
    run_gradient_case(case, rtol=1e-5, atol=1e-8)
    model = lowered_model(case.symbol(), {"data1": (2, 3, 6, 6), "data2": (2, 3, 6, 6)},
                          {"data1": np.float64, "data2": np.float64}).model
    assert [len(node.input) for node in model.graph.node if node.op_type == "Concat"] == [3]


def test_im2col_and_col2im_are_each_others_gradient():
    """MXNet's test_im2col_col2im property: <im2col(x), c> == <x, col2im(c)>."""
    rng = np.random.RandomState(1)
    attrs = dict(kernel=(3, 2), stride=(2, 1), dilate=(1, 2), pad=(1, 1))
    x = rng.uniform(-1, 1, (2, 3, 7, 6))
    cols = mx.nd.im2col(mx.nd.array(x, dtype="float64"), **attrs).asnumpy()
    c = rng.uniform(-1, 1, cols.shape)
    image = mx.nd.col2im(mx.nd.array(c, dtype="float64"), output_size=(7, 6), **attrs).asnumpy()
    assert np.isclose(np.sum(cols * c), np.sum(x * image), rtol=1e-12)


def test_spatial_transformer_grad_req_add_accumulates():
    """grad_req='add' adds the gradients to the bound arrays (MXNet 1.9.1's SpatialTransformer overwrites them:
    its backward zeroes the data gradient and assigns the loc gradient whatever the request)."""
    meta, arrays = FIXTURE["stn_float64"]
    start = {k: np.full(arrays["in:" + k].shape, 0.5) for k in meta["inputs"]}
    sym = mx.sym.load_json(meta["tojson"])
    grads = {k: mx.nd.array(v, dtype="float64") for k, v in start.items()}
    exe = sym.bind(mx.cpu(), args={k: mx.nd.array(arrays["in:" + k], dtype="float64") for k in meta["inputs"]},
                   args_grad=grads, grad_req="add")
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(arrays["head:0"], dtype="float64")])
    for k in meta["inputs"]:
        np.testing.assert_allclose(grads[k].asnumpy(), start[k] + arrays["grad:" + k], rtol=1e-10, atol=1e-12)


def test_sampling_far_outside_or_at_nan_points():
    """Points far outside the image sample 0 with zero gradients; a NaN point gives NaN there, nothing else."""
    data = mx.nd.array(np.ones((1, 1, 3, 3)))
    grid = np.array([[[[1e30, -1e30, 5.0, np.nan]], [[0.0, 0.0, -7.0, 0.0]]]], np.float32)
    out = mx.nd.BilinearSampler(data, mx.nd.array(grid)).asnumpy()
    assert out[0, 0, 0, :3].tolist() == [0, 0, 0] and np.isnan(out[0, 0, 0, 3])
    sym = mx.sym.BilinearSampler(mx.sym.Variable("data"), mx.sym.Variable("grid"))
    grads = {"data": mx.nd.ones((1, 1, 3, 3)), "grid": mx.nd.ones((1, 2, 1, 3))}
    exe = sym.bind(mx.cpu(), args={"data": data, "grid": mx.nd.array(grid[..., :3])}, args_grad=grads)
    exe.forward(is_train=True)
    exe.backward([mx.nd.ones((1, 1, 1, 3))])
    assert not grads["data"].asnumpy().any() and not grads["grid"].asnumpy().any()


# ---------------------------------------------------------------- names, shapes, types and errors
def test_names_shapes_and_hidden_outputs():
    data, loc = mx.sym.Variable("data"), mx.sym.Variable("loc")
    stn = mx.sym.SpatialTransformer(data, loc, target_shape=(4, 5), transform_type="affine", sampler_type="bilinear",
                                    name="stn")
    assert stn.list_arguments() == ["data", "loc"] and stn.list_outputs() == ["stn_output"]
    assert stn.infer_shape(data=(2, 3, 9, 9), loc=(2, 6)) == ([(2, 3, 9, 9), (2, 6)], [(2, 3, 4, 5)], [])
    grid = mx.sym.GridGenerator(loc, transform_type="affine", target_shape=(3, 7), name="grid")
    sampler = mx.sym.BilinearSampler(data, grid, name="sampler")
    assert sampler.list_arguments() == ["data", "loc"] and sampler.list_outputs() == ["sampler_output"]
    assert sampler.get_internals().list_outputs() == ["data", "loc", "grid_output", "sampler_output"]
    assert sampler.infer_shape(data=(2, 3, 9, 9), loc=(2, 6))[1] == [(2, 3, 3, 7)]
    warp = mx.sym.GridGenerator(data, transform_type="warp", target_shape=(1, 1))
    assert warp.infer_shape(data=(2, 2, 5, 6))[1] == [(2, 2, 5, 6)]
    corr = mx.sym.Correlation(data, loc, name="corr")
    assert corr.list_arguments() == ["data", "loc"] and corr.list_outputs() == ["corr_output"]
    assert corr.infer_shape(data=(1, 3, 10, 12)) == ([(1, 3, 10, 12)] * 2, [(1, 9, 8, 10)], [])
    assert mx.sym.Correlation(data, loc, kernel_size=3, max_displacement=2, stride1=3, stride2=2,
                              pad_size=1).infer_shape(data=(1, 1, 9, 11))[1] == [(1, 9, 2, 3)]   # ceil
    assert corr.infer_type(data="float16") == ([np.float16, np.float16], [np.float16], [])
    assert corr.infer_type(loc="float64")[1] == [np.float64]
    assert mx.sym.im2col(data, kernel=(3, 3), stride=(2, 2)).infer_shape(data=(5, 3, 30, 20))[1] == [(5, 27, 126)]
    assert mx.sym.col2im(data, (30, 20), kernel=(3, 3), stride=(2, 2)).infer_shape(data=(5, 27, 126))[1] == [
        (5, 3, 30, 20)]


@pytest.mark.parametrize("build, shapes, words", [
    (lambda d, e: mx.sym.GridGenerator(d, transform_type="affine"), {"d": (1, 6)}, ["incorrect target_shape: 0"]),
    (lambda d, e: mx.sym.GridGenerator(d, transform_type="affine", target_shape=(-1, 2)), {"d": (1, 6)},
     ["incorrect target_shape: -1"]),
    (lambda d, e: mx.sym.GridGenerator(d, transform_type="affine", target_shape=(2, 2)), {"d": (1, 4)},
     ["shape[1], should be 6"]),
    (lambda d, e: mx.sym.GridGenerator(d, transform_type="warp"), {"d": (1, 3, 2, 2)}, ["shape[1], should be 2"]),
    (lambda d, e: mx.sym.GridGenerator(d, transform_type="warp"), {"d": (1, 2, 2)}, ["'data'", "4-D"]),
    (lambda d, e: mx.sym.BilinearSampler(d, e), {"d": (1, 1, 4, 4), "e": (1, 3, 2, 2)}, ["grid", "should be 2"]),
    (lambda d, e: mx.sym.BilinearSampler(d, e), {"d": (2, 1, 4, 4), "e": (1, 2, 2, 2)}, ["batch"]),
    (lambda d, e: mx.sym.BilinearSampler(d, e), {"d": (1, 4, 4), "e": (1, 2, 2, 2)}, ["'data'", "4-D"]),
    (lambda d, e: mx.sym.SpatialTransformer(d, e, transform_type="affine", sampler_type="bilinear"),
     {"d": (1, 1, 4, 4), "e": (1, 6)}, ["incorrect target_shape: 0"]),
    (lambda d, e: mx.sym.SpatialTransformer(d, e, target_shape=(2, 2), transform_type="affine",
                                            sampler_type="bilinear"), {"d": (1, 1, 4, 4), "e": (1, 4)}, ["should be 6"]),
    (lambda d, e: mx.sym.SpatialTransformer(d, e, target_shape=(2, 2), transform_type="affine",
                                            sampler_type="bilinear"), {"d": (2, 1, 4, 4), "e": (1, 6)}, ["batch"]),
    (lambda d, e: mx.sym.Correlation(d, e, kernel_size=28), {"d": (1, 1, 28, 28)}, ["don't fit"]),
    (lambda d, e: mx.sym.Correlation(d, e, max_displacement=20), {"d": (1, 1, 28, 28)}, ["don't fit"]),
    (lambda d, e: mx.sym.Correlation(d, e), {"d": (1, 1, 8, 8), "e": (1, 1, 8, 9)}, ["same shape"]),
    (lambda d, e: mx.sym.Correlation(d, e), {"d": (1, 8, 8)}, ["'data1'", "4-D"]),
    (lambda d, e: mx.sym.im2col(d, kernel=(4, 4)), {"d": (1, 1, 3, 3)}, ["kernel size exceed input"]),
    (lambda d, e: mx.sym.im2col(d, kernel=(2, 2)), {"d": (1, 1, 3, 3, 3)}, ["'data'", "4-D"]),
    (lambda d, e: mx.sym.col2im(d, output_size=(3, 3), kernel=(2, 2)), {"d": (1, 4, 5)},
     ["output size does not match"]),
    (lambda d, e: mx.sym.col2im(d, output_size=(3, 3), kernel=(2, 2)), {"d": (1, 5, 4)}, ["multiples of kernel"]),
])
def test_shape_errors(build, shapes, words):
    with pytest.raises(mx.MXNetError) as err:
        build(mx.sym.Variable("d"), mx.sym.Variable("e")).infer_shape(**shapes)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("op, attrs, word", [
    ("im2col", dict(kernel=(2, 2), stride=(1,)), "stride"),
    ("im2col", dict(kernel=(2, 2, 2, 2)), "4D convolution not supported"),
    ("im2col", dict(kernel=(2, 0)), "incorrect kernel size"),
    ("im2col", dict(kernel=(2, 2), dilate=(0, 1)), "incorrect dilate size"),
    ("im2col", dict(kernel=(2, 2), pad=(-1, 0)), "pad"),
    ("col2im", dict(output_size=(3,), kernel=(2, 2)), "output_size"),
    ("col2im", dict(kernel=(2, 2)), "output_size"),
    ("Correlation", dict(stride2=0), "stride2"),
    ("Correlation", dict(kernel_size=-1), "kernel_size"),
    ("GridGenerator", dict(transform_type="perspective"), "transform_type"),
    ("GridGenerator", {}, "transform_type"),
    ("SpatialTransformer", dict(transform_type="affine"), "sampler_type"),
    ("SpatialTransformer", dict(transform_type="affine", sampler_type="nearest"), "sampler_type"),
])
def test_attribute_errors(op, attrs, word):
    with pytest.raises(mx.MXNetError, match=word):
        getattr(mx.sym, op)(mx.sym.Variable("d"), **attrs)


def test_correlation_even_kernel_fails_when_run():
    """MXNet accepts an even kernel_size in the symbol and shape inference, and refuses it in Forward."""
    a = mx.nd.array(np.random.RandomState(0).rand(1, 1, 28, 28))
    assert mx.sym.Correlation(mx.sym.Variable("a"), mx.sym.Variable("b"), kernel_size=2).infer_shape(
        a=(1, 1, 28, 28))[1] == [(1, 9, 26, 26)]
    with pytest.raises(mx.MXNetError, match="odd"):
        mx.nd.Correlation(a, a, kernel_size=2)
    assert mx.nd.Correlation(a, a, kernel_size=9).shape == (1, 9, 18, 18)


def test_type_errors():
    with pytest.raises(mx.MXNetError, match="Non-uniform data type in BilinearSampler"):
        mx.sym.BilinearSampler(mx.sym.Variable("d"), mx.sym.Variable("g")).infer_type(d="float64", g="float32")
    with pytest.raises(mx.MXNetError, match="float16, float32 or float64"):
        mx.nd.im2col(mx.nd.ones((1, 1, 3, 3), dtype="int32"), kernel=(2, 2))
