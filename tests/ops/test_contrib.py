"""Legacy-model ops (_contrib_BilinearResize2D, _contrib_AdaptiveAvgPooling2D, ROIPooling, _contrib_ROIAlign, RNN,
_contrib_box_nms, amp_multicast) against MXNet 1.9.1 (fixtures from tests/fixtures/make_contrib_fixtures.py:
forward outputs and backward gradients for seeded head gradients) and independent numpy references."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from .opcase import OpCase, run_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "mxnet")


def _load(part):
    with open(os.path.join(FIXTURES, "contrib_%s.json" % part)) as handle:
        metas = json.load(handle)["cases"]
    arrays = np.load(os.path.join(FIXTURES, "contrib_%s.npz" % part))
    cases = {}
    for meta in metas:
        prefix = meta["name"] + "/"
        cases[meta["name"]] = (meta, {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)})
    return cases


FIXTURE = {**_load("ops"), **_load("rnn")}
ROI_INPUTS = {"rois": (0, 1)}       # batch indices / coordinates: no gradient in MXNet, kept out of the FD check


def _mxnet(name, **kw):
    """An OpCase whose inputs and expected outputs are MXNet 1.9.1's recorded ones."""
    meta, arrays = FIXTURE[name]
    values = {k: arrays["in:" + k] for k in meta["inputs"]}
    outputs = [arrays["out:%d" % i] for i in range(len(meta["out_shapes"]))]
    kw.setdefault("int_inputs", ROI_INPUTS if "rois" in values else {})
    return OpCase(meta["op"], dict(meta["attrs"]), {k: v.shape for k, v in values.items()},
                  lambda **_: outputs, values=values, name="mxnet-" + name, **kw)


# ---------------------------------------------------------------- numpy references
def _interp(n_in, n_out, align):
    f = np.float32
    ratio = (f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)) if align else f(n_in) / f(n_out)
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = ratio * f(o) if align else max(ratio * (f(o) + f(0.5)) - f(0.5), f(0))
        i = int(np.floor(src))
        m[o, i] += 1 - (src - i)
        m[o, min(i + 1, n_in - 1)] += src - i
    return m


def _bilinear(oh, ow, align=True):
    return lambda data, **_: np.einsum("oh,nchw,pw->ncop", _interp(data.shape[2], oh, align), data,
                                       _interp(data.shape[3], ow, align)).astype(data.dtype)


def _adaptive(oh, ow):
    def pool(data):
        n, c, h, w = data.shape
        out = np.zeros((n, c, oh, ow), data.dtype)
        for i in range(oh):
            for j in range(ow):
                rs, re = int(np.floor(i * h / oh)), int(np.ceil((i + 1) * h / oh))
                cs, ce = int(np.floor(j * w / ow)), int(np.ceil((j + 1) * w / ow))
                out[:, :, i, j] = data[:, :, rs:re, cs:ce].mean(axis=(2, 3))
        return out
    return pool


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _rnn(mode, hidden, layers, bidirectional=False, state_outputs=False):
    """MXNet's fused RNN: packed weights (per layer and direction i2h, h2h) then biases; LSTM gates i,f,g,o, GRU
    r,z,n with the reset gate applied to (W_hn h + b_hn)."""
    gates, dirs = {"lstm": 4, "gru": 3}.get(mode, 1), 2 if bidirectional else 1

    def run(data, parameters, state, state_cell=None):
        seq, _, size = data.shape
        pos, blocks = 0, []
        for layer in range(layers):
            width = size if layer == 0 else dirs * hidden
            for _ in range(dirs):
                wx = parameters[pos:pos + gates * hidden * width].reshape(-1, width)
                pos += wx.size
                wh = parameters[pos:pos + gates * hidden * hidden].reshape(-1, hidden)
                pos += wh.size
                blocks.append([wx, wh])
        for block in blocks:
            block += [parameters[pos:pos + gates * hidden], parameters[pos + gates * hidden:pos + 2 * gates * hidden]]
            pos += 2 * gates * hidden
        x, hy, cy = data.astype(np.float64), [], []
        for layer in range(layers):
            outs = []
            for d in range(dirs):
                wx, wh, bx, bh = blocks[layer * dirs + d]
                h = state[layer * dirs + d].astype(np.float64)
                c = state_cell[layer * dirs + d].astype(np.float64) if mode == "lstm" else None
                ys = [None] * seq
                for t in (range(seq) if d == 0 else reversed(range(seq))):
                    gx, gh = x[t] @ wx.T + bx, h @ wh.T + bh
                    if mode == "lstm":
                        i, f, g, o = np.split(gx + gh, 4, axis=1)
                        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                        h = _sigmoid(o) * np.tanh(c)
                    elif mode == "gru":
                        (xr, xz, xn), (hr, hz, hn) = np.split(gx, 3, axis=1), np.split(gh, 3, axis=1)
                        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
                        n = np.tanh(xn + r * hn)
                        h = (1 - z) * n + z * h
                    else:
                        h = np.tanh(gx + gh) if mode == "rnn_tanh" else np.maximum(gx + gh, 0)
                    ys[t] = h
                outs.append(np.stack(ys))
                hy.append(h)
                cy.append(c)
            x = np.concatenate(outs, axis=-1)
        outs = [x, np.stack(hy)] + ([np.stack(cy)] if mode == "lstm" else [])
        return [o.astype(data.dtype) for o in (outs if state_outputs else outs[:1])]
    return run


def _nms(overlap_thresh=0.5, valid_thresh=0.0, topk=-1, coord_start=2, score_index=1, id_index=-1,
         background_id=-1, force_suppress=False, in_format="corner", out_format="corner"):
    """Greedy NMS over each batch row, MXNet's rules (stable descending sort, first topk, IoU > thresh)."""
    def corners(b):
        return b if in_format == "corner" else np.array([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2,
                                                         b[1] + b[3] / 2])

    def area(b):
        w, h = (b[2] - b[0], b[3] - b[1]) if in_format == "corner" else (b[2], b[3])
        return 0.0 if w < 0 or h < 0 else w * h

    def run(data):
        if topk == 0:
            return data.copy()
        flat = data.reshape(-1, *data.shape[-2:])
        out = -np.ones_like(flat)
        for b, rows in enumerate(flat):
            valid = [i for i in range(len(rows)) if rows[i, score_index] > np.float32(valid_thresh)
                     and (id_index < 0 or rows[i, id_index] != background_id)]
            order = sorted(valid, key=lambda i: -rows[i, score_index])
            order = order[:len(rows) if topk < 0 else topk]
            kept = []
            for i in order:
                box = corners(rows[i, coord_start:coord_start + 4])
                for j in kept:
                    if id_index >= 0 and not force_suppress and int(rows[i, id_index]) != int(rows[j, id_index]):
                        continue
                    ref = corners(rows[j, coord_start:coord_start + 4])
                    w = np.float32(max(min(box[2], ref[2]) - max(box[0], ref[0]), 0))
                    h = np.float32(max(min(box[3], ref[3]) - max(box[1], ref[1]), 0))
                    inter = w * h
                    union = area(rows[i, coord_start:coord_start + 4]) + area(rows[j, coord_start:coord_start + 4])
                    with np.errstate(invalid="ignore", divide="ignore"):
                        iou = np.float32(inter) / np.float32(union - inter)     # 0/0: NaN, never suppresses
                    if iou > np.float32(overlap_thresh):
                        break
                else:
                    kept.append(i)
            out[b, :len(kept)] = rows[kept]
            if in_format != out_format:
                for r in out[b, :len(kept)]:
                    a, bb, c, d = r[coord_start:coord_start + 4].copy()
                    if a >= 0:
                        r[coord_start:coord_start + 4] = ([(a + c) / 2, (bb + d) / 2, c - a, d - bb]
                                                         if out_format == "center" else
                                                         [a - c / 2, bb - d / 2, a + c / 2, bb + d / 2])
        return out.reshape(data.shape)
    return run


def _multicast(narrow=False):
    def run(**inputs):
        arrays = [inputs["data_%d" % i] for i in range(len(inputs))]
        floats = (np.float32, np.float16)
        target = np.float32 if narrow else arrays[0].dtype
        for a in arrays:
            if a.dtype == (np.float16 if narrow else np.float32):
                target = a.dtype
        return [a.astype(target) if a.dtype in floats else a for a in arrays]
    return run


def _boxes(rng, batch, num, ids=True):
    """Boxes [id+0.5, score, x1, y1, x2, y2]: ids away from integer boundaries, scores 0.02 apart."""
    ident = rng.randint(0, 2, (batch, num, 1)) + 0.5
    score = (rng.permutation(batch * num).reshape(batch, num, 1) + 1) * 0.02
    low = rng.uniform(0, 0.5, (batch, num, 2))
    return np.concatenate([ident, score, low, low + rng.uniform(0.2, 0.4, (batch, num, 2))], -1).astype(np.float32)


DOC_ROI = np.array([[0, 0, 0, 4, 4]], np.float32)
DOC_NMS = np.array([[0, 0.5, 0.1, 0.1, 0.2, 0.2], [1, 0.4, 0.1, 0.1, 0.2, 0.2], [0, 0.3, 0.1, 0.1, 0.14, 0.14],
                    [2, 0.6, 0.5, 0.5, 0.7, 0.8]], np.float32)
DOC_NMS_ATTRS = dict(overlap_thresh=0.1, coord_start=2, score_index=1, id_index=0, force_suppress=True)
DOC_NMS_OUT = np.array([[2, 0.6, 0.5, 0.5, 0.7, 0.8], [0, 0.5, 0.1, 0.1, 0.2, 0.2], [-1] * 6, [-1] * 6], np.float32)
NMS_DATA = _boxes(np.random.RandomState(0), 2, 8)     # no kept set changes under +-0.011 on any element
NMS_CENTER = np.concatenate([NMS_DATA[0, :, :2], NMS_DATA[0, :, 2:4] + 0.15, NMS_DATA[0, :, 4:] - NMS_DATA[0, :, 2:4]],
                            -1)

CASES = [
    # BilinearResize2D
    OpCase("_contrib_BilinearResize2D", dict(height=5, width=7), {"data": (2, 3, 4, 4)}, _bilinear(5, 7)),
    OpCase("_contrib_BilinearResize2D", dict(height=3, width=6, align_corners=False), {"data": (1, 2, 5, 4)},
           _bilinear(3, 6, False), dtype="float64"),
    OpCase("_contrib_BilinearResize2D", dict(mode="like"), {"data": (1, 2, 3, 4), "like": (1, 5, 6, 2)},
           _bilinear(6, 2)),
    OpCase("_contrib_BilinearResize2D", dict(mode="to_odd_up"), {"data": (1, 1, 4, 5)}, _bilinear(5, 5)),
    OpCase("_contrib_BilinearResize2D", dict(scale_height=0.5, scale_width=2.0, align_corners=False),
           {"data": (1, 1, 6, 3)}, _bilinear(3, 6, False)),
    # AdaptiveAvgPooling2D
    OpCase("_contrib_AdaptiveAvgPooling2D", dict(output_size=(3, 2)), {"data": (2, 3, 7, 5)}, _adaptive(3, 2)),
    OpCase("_contrib_AdaptiveAvgPooling2D", {}, {"data": (2, 3, 4, 5)}, _adaptive(1, 1), dtype="float64"),
    OpCase("_contrib_AdaptiveAvgPooling2D", dict(output_size=4), {"data": (1, 2, 4, 6)}, _adaptive(4, 4)),
    # RNN
    OpCase("RNN", dict(mode="lstm", state_size=3, num_layers=2, bidirectional=True, state_outputs=True),
           {"data": (4, 2, 3)}, _rnn("lstm", 3, 2, True, True), low=-0.8, high=0.8),
    OpCase("RNN", dict(mode="gru", state_size=3, num_layers=1), {"data": (3, 2, 2)}, _rnn("gru", 3, 1),
           dtype="float64"),
    OpCase("RNN", dict(mode="rnn_relu", state_size=2, num_layers=2, state_outputs=True, p=0.3),
           {"data": (3, 1, 4)}, _rnn("rnn_relu", 2, 2, False, True)),
    OpCase("RNN", dict(mode="rnn_tanh", state_size=4, num_layers=1, bidirectional=True), {"data": (5, 3, 2)},
           _rnn("rnn_tanh", 4, 1, True)),
    # box_nms
    OpCase("_contrib_box_nms", dict(overlap_thresh=0.3, id_index=0), {"data": NMS_DATA.shape},
           _nms(overlap_thresh=0.3, id_index=0), values={"data": NMS_DATA}),
    OpCase("_contrib_box_nms", dict(overlap_thresh=0.2, topk=5, valid_thresh=0.05), {"data": NMS_DATA.shape},
           _nms(overlap_thresh=0.2, topk=5, valid_thresh=0.05), values={"data": NMS_DATA}),
    OpCase("_contrib_box_nms", dict(overlap_thresh=0.2, in_format="center", out_format="corner"),
           {"data": NMS_CENTER.shape}, _nms(overlap_thresh=0.2, in_format="center", out_format="corner"),
           values={"data": NMS_CENTER}),
    OpCase("_contrib_box_non_maximum_suppression", dict(overlap_thresh=0.3, id_index=0, force_suppress=True),
           {"data": NMS_DATA.shape}, _nms(overlap_thresh=0.3, id_index=0, force_suppress=True),
           values={"data": NMS_DATA.astype(np.float64)}, dtype="float64"),
    # amp_multicast
    OpCase("amp_multicast", dict(num_outputs=2), {"data_0": (2, 3), "data_1": (4,)}, _multicast(),
           values={"data_0": np.ones((2, 3), np.float16), "data_1": np.arange(4, dtype=np.float32)}),
    OpCase("amp_multicast", dict(num_outputs=2, cast_narrow=True), {"data_0": (2, 3), "data_1": (4,)},
           _multicast(True), values={"data_0": np.ones((2, 3), np.float16), "data_1": np.arange(4, dtype=np.float32)}),
    OpCase("amp_multicast", dict(num_outputs=1), {"data_0": (2, 3)}, _multicast()),
    OpCase("_contrib_BilinearResize2D", dict(height=6, width=3), {"data": (1, 2, 4, 4)}, _bilinear(6, 3),
           dtype="float16", rtol=2e-3, atol=2e-3),
    OpCase("_contrib_AdaptiveAvgPooling2D", dict(output_size=(2, 3)), {"data": (1, 2, 5, 7)}, _adaptive(2, 3),
           dtype="float16", rtol=2e-3, atol=2e-3),
    OpCase("RNN", dict(mode="lstm", state_size=2, num_layers=1, state_outputs=True), {"data": (3, 2, 2)},
           _rnn("lstm", 2, 1, False, True), dtype="float16", rtol=1e-2, atol=1e-2),
    # MXNet's docstring examples
    OpCase("ROIPooling", dict(pooled_size=(2, 2), spatial_scale=1.0), {"data": (1, 1, 8, 6), "rois": (1, 5)},
           lambda **_: np.array([[[[14, 16], [26, 28]]]], np.float32), int_inputs=ROI_INPUTS,
           values={"data": np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6), "rois": DOC_ROI}),
    OpCase("ROIPooling", dict(pooled_size=(2, 2), spatial_scale=0.7), {"data": (1, 1, 8, 6), "rois": (1, 5)},
           lambda **_: np.array([[[[7, 9], [19, 21]]]], np.float32), int_inputs=ROI_INPUTS,
           values={"data": np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6), "rois": DOC_ROI}),
    OpCase("_contrib_box_nms", DOC_NMS_ATTRS, {"data": (4, 6)}, lambda **_: DOC_NMS_OUT, values={"data": DOC_NMS}),
] + [_mxnet(name) for name in sorted(FIXTURE) if name != "amp_graph"]

# inputs away from kinks and ties: distinct ROI maxima, boxes whose IoUs and scores stay clear of the thresholds
GRADIENT_CASES = [
    _mxnet("bilinear_size"), _mxnet("bilinear_like"),
    _mxnet("adaptive_3"), _mxnet("adaptive_up"),
    _mxnet("roipool"), _mxnet("roipool_scale1"),
    _mxnet("roialign"), _mxnet("roialign_psroi"),
    OpCase("RNN", dict(mode="lstm", state_size=2, num_layers=2, bidirectional=True, state_outputs=True),
           {"data": (3, 1, 2)}, _rnn("lstm", 2, 2, True, True), name="rnn-lstm-grad"),
    OpCase("RNN", dict(mode="gru", state_size=2, num_layers=1, state_outputs=True), {"data": (3, 2, 2)},
           _rnn("gru", 2, 1, False, True), name="rnn-gru-grad"),
    # float64 training joins time steps / directions / layers without Concat (no float64 Concat gradient in ORT)
    OpCase("RNN", dict(mode="gru", state_size=2, num_layers=2, bidirectional=True, state_outputs=True),
           {"data": (3, 2, 2)}, _rnn("gru", 2, 2, True, True), dtype="float64", name="rnn-gru-f64-grad"),
    OpCase("_contrib_box_nms", dict(overlap_thresh=0.3, id_index=0), {"data": NMS_DATA.shape},
           _nms(overlap_thresh=0.3, id_index=0), values={"data": NMS_DATA}, name="box-nms-grad"),
    OpCase("amp_multicast", dict(num_outputs=2), {"data_0": (2, 3), "data_1": (4,)}, _multicast()),
]


@pytest.mark.parametrize("case", CASES + GRADIENT_CASES, ids=str)
def test_forward(case):
    run_case(case)


def _bind(meta, arrays, grads=True):
    sym = mx.sym.load_json(meta["tojson"])
    args = {k: mx.nd.array(arrays["in:" + k], dtype=arrays["in:" + k].dtype) for k in meta["inputs"]}
    grad = {k: mx.nd.zeros(v.shape, dtype=v.dtype) for k, v in args.items()} if grads else None
    return sym, sym.bind(mx.cpu(), args=args, args_grad=grad), grad


@pytest.mark.parametrize("name", sorted(n for n in FIXTURE if FIXTURE[n][0].get("grad")))
def test_training_step_matches_mxnet(name):
    """MXNet's JSON loads; forward(is_train=True) (the training lowerings) and backward equal MXNet's."""
    meta, arrays = FIXTURE[name]
    sym, exe, grads = _bind(meta, arrays)
    assert sym.list_arguments() == meta["list_arguments"] and sym.list_outputs() == meta["list_outputs"]
    outputs = exe.forward(is_train=True)
    for i, out in enumerate(outputs):
        np.testing.assert_allclose(out.asnumpy(), arrays["out:%d" % i], rtol=1e-5, atol=1e-6, err_msg="output %d" % i)
    exe.backward([mx.nd.array(arrays["head:%d" % i]) for i in range(len(outputs))])
    for k in meta["inputs"]:
        np.testing.assert_allclose(grads[k].asnumpy(), arrays["grad:" + k], rtol=1e-4, atol=1e-5,
                                   err_msg="gradient of " + k)


def test_box_nms_docstring_gradient():
    """MXNet's docstring: gradients stick to their boxes; suppressed boxes get 0."""
    data = mx.nd.array(DOC_NMS)
    grad = mx.nd.zeros(DOC_NMS.shape)
    exe = mx.sym.contrib.box_nms(mx.sym.Variable("data"), **DOC_NMS_ATTRS).bind(
        mx.cpu(), args={"data": data}, args_grad={"data": grad})
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(np.repeat([[0.1], [0.2], [0.3], [0.4]], 6, axis=1))])
    np.testing.assert_allclose(grad.asnumpy(), np.repeat([[0.2], [0], [0], [0.1]], 6, axis=1), rtol=1e-6)


def test_amp_graph_round_trips():
    """An AMP-converted graph from MXNet (amp_cast + amp_multicast) loads, runs and saves back the same ops."""
    meta, arrays = FIXTURE["amp_graph"]
    sym = mx.sym.load_json(meta["tojson"])
    assert sym.list_arguments() == meta["list_arguments"] and sym.list_outputs() == meta["list_outputs"]
    args = {k: mx.nd.array(arrays["in:" + k], dtype=arrays["in:" + k].dtype) for k in meta["list_arguments"]}
    out = sym.bind(mx.cpu(), args=args).forward()[0]
    assert out.dtype == np.dtype(meta["out_dtype"])
    np.testing.assert_allclose(out.asnumpy(), arrays["out:0"], rtol=1e-3)
    # MXNet's tojson() leaves the amp casts out unless remove_amp_cast=False (the fixture was written with False)
    again = json.loads(mx.sym.load_json(sym.tojson(remove_amp_cast=False)).tojson(remove_amp_cast=False))
    ops = {n["name"]: (n["op"], n.get("attrs")) for n in again["nodes"]}
    expected = {n["name"]: (n["op"], n.get("attrs")) for n in json.loads(meta["tojson"])["nodes"]}
    assert ops == expected


# ---------------------------------------------------------------- shapes, defaults and errors
def test_shape_rules_and_defaults():
    data = mx.sym.Variable("data")
    rnn = mx.sym.RNN(data, mode="lstm", state_size=4, num_layers=2, bidirectional=True, state_outputs=True,
                     name="rnn")
    assert rnn.list_arguments() == ["data", "rnn_parameters", "rnn_state", "rnn_state_cell"]
    assert rnn.list_outputs() == ["rnn_output", "rnn_state_output", "rnn_statecell_output"]
    assert rnn.infer_shape(data=(5, 2, 3)) == ([(5, 2, 3), (736,), (4, 2, 4), (4, 2, 4)],
                                              [(5, 2, 8), (4, 2, 4), (4, 2, 4)], [])
    gru = mx.sym.RNN(data, mode="gru", state_size=4, num_layers=1, name="gru")
    assert gru.list_arguments() == ["data", "gru_parameters", "gru_state"] and gru.list_outputs() == ["gru_output"]
    nms = mx.sym.contrib.box_nms(data, name="nms")
    assert nms.list_outputs() == ["nms_output0"] and nms.infer_shape(data=(2, 3, 10, 6))[1] == [(2, 3, 10, 6)]
    roi = mx.sym.ROIPooling(data, mx.sym.Variable("rois"), pooled_size=(2, 3), spatial_scale=0.5, name="roi")
    assert roi.list_outputs() == ["roi_output"]
    assert roi.infer_shape(data=(2, 4, 8, 8), rois=(7, 5))[1] == [(7, 4, 2, 3)]
    ps = mx.sym.contrib.ROIAlign(data, mx.sym.Variable("rois"), pooled_size=(2, 2), spatial_scale=1.0,
                                 position_sensitive=True)
    assert ps.infer_shape(data=(1, 8, 6, 6), rois=(3, 5))[1] == [(3, 2, 2, 2)]
    resize = mx.sym.contrib.BilinearResize2D(data, scale_height=1.5, scale_width=0.7)
    assert resize.infer_shape(data=(2, 3, 4, 5))[1] == [(2, 3, 6, 3)]
    assert mx.sym.contrib.BilinearResize2D(data, height=3, width=2, scale_width=9.0).infer_shape(
        data=(1, 1, 4, 4))[1] == [(1, 1, 3, 2)]       # scale_width alone is ignored, as in MXNet
    assert mx.sym.contrib.AdaptiveAvgPooling2D(data).infer_shape(data=(2, 3, 5, 5))[1] == [(2, 3, 1, 1)]
    cast = mx.sym.amp_multicast(data, mx.sym.Variable("w"), num_outputs=2, name="mc")
    assert cast.list_arguments() == ["data", "w"] and cast.list_outputs() == ["mc_output0", "mc_output1"]
    assert cast.infer_type(data=np.float64, w=np.float16)[1] == [np.float64, np.float64]


@pytest.mark.parametrize("build, shapes, words", [
    (lambda d: mx.sym.RNN(d, mode="lstm", state_size=4, num_layers=1, name="rnn"), {"data": (5, 2)}, ["data", "3-D"]),
    (lambda d: mx.sym.RNN(d, mode="gru", state_size=4, num_layers=1, name="rnn"),
     {"data": (5, 2, 3), "rnn_parameters": (10,)}, ["parameters", "(108,)", "(10,)"]),
    (lambda d: mx.sym.RNN(d, mode="lstm", state_size=4, num_layers=2, name="rnn"),
     {"data": (5, 2, 3), "rnn_state": (1, 2, 4)}, ["state", "(2, 2, 4)"]),
    (lambda d: mx.sym.ROIPooling(d, mx.sym.Variable("rois"), pooled_size=(2, 2), spatial_scale=1.0),
     {"data": (1, 2, 5, 5), "rois": (3, 4)}, ["rois", "(3, 4)"]),
    (lambda d: mx.sym.contrib.ROIAlign(d, mx.sym.Variable("rois"), pooled_size=(2, 2), spatial_scale=1.0,
                                       position_sensitive=True), {"data": (1, 6, 5, 5), "rois": (3, 5)}, ["6", "4"]),
    (lambda d: mx.sym.contrib.BilinearResize2D(d, height=2, width=2), {"data": (2, 3, 4)}, ["data", "4-D"]),
    (lambda d: mx.sym.contrib.BilinearResize2D(d, scale_height=2.0), {"data": (1, 1, 2, 2)}, ["scale_width"]),
    (lambda d: mx.sym.contrib.BilinearResize2D(d, mode="odd_scale"), {"data": (1, 1, 2, 2)}, ["scale_height"]),
    (lambda d: mx.sym.contrib.box_nms(d, id_index=1), {"data": (4, 6)}, ["id_index"]),
    (lambda d: mx.sym.contrib.box_nms(d, coord_start=3), {"data": (4, 6)}, ["coordinates"]),
    (lambda d: mx.sym.contrib.box_nms(d), {"data": (4, 4)}, ["at least 5"]),
    (lambda d: mx.sym.contrib.AdaptiveAvgPooling2D(d, output_size=(1, 2, 3)), {"data": (1, 1, 4, 4)},
     ["output_size"]),
])
def test_shape_errors(build, shapes, words):
    with pytest.raises(mx.MXNetError) as err:
        build(mx.sym.Variable("data")).infer_shape(**shapes)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("attrs, word", [
    (dict(mode="lstm", state_size=4, num_layers=1, projection_size=2), "projection_size"),
    (dict(mode="lstm", state_size=4, num_layers=1, lstm_state_clip_min=-1.0, lstm_state_clip_max=1.0),
     "lstm_state_clip"),
    (dict(mode="gru", state_size=4, num_layers=1, use_sequence_length=True), "use_sequence_length"),
    (dict(mode="lstm", state_size=4), "num_layers"),
    (dict(mode="cnn", state_size=4, num_layers=1), "mode"),
])
def test_rnn_attribute_errors(attrs, word):
    with pytest.raises(mx.MXNetError, match=word):
        mx.sym.RNN(mx.sym.Variable("data"), **attrs)


def test_rnn_dropout_only_between_layers_when_training():
    """p drops the first layer's outputs in training (outputs differ between runs); inference ignores it."""
    sym = mx.sym.RNN(mx.sym.Variable("data"), mode="rnn_tanh", state_size=8, num_layers=2, p=0.5, name="rnn")
    rng = np.random.RandomState(0)
    shapes = dict(zip(sym.list_arguments(), sym.infer_shape(data=(4, 3, 5))[0]))
    args = {k: mx.nd.array(rng.uniform(-1, 1, s)) for k, s in shapes.items()}
    exe = sym.bind(mx.cpu(), args=args)
    plain = _rnn("rnn_tanh", 8, 2)(**{k.replace("rnn_", ""): v.asnumpy() for k, v in args.items()})[0]
    np.testing.assert_allclose(exe.forward(is_train=False)[0].asnumpy(), plain, rtol=1e-5, atol=1e-6)
    train = [exe.forward(is_train=True)[0].asnumpy() for _ in range(2)]
    assert not np.allclose(train[0], plain) and not np.allclose(train[0], train[1])


def test_roi_align_negative_batch_index_gives_zeros():
    meta, arrays = FIXTURE["roialign"]
    rois = arrays["in:rois"].copy()
    rois[1, 0] = -1
    sym = mx.sym.load_json(meta["tojson"])
    exe = sym.bind(mx.cpu(), args={"data": mx.nd.array(arrays["in:data"]), "rois": mx.nd.array(rois)})
    for train in (False, True):
        out = exe.forward(is_train=train)[0].asnumpy()
        np.testing.assert_array_equal(out[1], 0)
        np.testing.assert_allclose(out[[0, 2, 3, 4]], arrays["out:0"][[0, 2, 3, 4]], rtol=1e-5, atol=1e-6)


def test_roi_align_empty_roi_gives_zeros_not_nan():
    """aligned=True with a zero-width or zero-height ROI samples nothing: zeros (ORT's kernel) in inference and in
    the training form, and a zero gradient (MXNet 1.9.1 aborts the process on a CHECK there)."""
    sym = mx.sym.contrib.ROIAlign(mx.sym.Variable("data"), mx.sym.Variable("rois"), pooled_size=(2, 2),
                                  spatial_scale=1.0, aligned=True)
    data = np.random.RandomState(0).rand(1, 2, 6, 6).astype(np.float32)
    rois = np.array([[0, 2, 2, 2, 2], [0, 2, 2, 4, 2], [0, 1, 1, 4, 4]], np.float32)
    grad = mx.nd.zeros(data.shape)
    exe = sym.bind(mx.cpu(), {"data": mx.nd.array(data), "rois": mx.nd.array(rois)}, args_grad={"data": grad})
    served = exe.forward()[0].asnumpy()
    trained = exe.forward(is_train=True)[0].asnumpy()
    np.testing.assert_array_equal(served[:2], 0)
    np.testing.assert_array_equal(trained[:2], 0)
    np.testing.assert_allclose(trained[2], served[2], rtol=1e-5, atol=1e-6)
    head = np.zeros(trained.shape, np.float32)
    head[:2] = 1                                    # only the empty ROIs' outputs: nothing flows back
    exe.backward(mx.nd.array(head))
    np.testing.assert_array_equal(grad.asnumpy(), 0)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_gather_form_matches_ort_kernel(aligned):
    """The training (gather) form equals ORT's RoiAlign (checked against MXNet above) on ROIs far larger than the
    image, tiny ones and ones outside it, where the adaptive sample grid is large."""
    rng = np.random.RandomState(3)
    data = rng.uniform(-1, 1, (2, 3, 5, 6)).astype(np.float32)
    rois = np.array([[0, -40, -30, 60, 45], [1, 2.2, 1.1, 2.6, 1.4], [1, -9, -9, -3, -2], [0, 4.5, 3.5, 30, 4.9],
                     [1, 0.3, 0.2, 5.9, 4.8]], np.float32)
    sym = mx.sym.contrib.ROIAlign(mx.sym.Variable("data"), mx.sym.Variable("rois"), pooled_size=(3, 2),
                                  spatial_scale=1.0, aligned=aligned)
    exe = sym.bind(mx.cpu(), args={"data": mx.nd.array(data), "rois": mx.nd.array(rois)})
    np.testing.assert_allclose(exe.forward(is_train=True)[0].asnumpy(), exe.forward(is_train=False)[0].asnumpy(),
                               rtol=1e-5, atol=1e-6)
