"""MXNet 1.9.1's detection contrib operators: _contrib_box_iou, _contrib_box_nms, _contrib_box_encode,
_contrib_box_decode, _contrib_bipartite_matching, _contrib_MultiBoxPrior, _contrib_MultiBoxTarget,
_contrib_MultiBoxDetection, _contrib_Proposal and _contrib_MultiProposal (src/operator/contrib/bounding_box*,
multibox_*, proposal*, multi_proposal*).

All but box_nms have a zero gradient in MXNet (box_iou, bipartite_matching, box_encode/decode and the multibox /
proposal ops write zeros into their input gradients), so they are `differentiable = False`; box_nms routes each
kept row's head gradient to its input row (its suppression Loop has a constant trip count, so it is unrolled for
differentiation). Greedy matching and suppression run in ONNX Loops whose bodies read the loop-invariant tensors
from the outer graph; stable sorts are TopK (ties: the lower index first, as std::stable_sort). The MultiBox and
Proposal ops are MXNet legacy OperatorProperty ops, which take float32 only; the bounding-box ops compute in their
input dtype (float16 through float32, as ORT lacks most float16 kernels). Double-precision steps of the C++
kernels are kept where they change float32 results (the proposal box transform).
"""
import dataclasses

import numpy as np
from onnx import TensorProto, helper

from ..base import MXNetError
from ..lower.builder import GraphBuilder, onnx_dtype
from .params import FloatTuple, param
from .registry import OpDef, register


def _calc(dtype):
    """The dtype the lowering computes in: float16 runs in float32 (ORT has few float16 kernels)."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)


def _real(op, name, dtype):
    if dtype is not None and np.dtype(dtype) not in (np.float16, np.float32, np.float64):
        raise MXNetError("%s: input '%s' has dtype %s; the operator supports float16, float32 and float64"
                         % (op.op_name, name, np.dtype(dtype).name))


def _same_real_type(op, in_types, outputs):
    known = [t for t in in_types if t is not None]
    if not known:
        return None
    for name, dtype in zip(op.input_names(), in_types):
        _real(op, name, dtype)
        if dtype is not None and np.dtype(dtype) != np.dtype(known[0]):
            raise MXNetError("%s: input '%s' has dtype %s but the inputs must all have dtype %s"
                             % (op.op_name, name, np.dtype(dtype).name, np.dtype(known[0]).name))
    return [known[0]] * len(in_types), [known[0]] * outputs


def _float32_only(op, in_types):
    """MXNet's legacy OperatorProperty ops (MultiBox*, Proposal) take and give float32 only (operator.h
    InferType: "Unsupported data type")."""
    for name, dtype in zip(op.input_names(), in_types):
        if dtype is not None and np.dtype(dtype) != np.float32:
            raise MXNetError("%s: Unsupported data type %s of input '%s': the operator takes float32 only"
                             % (op.op_name, np.dtype(dtype).name, name))
    f32 = np.dtype(np.float32)
    return [f32] * len(in_types), [f32] * op.count_outputs()


def _check(op, condition, message, *args):
    if not condition:
        raise MXNetError("%s: %s" % (op.op_name, message % args))


def _col(g, value, i, axis=-1):
    """value[..., i:i+1] (the axis kept)."""
    return g.Slice(value, g.int64s([i]), g.int64s([i + 1]), g.int64s([axis]))


def _full(g, value, dtype, shape):
    return g.Expand(g.scalar(value, dtype), g.int64s(list(shape)))


def _loop(g, trips, states, specs, step, early_exit=False):
    """An ONNX Loop of at most `trips` iterations carrying `states` ([(shape, dtype)] in `specs`); step(body, i,
    states) returns (a continue flag (early_exit) or None, new states). The body reads loop-invariant values of `g`
    by name."""
    body = GraphBuilder()
    body.scope = g.fresh("%s/loop" % g.scope)
    i = body.add_input(body.scope + "/i", [], np.int64)
    flag = body.add_input(body.scope + "/cond", [], np.bool_)
    names = [body.add_input(body.scope + "/state%d" % k, list(shape), dtype)
             for k, (shape, dtype) in enumerate(specs)]
    go, outs = step(body, i, names)
    outs = [body.Identity(flag if go is None else go)] + [body.Identity(v) for v in outs]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in body.initializers] + body.nodes
    infos = [helper.make_tensor_value_info(outs[0], TensorProto.BOOL, [])] + [
        helper.make_tensor_value_info(o, onnx_dtype(dtype), list(shape)) for o, (shape, dtype) in zip(outs[1:], specs)]
    graph = helper.make_graph(nodes, body.scope, body.inputs, infos)
    start = g.const(np.array(True)) if early_exit else None
    results = g.Loop(g.const(np.array(trips, np.int64)), start, *states, body=graph, _outputs=len(states))
    results = results if isinstance(results, tuple) else (results,)
    for value, (shape, dtype) in zip(results, specs):
        g.value_infos.append(helper.make_tensor_value_info(value, onnx_dtype(dtype), list(shape)))
        g.set_info(value, tuple(shape), dtype)
    return results


def _first_true(g, mask):
    """(index of the first True along axis 1, whether there is one), both (B, 1)."""
    as_float = g.cast(mask, np.float32)
    return g.ArgMax(as_float, axis=1, keepdims=1), g.Greater(g.ReduceMax(as_float, axes=[1], keepdims=1),
                                                           g.scalar(0, np.float32))


def _any(g, flags):
    """A 0-d bool: whether any of the bool flags is True (a Loop's continue flag)."""
    return g.cast(g.ReduceMax(g.cast(flags, np.int32), keepdims=0), np.bool_)


def _compact_order(g, flags, n):
    """Indices (B, n) that list the True positions of flags (B, n) first, each group in index order."""
    rank = g.Add(g.Mul(g.cast(flags, np.float32), g.scalar(n, np.float32)),
                 g.const(np.arange(n - 1, -1, -1, dtype=np.float32).reshape(1, -1)))
    return g.TopK(rank, g.int64s([n]), axis=1, largest=1, sorted=1, _outputs=2)[1]


# ---------------------------------------------------------------- box_iou
@register(name="_contrib_box_iou")
class box_iou(OpDef):
    """IoU of every lhs box with every rhs box: output lhs.shape[:-1] + rhs.shape[:-1]; 0 where the boxes do
    not intersect. Zero gradient. Mirrors MXNet src/operator/contrib/bounding_box-inl.h (compute_overlap)."""
    inputs = ("lhs", "rhs")
    differentiable = False
    float_only = True
    format: str = param("corner", choices=("center", "corner"), doc="The box encoding type.")

    def infer_shape(self, lhs, rhs):
        for name, shape in (("lhs", lhs), ("rhs", rhs)):
            if shape is not None:
                _check(self, len(shape) >= 2, "%s must have dim >= 2, got shape %s", name, tuple(shape))
                _check(self, shape[-1] == 4, "last dimension of %s must be 4, got shape %s", name, tuple(shape))
        if lhs is None or rhs is None:
            return None
        return [lhs, rhs], [tuple(lhs[:-1]) + tuple(rhs[:-1])]

    def infer_type(self, *types):
        return _same_real_type(self, types, 1)

    def lower(self, g, lhs, rhs):
        lshape, rshape, dtype = g.shape(lhs), g.shape(rhs), g.dtype(lhs)
        calc = _calc(dtype)
        n, m = int(np.prod(lshape[:-1])), int(np.prod(rshape[:-1]))
        left = g.cast(g.Reshape(lhs, g.int64s([n, 1, 4])), calc)
        right = g.cast(g.Reshape(rhs, g.int64s([1, m, 4])), calc)
        a, b = [_col(g, left, i) for i in range(4)], [_col(g, right, i) for i in range(4)]
        zero, two = g.scalar(0, calc), g.scalar(2, calc)

        def overlap(a1, a2, b1, b2):
            if self.format == "center":
                aw, bw = g.Div(a2, two), g.Div(b2, two)
                a1, a2, b1, b2 = g.Sub(a1, aw), g.Add(a1, aw), g.Sub(b1, bw), g.Add(b1, bw)
            return g.Max(g.Sub(g.Min(a2, b2), g.Max(a1, b1)), zero)

        def area(box):
            w, h = (box[2], box[3]) if self.format == "center" else (g.Sub(box[2], box[0]), g.Sub(box[3], box[1]))
            return g.Where(g.Or(g.Less(w, zero), g.Less(h, zero)), zero, g.Mul(w, h))

        inter = g.Mul(overlap(a[0], a[2], b[0], b[2]), overlap(a[1], a[3], b[1], b[3]))
        iou = g.Div(inter, g.Sub(g.Add(area(a), area(b)), inter))
        out = g.Where(g.Greater(inter, zero), iou, zero)
        return g.cast(g.Reshape(out, g.int64s(list(lshape[:-1]) + list(rshape[:-1]))), dtype)


# ---------------------------------------------------------------- box_nms
@register(name="_contrib_box_nms")
class box_nms(OpDef):
    """Greedy non-maximum suppression per batch: boxes with score > valid_thresh (and id != background_id) sorted by
    descending score (stable), the first topk kept as candidates, a box suppressed when its IoU with a kept
    higher-scored box (same id unless force_suppress) is > overlap_thresh; output: the kept rows in score order,
    then rows of -1 (data's shape; topk=0 returns data). Gradient: each kept row's head gradient goes to its input
    row (MXNet's; the format conversion is passed through unchanged). Mirrors MXNet
    src/operator/contrib/bounding_box-inl.h."""
    aliases = ("_contrib_box_non_maximum_suppression",)
    outputs = ("output0", "output1")
    overlap_thresh: float = param(0.5, doc="Overlapping(IoU) threshold to suppress object with smaller score.")
    valid_thresh: float = param(0.0, doc="Filter input boxes to those whose scores greater than valid_thresh.")
    topk: int = param(-1, doc="Apply nms to topk boxes with descending scores, -1 to no restriction.")
    coord_start: int = param(2, doc="Start index of the consecutive 4 coordinates.")
    score_index: int = param(1, doc="Index of the scores/confidence of boxes.")
    id_index: int = param(-1, doc="Optional, index of the class categories, -1 to disable.")
    background_id: int = param(-1, doc="Optional, id of the background class which will be ignored in nms.")
    force_suppress: bool = param(False, doc="Suppress regardless of class id (when id_index is given).")
    in_format: str = param("corner", choices=("center", "corner"), doc="The input box encoding type.")
    out_format: str = param("corner", choices=("center", "corner"), doc="The output box encoding type.")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data):
        if data is None:
            return None
        if len(data) < 2:
            raise MXNetError("_contrib_box_nms: input 'data' must have at least 2 dimensions (..., num_box, "
                             "box_width), got %s" % (tuple(data),))
        width = data[-1]
        expected = 6 if self.id_index >= 0 else 5
        coords = range(self.coord_start, self.coord_start + 4)
        if width < expected:
            raise MXNetError("_contrib_box_nms: the last dimension of 'data' %s must have at least %d elements"
                             % (tuple(data), expected))
        if not 0 <= self.score_index < width or self.score_index in coords:
            raise MXNetError("_contrib_box_nms: score_index %d is out of range or overlaps the coordinates %d..%d "
                             "of width %d" % (self.score_index, self.coord_start, self.coord_start + 3, width))
        if self.coord_start < 0 or self.coord_start + 3 >= width:
            raise MXNetError("_contrib_box_nms: coordinates %d..%d out of range for width %d"
                             % (self.coord_start, self.coord_start + 3, width))
        if self.id_index >= 0 and (self.id_index >= width or self.id_index in coords
                                   or self.id_index == self.score_index):
            raise MXNetError("_contrib_box_nms: id_index %d is out of range or conflicts with score/coordinates"
                             % self.id_index)
        return [data], [tuple(data), tuple(data[:-1]) + (1,)]

    def lower(self, g, data):
        shape, dtype = g.shape(data), g.dtype(data)
        num, width = shape[-2], shape[-1]
        batch = int(np.prod(shape[:-2]))
        k = num if self.topk < 0 else min(num, self.topk)
        if k < 1:
            return g.Identity(data), None
        rows3 = g.Reshape(data, g.int64s([batch, num, width]))
        frozen = g.stop_gradient(rows3, dtype)
        column = lambda v, i: g.Reshape(g.Slice(v, g.int64s([i]), g.int64s([i + 1]), g.int64s([2])),
                                        g.int64s([batch, -1]))
        calc = np.float32 if dtype == np.float16 else dtype
        scores = column(frozen, self.score_index)
        valid = g.Greater(scores, g.scalar(np.float32(self.valid_thresh), dtype))
        if self.id_index >= 0:
            ids = g.cast(column(frozen, self.id_index), np.int64)                # C++ static_cast<int>
            valid = g.And(valid, g.Not(g.Equal(column(frozen, self.id_index),
                                               g.scalar(self.background_id, dtype))))
        key = g.Where(valid, g.cast(scores, calc), g.Expand(g.scalar(-np.inf, calc), g.Shape(scores)))
        _, order = g.TopK(key, g.int64s([num]), axis=1, largest=1, sorted=1, _outputs=2)   # ties: lower index
        order = g.Slice(order, g.int64s([0]), g.int64s([k]), g.int64s([1]))         # (B, K)
        pick = lambda v: g.GatherElements(v, order, axis=1)
        candidates = pick(valid)
        boxes = [pick(g.cast(column(frozen, self.coord_start + i), calc)) for i in range(4)]
        if self.in_format == "center":
            half_w, half_h = g.Div(boxes[2], g.scalar(2, calc)), g.Div(boxes[3], g.scalar(2, calc))
            area = self._area(g, boxes[2], boxes[3], calc)
            boxes = [g.Sub(boxes[0], half_w), g.Sub(boxes[1], half_h), g.Add(boxes[0], half_w),
                     g.Add(boxes[1], half_h)]
        else:
            area = self._area(g, g.Sub(boxes[2], boxes[0]), g.Sub(boxes[3], boxes[1]), calc)
        classes = pick(ids) if self.id_index >= 0 and not self.force_suppress else None
        kept = g.Not(self._suppress(g, g.Not(candidates), boxes, area, classes, k, batch, calc))
        # the kept rows first, in score order
        rank = g.Add(g.Mul(g.cast(kept, np.float32), g.scalar(k, np.float32)),
                     g.const(np.arange(k - 1, -1, -1, dtype=np.float32).reshape(1, -1)))
        _, compact = g.TopK(rank, g.int64s([k]), axis=1, largest=1, sorted=1, _outputs=2)
        source = g.GatherElements(order, compact, axis=1)
        flags = g.GatherElements(kept, compact, axis=1)
        full = g.int64s([batch, k, width])
        rows = g.GatherElements(rows3, g.Expand(g.Unsqueeze(source, g.int64s([2])), full), axis=1)
        out = g.Where(g.Expand(g.Unsqueeze(flags, g.int64s([2])), full), rows, g.Expand(g.scalar(-1, dtype), full))
        if k < num:
            out = g.Concat(out, g.const(np.full((batch, num - k, width), -1, dtype)), axis=1)
        if self.in_format != self.out_format:
            g.set_info(out, None, dtype)
            out = g.with_gradient(self._convert(g, out, batch, num, width, dtype), [(out, g.scalar(1, dtype))])
        return g.Reshape(out, g.int64s(list(shape))), None

    @staticmethod
    def _area(g, w, h, calc):
        zero = g.scalar(0, calc)
        negative = g.Or(g.Less(w, zero), g.Less(h, zero))
        return g.Where(negative, g.Expand(zero, g.Shape(w)), g.Mul(w, h))

    def _convert(self, g, out, batch, num, width, dtype):
        """Corner <-> center on the coordinates of every row whose first coordinate is >= 0 (MXNet skips the
        others, meant for the -1 rows)."""
        cs = self.coord_start
        coord = lambda i: g.Slice(out, g.int64s([cs + i]), g.int64s([cs + i + 1]), g.int64s([2]))
        a, b, c, d = (coord(i) for i in range(4))
        two = g.scalar(2, dtype)
        if self.out_format == "center":
            new = [g.Div(g.Add(a, c), two), g.Div(g.Add(b, d), two), g.Sub(c, a), g.Sub(d, b)]
        else:
            half_w, half_h = g.Div(c, two), g.Div(d, two)
            new = [g.Sub(a, half_w), g.Sub(b, half_h), g.Add(a, half_w), g.Add(b, half_h)]
        skip = g.Expand(g.Less(a, g.scalar(0, dtype)), g.int64s([batch, num, 4]))
        coords = g.Where(skip, g.Concat(a, b, c, d, axis=2), g.Concat(*new, axis=2))
        parts = [g.Slice(out, g.int64s([0]), g.int64s([cs]), g.int64s([2]))] if cs else []
        parts.append(coords)
        if cs + 4 < width:
            parts.append(g.Slice(out, g.int64s([cs + 4]), g.int64s([width]), g.int64s([2])))
        return g.Concat(*parts, axis=2) if len(parts) > 1 else parts[0]

    def _suppress(self, g, suppressed, boxes, area, classes, k, batch, calc):
        """ONNX Loop over the k sorted candidates: a live reference suppresses every later box (same class unless
        forced) whose IoU with it is > overlap_thresh. Carried: the (B, K) suppressed flags, boxes, areas, ids."""
        body = GraphBuilder()
        body.scope = g.fresh("%s/nms_loop" % g.scope)
        step = body.add_input(body.scope + "/i", [], np.int64)
        cond = body.add_input(body.scope + "/cond", [], np.bool_)
        carried = [suppressed] + boxes + [area] + ([classes] if classes is not None else [])
        names = [body.add_input(body.scope + "/state%d" % i, [batch, k],
                                np.bool_ if i == 0 else np.int64 if i == 6 else calc) for i in range(len(carried))]
        flags, x1, y1, x2, y2, areas = names[:6]
        at = body.Unsqueeze(step, body.int64s([0]))
        ref = lambda v: body.Gather(v, at, axis=1)                                    # (B, 1)
        zero = body.scalar(0, calc)
        inter = body.Mul(body.Max(body.Sub(body.Min(x2, ref(x2)), body.Max(x1, ref(x1))), zero),
                         body.Max(body.Sub(body.Min(y2, ref(y2)), body.Max(y1, ref(y1))), zero))
        iou = body.Div(inter, body.Sub(body.Add(areas, ref(areas)), inter))
        hit = body.Greater(iou, body.scalar(np.float32(self.overlap_thresh), calc))
        hit = body.And(hit, body.Greater(body.const(np.arange(k, dtype=np.int64).reshape(1, -1)), step))
        hit = body.And(hit, body.Not(ref(flags)))
        if classes is not None:
            hit = body.And(hit, body.Equal(names[6], ref(names[6])))
        outs = [body.Identity(cond), body.Or(flags, hit)] + [body.Identity(v) for v in names[1:]]
        nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in body.initializers] + body.nodes
        infos = [helper.make_tensor_value_info(outs[0], TensorProto.BOOL, [])] + [
            helper.make_tensor_value_info(o, onnx_dtype(body.dtype(n)), [batch, k]) for o, n in zip(outs[1:], names)]
        graph = helper.make_graph(nodes, body.scope, body.inputs, infos)
        flags = g.Loop(g.const(np.array(k, np.int64)), None, *carried, body=graph, _outputs=len(carried))[0]
        # ONNX shape inference leaves Loop's carried outputs unshaped; the gradient builder needs their shape
        g.value_infos.append(helper.make_tensor_value_info(flags, TensorProto.BOOL, [batch, k]))
        g.set_info(flags, (batch, k), np.bool_)
        return flags


# ---------------------------------------------------------------- bipartite_matching
@register(name="_contrib_bipartite_matching")
@dataclasses.dataclass(frozen=True, kw_only=True)
class bipartite_matching(OpDef):
    """Greedy bipartite matching of a (..., N, M) score matrix: pairs taken in sorted score order (stable;
    descending unless is_ascend) while both row and column are free and the score passes threshold; outputs the
    matched column per row and the matched row per column (-1: none). MXNet's topk stops after the (topk+1)-th
    match. Zero gradient. Mirrors MXNet src/operator/contrib/bounding_box-inl.h (bipartite_matching)."""
    outputs = ("output0", "output1")
    differentiable = False
    float_only = True
    is_ascend: bool = param(False, doc="Use ascend order for scores instead of descending.")
    threshold: float = param(doc="Ignore matching when score < thresh (> thresh when is_ascend).")
    topk: int = param(-1, doc="Limit the number of matches to topk, set -1 for no limit")

    def infer_shape(self, data):
        if data is None:
            return None
        _check(self, len(data) >= 2, "score matrix must have dim >= 2, got shape %s", tuple(data))
        return [data], [tuple(data[:-1]), tuple(data[:-2]) + (data[-1],)]

    def infer_type(self, data):
        return _same_real_type(self, [data], 2)

    def lower(self, g, data):
        shape, dtype = g.shape(data), g.dtype(data)
        calc = _calc(dtype)
        rows, cols = shape[-2], shape[-1]
        batch, size = int(np.prod(shape[:-2])), rows * cols
        scores = g.cast(g.Reshape(data, g.int64s([batch, size])), calc)       # float16 -> float32 is exact
        ordered, order = g.TopK(scores, g.int64s([size]), axis=1, largest=0 if self.is_ascend else 1, sorted=1,
                                _outputs=2)
        limit = g.scalar(np.float32(self.threshold), calc)
        passes = g.Less(ordered, limit) if self.is_ascend else g.Greater(ordered, limit)
        row_of, col_of = g.Div(order, g.scalar(cols, np.int64)), g.Mod(order, g.scalar(cols, np.int64))
        trips = min(rows, cols) if self.topk <= 0 else min(rows, cols, self.topk + 1)
        if trips < 1:
            row_marker, col_marker = _full(g, -1, np.int64, (batch, rows)), _full(g, -1, np.int64, (batch, cols))
        else:
            def step(body, _, state):
                row_marker, col_marker = state
                free = lambda marker, index: body.GatherElements(body.Equal(marker, body.scalar(-1, np.int64)),
                                                                index, axis=1)
                open_ = body.And(passes, body.And(free(row_marker, row_of), free(col_marker, col_of)))
                first, found = _first_true(body, open_)
                r, c = body.GatherElements(row_of, first, axis=1), body.GatherElements(col_of, first, axis=1)
                hit = lambda n, at: body.And(found, body.Equal(body.const(np.arange(n, dtype=np.int64)[None]), at))
                return _any(body, found), [body.Where(hit(rows, r), c, row_marker),
                                           body.Where(hit(cols, c), r, col_marker)]

            row_marker, col_marker = _loop(g, trips, [_full(g, -1, np.int64, (batch, rows)),
                                                      _full(g, -1, np.int64, (batch, cols))],
                                           [((batch, rows), np.int64), ((batch, cols), np.int64)], step,
                                           early_exit=True)
        return (g.cast(g.Reshape(row_marker, g.int64s(list(shape[:-1]))), dtype),
                g.cast(g.Reshape(col_marker, g.int64s(list(shape[:-2]) + [cols])), dtype))


# ---------------------------------------------------------------- box_encode / box_decode
@register(name="_contrib_box_encode")
class box_encode(OpDef):
    """Regression targets of corner anchors (B, N, 4) against their matched corner refs (B, M, 4):
    ((ref_center - anchor_center) / anchor_size - means) / stds and (log(ref_size / anchor_size) - means) / stds
    where samples > 0.5, else 0; masks: 1 there, else 0. Zero gradient. Mirrors MXNet
    src/operator/contrib/bounding_box-inl.h (box_encode)."""
    inputs = ("samples", "matches", "anchors", "refs", "means", "stds")
    outputs = ("output0", "output1")
    differentiable = False
    float_only = True

    def infer_shape(self, samples, matches, anchors, refs, means, stds):
        if samples is not None:
            _check(self, len(samples) == 2, "samples shape must have dim == 2, got %s", tuple(samples))
        if matches is not None:
            _check(self, len(matches) == 2, "matches shape must have dim == 2, got %s", tuple(matches))
        for name, shape in (("anchors", anchors), ("refs", refs)):
            if shape is not None:
                _check(self, len(shape) == 3 and shape[-1] == 4, "%s must have shape (B, N, 4), got %s", name,
                       tuple(shape))
        for name, shape in (("means", means), ("stds", stds)):
            if shape is not None:
                _check(self, tuple(shape) == (4,), "%s must have shape (4,), got %s", name, tuple(shape))
        if anchors is None:
            return None
        pair = tuple(anchors[:2])
        for name, shape in (("samples", samples), ("matches", matches)):
            if shape is not None:
                _check(self, tuple(shape) == pair, "%s has shape %s but anchors %s need %s", name, tuple(shape),
                       tuple(anchors), pair)
        if refs is not None:
            _check(self, refs[0] == anchors[0], "refs %s and anchors %s have different batch sizes", tuple(refs),
                   tuple(anchors))
        ins = [pair, pair, anchors, refs, (4,), (4,)]
        return ins, [tuple(anchors), tuple(anchors)]

    def infer_type(self, *types):
        return _same_real_type(self, types, 2)

    def lower(self, g, samples, matches, anchors, refs, means, stds):
        dtype = g.dtype(anchors)
        calc = _calc(dtype)
        b, n, _ = g.shape(anchors)
        m = g.shape(refs)[1]
        anchors, refs, means, stds = (g.cast(v, calc) for v in (anchors, refs, means, stds))
        # C++ index_t(match): truncation; out-of-range matches only occur on masked rows, clamped to stay legal
        index = g.Clip(g.cast(g.cast(matches, calc), np.int64), g.scalar(0, np.int64), g.scalar(m - 1, np.int64))
        ref = g.GatherElements(refs, g.Expand(g.Unsqueeze(index, g.int64s([2])), g.int64s([b, n, 4])), axis=1)
        half = g.scalar(0.5, calc)

        def centers(box):
            x1, y1, x2, y2 = (_col(g, box, i) for i in range(4))
            w, h = g.Sub(x2, x1), g.Sub(y2, y1)
            return g.Add(x1, g.Mul(w, half)), g.Add(y1, g.Mul(h, half)), w, h

        rx, ry, rw, rh = centers(ref)
        ax, ay, aw, ah = centers(anchors)
        raw = g.Concat(g.Div(g.Sub(rx, ax), aw), g.Div(g.Sub(ry, ay), ah), g.Log(g.Div(rw, aw)),
                       g.Log(g.Div(rh, ah)), axis=2)
        targets = g.Div(g.Sub(raw, means), stds)
        valid = g.Expand(g.Unsqueeze(g.Greater(g.cast(samples, calc), g.scalar(0.5, calc)), g.int64s([2])),
                         g.int64s([b, n, 4]))
        zero = g.scalar(0, calc)
        return (g.cast(g.Where(valid, targets, zero), dtype),
                g.cast(g.Where(valid, g.scalar(1, calc), zero), dtype))


@register(name="_contrib_box_decode")
class box_decode(OpDef):
    """Boxes (B, N, 4) in corner form from offsets and anchors (1, N, 4, corner or center form):
    center = offset * std * anchor_size + anchor_center, size = exp(min(offset * std, clip)) * anchor_size (clip
    only when > 0). Zero gradient. Mirrors MXNet src/operator/contrib/bounding_box-inl.h (box_decode)."""
    inputs = ("data", "anchors")
    differentiable = False
    float_only = True
    std0: float = param(1.0, doc="value to be divided from the 1st encoded values")
    std1: float = param(1.0, doc="value to be divided from the 2nd encoded values")
    std2: float = param(1.0, doc="value to be divided from the 3rd encoded values")
    std3: float = param(1.0, doc="value to be divided from the 4th encoded values")
    clip: float = param(-1.0, doc="If larger than 0, bounding box target will be clipped to this value.")
    format: str = param("center", choices=("center", "corner"), doc="The box encoding type of the anchors.")

    def infer_shape(self, data, anchors):
        if data is not None:
            _check(self, len(data) == 3 and data[-1] == 4, "data must have shape (B, N, 4), got %s", tuple(data))
        if anchors is not None:
            _check(self, len(anchors) >= 3 and anchors[-1] == 4, "anchors must have shape (1, N, 4), got %s",
                   tuple(anchors))
        if data is None:
            return None
        if anchors is not None:
            _check(self, int(np.prod(anchors)) == data[1] * 4, "anchors %s must hold %d boxes (data %s)",
                   tuple(anchors), data[1], tuple(data))
        return [data, anchors], [tuple(data)]

    def infer_type(self, *types):
        return _same_real_type(self, types, 1)

    def lower(self, g, data, anchors):
        dtype = g.dtype(data)
        calc = _calc(dtype)
        n = g.shape(data)[1]
        x = g.cast(data, calc)
        a = [_col(g, g.cast(g.Reshape(anchors, g.int64s([1, n, 4])), calc), i) for i in range(4)]
        half = g.scalar(0.5, calc)
        ax, ay, aw, ah = a
        if self.format == "corner":
            aw, ah = g.Sub(a[2], a[0]), g.Sub(a[3], a[1])
            ax, ay = g.Add(a[0], g.Mul(aw, half)), g.Add(a[1], g.Mul(ah, half))
        std = lambda s: g.scalar(np.float32(s), calc)
        ox = g.Add(g.Mul(g.Mul(_col(g, x, 0), std(self.std0)), aw), ax)
        oy = g.Add(g.Mul(g.Mul(_col(g, x, 1), std(self.std1)), ah), ay)
        dw, dh = g.Mul(_col(g, x, 2), std(self.std2)), g.Mul(_col(g, x, 3), std(self.std3))
        if self.clip > 0:
            dw, dh = g.Min(dw, std(self.clip)), g.Min(dh, std(self.clip))
        ow, oh = g.Mul(g.Mul(g.Exp(dw), aw), half), g.Mul(g.Mul(g.Exp(dh), ah), half)
        out = g.Concat(g.Sub(ox, ow), g.Sub(oy, oh), g.Add(ox, ow), g.Add(oy, oh), axis=2)
        return g.cast(out, dtype)


# ---------------------------------------------------------------- MultiBoxPrior
@register(name="_contrib_MultiBoxPrior")
class MultiBoxPrior(OpDef):
    """Anchor boxes (1, H*W*(len(sizes)+len(ratios)-1), 4) in corner form for a (N, C, H, W) feature map: per cell
    (row-major), sizes with the first ratio, then the first size with the other ratios; computed in float32 as
    MXNet does, optionally clipped to [0, 1]. Zero gradient. Mirrors MXNet
    src/operator/contrib/multibox_prior.cc."""
    aliases = ("_npx_multibox_prior",)
    differentiable = False
    float_only = True
    sizes: FloatTuple = param((1.0,), doc="List of sizes of generated MultiBoxPriores.")
    ratios: FloatTuple = param((1.0,), doc="List of aspect ratios of generated MultiBoxPriores.")
    clip: bool = param(False, doc="Whether to clip out-of-boundary boxes.")
    steps: FloatTuple = param((-1.0, -1.0), doc="Priorbox step across y and x, -1 for auto calculation.")
    offsets: FloatTuple = param((0.5, 0.5), doc="Priorbox center offsets, y and x respectively")

    def __post_init__(self):
        if not self.sizes or not self.ratios:
            raise ValueError("sizes and ratios must not be empty")
        if len(self.steps) != 2:
            raise ValueError("Step ndim must be 2: (step_y, step_x), got %s" % (self.steps,))
        if len(self.offsets) != 2 or not all(0 <= v <= 1 for v in self.offsets):
            raise ValueError("offsets must be two values in [0, 1] (y, x), got %s" % (self.offsets,))
        if self.steps[0] * self.steps[1] < 0:
            raise ValueError("Must specify both step_y and step_x, got %s" % (self.steps,))

    def infer_shape(self, data):
        if data is None:
            return None
        _check(self, len(data) >= 4, "Input data should be 4D: batch-channel-y-x, got %s", tuple(data))
        _check(self, data[2] > 0 and data[3] > 0, "Input height and width should be > 0, got %s", tuple(data))
        count = data[2] * data[3] * (len(self.sizes) + len(self.ratios) - 1)
        return [data], [(1, count, 4)]

    def infer_type(self, *types):
        return _float32_only(self, types)

    def half_sizes(self, height, width):
        """(half widths, half heights) of the anchors of one cell, in MXNet's float32 arithmetic."""
        f = np.float32
        pairs = [(f(size), np.sqrt(f(self.ratios[0]))) for size in self.sizes]
        pairs += [(f(self.sizes[0]), np.sqrt(f(ratio))) for ratio in self.ratios[1:]]
        w = [f(f(f(f(size * f(height)) / f(width)) * ratio) / f(2)) for size, ratio in pairs]
        h = [f(f(size / ratio) / f(2)) for size, ratio in pairs]
        return np.array(w, np.float32), np.array(h, np.float32)

    def lower(self, g, data):
        height, width = g.shape(data)[2:4]
        f = np.float32
        step_y, step_x = (f(self.steps[0]), f(self.steps[1]))
        if step_y <= 0 or step_x <= 0:
            step_y, step_x = f(1) / f(height), f(1) / f(width)
        center_y = ((np.arange(height, dtype=np.float32) + f(self.offsets[0])) * step_y).astype(np.float32)
        center_x = ((np.arange(width, dtype=np.float32) + f(self.offsets[1])) * step_x).astype(np.float32)
        half_w, half_h = self.half_sizes(height, width)
        count = len(half_w)
        cx, cy = g.const(center_x.reshape(1, width, 1)), g.const(center_y.reshape(height, 1, 1))
        hw, hh = g.const(half_w.reshape(1, 1, count)), g.const(half_h.reshape(1, 1, count))
        full = g.int64s([height, width, count, 1])
        corner = lambda op, c, half: g.Expand(g.Unsqueeze(op(c, half), g.int64s([3])), full)
        out = g.Concat(corner(g.Sub, cx, hw), corner(g.Sub, cy, hh), corner(g.Add, cx, hw), corner(g.Add, cy, hh),
                       axis=3)
        if self.clip:
            out = g.Clip(out, g.scalar(0, np.float32), g.scalar(1, np.float32))
        return g.Reshape(out, g.int64s([1, height * width * count, 4]))


# ---------------------------------------------------------------- MultiBoxTarget
@register(name="_contrib_MultiBoxTarget")
class MultiBoxTarget(OpDef):
    """SSD training targets: anchors (1, N, 4) matched to the labels (B, L, >=5: class, corners; rows from the
    first class -1 on are padding) greedily by IoU (the best remaining pair first), then every other anchor whose
    best IoU > overlap_threshold; negatives: all the others, or with negative_mining_ratio > 0 the
    int(positives * ratio) unmatched anchors of IoU < negative_mining_thresh with the lowest background
    probability (softmax of cls_pred). Outputs loc_target (B, 4N), loc_mask (B, 4N), cls_target (B, N: class + 1,
    0 for negatives, ignore_label otherwise). Zero gradient. Mirrors MXNet src/operator/contrib/multibox_target.cc
    (minimum_negative_samples is unused there too)."""
    aliases = ("_npx_multibox_target",)
    inputs = ("anchor", "label", "cls_pred")
    outputs = ("loc_target", "loc_mask", "cls_target")
    differentiable = False
    float_only = True
    overlap_threshold: float = param(0.5, doc="Anchor-GT overlap threshold to be regarded as a positive match.")
    ignore_label: float = param(-1.0, doc="Label for ignored anchors.")
    negative_mining_ratio: float = param(-1.0, doc="Max negative to positive samples ratio, use -1 to disable mining")
    negative_mining_thresh: float = param(0.5, doc="Threshold used for negative mining.")
    minimum_negative_samples: int = param(0, doc="Minimum number of negative samples.")
    variances: FloatTuple = param((0.1, 0.1, 0.2, 0.2), doc="Variances to be encoded in box regression target.")

    def __post_init__(self):
        if len(self.variances) != 4:
            raise ValueError("variances must have 4 values, got %s" % (self.variances,))
        if self.negative_mining_ratio > 0 and not self.negative_mining_thresh > 0:
            raise ValueError("negative_mining_thresh must be > 0 when negative mining is on")

    def infer_shape(self, anchor, label, cls_pred):
        if anchor is None or label is None or cls_pred is None:
            return None
        _check(self, len(anchor) == 3 and anchor[0] == 1 and anchor[1] > 0 and anchor[2] == 4,
               "anchor must have shape (1, num_anchors, 4), got %s", tuple(anchor))
        _check(self, len(label) == 3 and label[1] > 0 and label[2] >= 5,
               "label must have shape (batch, num_labels, >= 5), got %s", tuple(label))
        _check(self, len(cls_pred) == 3 and cls_pred[2] == anchor[1] and cls_pred[0] == label[0],
               "cls_pred must have shape (batch %d, num_classes, num_anchors %d), got %s", label[0], anchor[1],
               tuple(cls_pred))
        loc = (label[0], anchor[1] * 4)
        return [anchor, label, cls_pred], [loc, loc, (label[0], anchor[1])]

    def infer_type(self, *types):
        return _float32_only(self, types)

    def lower(self, g, anchor, label, cls_pred):
        _, n, _ = g.shape(anchor)
        b, num_labels, _ = g.shape(label)
        f32 = np.dtype(np.float32)
        anchors = g.Reshape(anchor, g.int64s([n, 4]))
        classes = g.Squeeze(_col(g, label, 0), g.int64s([2]))                             # (B, L)
        gt = g.Slice(label, g.int64s([1]), g.int64s([5]), g.int64s([2]))                  # (B, L, 4)
        # labels count up to the first class -1
        padding = g.cast(g.Equal(classes, g.scalar(-1, f32)), np.int64)
        valid_gt = g.Equal(g.CumSum(padding, g.scalar(1, np.int64)), g.scalar(0, np.int64))   # (B, L)
        has_gt = _col(g, valid_gt, 0)                                                     # (B, 1)
        # IoU (B, N, L)
        a = [g.Unsqueeze(_col(g, anchors, i), g.int64s([0])) for i in range(4)]            # (1, N, 1)
        t = [g.Unsqueeze(g.Squeeze(_col(g, gt, i), g.int64s([2])), g.int64s([1])) for i in range(4)]   # (B, 1, L)
        zero = g.scalar(0, f32)
        side = lambda lo, hi: g.Max(zero, g.Sub(g.Min(a[hi], t[hi]), g.Max(a[lo], t[lo])))
        inter = g.Mul(side(0, 2), side(1, 3))
        union = g.Sub(g.Add(g.Mul(g.Sub(a[2], a[0]), g.Sub(a[3], a[1])),
                            g.Mul(g.Sub(t[2], t[0]), g.Sub(t[3], t[1]))), inter)
        iou = g.Where(g.Equal(union, zero), zero, g.Div(inter, union))                   # safe_divide
        iou = g.Where(g.Unsqueeze(valid_gt, g.int64s([1])), iou, g.scalar(-1, f32))      # (B, N, L)
        flat = g.Reshape(iou, g.int64s([b, n * num_labels]))
        anchor_index = g.const(np.arange(n, dtype=np.int64)[None])
        gt_index = g.const(np.arange(num_labels, dtype=np.int64)[None])

        def step(body, _, state):
            anchor_used, gt_used, match = state
            free = body.And(body.Not(body.Unsqueeze(anchor_used, body.int64s([2]))),
                            body.Not(body.Unsqueeze(gt_used, body.int64s([1]))))
            key = body.Where(body.Reshape(free, body.int64s([b, n * num_labels])), flat, body.scalar(-1, f32))
            best = body.ArgMax(key, axis=1, keepdims=1)
            found = body.Greater(body.ReduceMax(key, axes=[1], keepdims=1), body.scalar(1e-6, f32))
            j = body.Div(best, body.scalar(num_labels, np.int64))
            k = body.Mod(best, body.scalar(num_labels, np.int64))
            at_anchor = body.And(found, body.Equal(anchor_index, j))
            return _any(body, found), [body.Or(anchor_used, at_anchor),
                                       body.Or(gt_used, body.And(found, body.Equal(gt_index, k))),
                                       body.Where(at_anchor, k, match)]

        anchor_used, _, match = _loop(g, num_labels, [_full(g, False, np.bool_, (b, n)),
                                                      _full(g, False, np.bool_, (b, num_labels)),
                                                      _full(g, -1, np.int64, (b, n))],
                                      [((b, n), np.bool_), ((b, num_labels), np.bool_), ((b, n), np.int64)], step,
                                      early_exit=True)
        best_iou = g.ReduceMax(iou, axes=[2], keepdims=0)                           # (B, N)
        positive = anchor_used
        if self.overlap_threshold > 0:
            more = g.And(g.Not(anchor_used), g.Greater(best_iou, g.scalar(np.float32(self.overlap_threshold), f32)))
            positive = g.Or(anchor_used, more)
            match = g.Where(more, g.ArgMax(iou, axis=2, keepdims=0), match)
        if self.negative_mining_ratio > 0:
            negative = self._mine(g, positive, best_iou, cls_pred, b, n)
        else:
            negative = g.Not(positive)
        negative = g.And(negative, has_gt)
        # targets
        index = g.Max(match, g.scalar(0, np.int64))
        cls = g.Add(g.GatherElements(classes, index, axis=1), g.scalar(1, f32))
        cls_target = g.Where(positive, cls, g.Where(negative, zero, g.scalar(self.ignore_label, f32)))
        box = g.GatherElements(gt, g.Expand(g.Unsqueeze(index, g.int64s([2])), g.int64s([b, n, 4])), axis=1)
        mask = g.Expand(g.Unsqueeze(positive, g.int64s([2])), g.int64s([b, n, 4]))
        loc = g.Where(mask, self._encode(g, anchors, box), zero)
        flat_shape = g.int64s([b, n * 4])
        return g.Reshape(loc, flat_shape), g.Reshape(g.cast(mask, f32), flat_shape), cls_target

    def _mine(self, g, positive, best_iou, cls_pred, b, n):
        """The hard negatives: the int(positives * ratio) (at most the non-positive count) candidates with the
        lowest background probability, ties by anchor index (std::stable_sort of float -prob)."""
        f32 = np.dtype(np.float32)
        count = g.ReduceSum(g.cast(positive, f32), g.int64s([1]), keepdims=1)            # (B, 1)
        wanted = g.Min(g.Floor(g.Mul(count, g.scalar(np.float32(self.negative_mining_ratio), f32))),
                       g.Sub(g.scalar(n, f32), count))
        candidate = g.And(g.Not(positive), g.Less(best_iou, g.scalar(np.float32(self.negative_mining_thresh), f32)))
        pred = cls_pred
        shifted = g.Exp(g.Sub(pred, g.ReduceMax(pred, axes=[1], keepdims=1)))
        background = g.Div(g.Squeeze(_col(g, shifted, 0, axis=1), g.int64s([1])),
                           g.ReduceSum(shifted, g.int64s([1]), keepdims=0))            # (B, N)
        key = g.Where(candidate, background, g.scalar(np.inf, f32))
        order = g.TopK(key, g.int64s([n]), axis=1, largest=0, sorted=1, _outputs=2)[1]
        rank = g.const(np.arange(n, dtype=np.float32)[None])
        take = g.And(g.GatherElements(candidate, order, axis=1), g.Less(rank, wanted))
        picked = g.ScatterElements(_full(g, 0, f32, (b, n)), order, g.cast(take, f32), axis=1)
        return g.Greater(picked, g.scalar(0, f32))

    def _encode(self, g, anchors, box):
        """AssignLocTargets: ((g_center - a_center) / a_size / v, log(g_size / a_size) / v)."""
        f32 = np.dtype(np.float32)
        a = [g.Unsqueeze(_col(g, anchors, i), g.int64s([0])) for i in range(4)]           # (1, N, 1)
        t = [_col(g, box, i) for i in range(4)]                                            # (B, N, 1)
        half = g.scalar(0.5, f32)
        aw, ah = g.Sub(a[2], a[0]), g.Sub(a[3], a[1])
        ax, ay = g.Mul(g.Add(a[0], a[2]), half), g.Mul(g.Add(a[1], a[3]), half)
        tw, th = g.Sub(t[2], t[0]), g.Sub(t[3], t[1])
        tx, ty = g.Mul(g.Add(t[0], t[2]), half), g.Mul(g.Add(t[1], t[3]), half)
        v = [g.scalar(np.float32(x), f32) for x in self.variances]
        return g.Concat(g.Div(g.Div(g.Sub(tx, ax), aw), v[0]), g.Div(g.Div(g.Sub(ty, ay), ah), v[1]),
                        g.Div(g.Log(g.Div(tw, aw)), v[2]), g.Div(g.Log(g.Div(th, ah)), v[3]), axis=2)


# ---------------------------------------------------------------- MultiBoxDetection
@register(name="_contrib_MultiBoxDetection")
class MultiBoxDetection(OpDef):
    """SSD detections (B, N, 6: class - 1, score, corners) from class probabilities (B, C, N; class 0 is the
    background), offsets (B, 4N) and anchors (1, N, 4): each anchor's best foreground class (first maximum) if its
    probability >= threshold, boxes decoded with the variances (clipped to [0, 1] when clip); the valid rows first in
    anchor order, rows of -1 after. Unless nms_threshold is outside (0, 1], the valid rows are sorted by score
    (stable), the first nms_topk kept (the others keep their unsorted values with class -1) and greedy NMS marks
    a row's class -1 when its IoU with a kept higher-scored row (same class unless force_suppress) is >=
    nms_threshold. background_id is unused, as in MXNet. Zero gradient. Mirrors MXNet
    src/operator/contrib/multibox_detection.cc."""
    aliases = ("_npx_multibox_detection",)
    inputs = ("cls_prob", "loc_pred", "anchor")
    differentiable = False
    float_only = True
    clip: bool = param(True, doc="Clip out-of-boundary boxes.")
    threshold: float = param(0.01, doc="Threshold to be a positive prediction.")
    background_id: int = param(0, doc="Background id.")
    nms_threshold: float = param(0.5, doc="Non-maximum suppression threshold.")
    force_suppress: bool = param(False, doc="Suppress all detections regardless of class_id.")
    variances: FloatTuple = param((0.1, 0.1, 0.2, 0.2), doc="Variances to be decoded from box regression output.")
    nms_topk: int = param(-1, doc="Keep maximum top k detections before nms, -1 for no limit.")

    def __post_init__(self):
        if len(self.variances) != 4:
            raise ValueError("Variance size must be 4, got %s" % (self.variances,))

    def infer_shape(self, cls_prob, loc_pred, anchor):
        if cls_prob is None or loc_pred is None or anchor is None:
            return None
        _check(self, len(cls_prob) == 3, "cls_prob must be 3-D (batch, num_classes, num_anchors), got %s",
               tuple(cls_prob))
        _check(self, len(loc_pred) == 2, "loc_pred must be 2-D (batch, num_anchors * 4), got %s", tuple(loc_pred))
        _check(self, len(anchor) == 3 and anchor[1] > 0 and anchor[2] == 4,
               "anchor must have shape (1, num_anchors, 4), got %s", tuple(anchor))
        _check(self, cls_prob[2] == anchor[1], "Number of anchors mismatch: cls_prob %s, anchor %s", tuple(cls_prob),
               tuple(anchor))
        _check(self, cls_prob[2] * 4 == loc_pred[1] and loc_pred[0] == cls_prob[0],
               "# anchors mismatch with # loc: cls_prob %s, loc_pred %s", tuple(cls_prob), tuple(loc_pred))
        _check(self, anchor[0] == 1, "anchors are shared across the batch: anchor must have shape (1, %d, 4), got %s",
               anchor[1], tuple(anchor))
        return [cls_prob, loc_pred, anchor], [(cls_prob[0], anchor[1], 6)]

    def infer_type(self, *types):
        return _float32_only(self, types)

    def lower(self, g, cls_prob, loc_pred, anchor):
        calc = np.dtype(np.float32)
        b, c, n = g.shape(cls_prob)
        probs = cls_prob
        if c > 1:
            foreground = g.Slice(probs, g.int64s([1]), g.int64s([c]), g.int64s([1]))
            score = g.ReduceMax(foreground, axes=[1], keepdims=0)                         # (B, N)
            ids = g.cast(g.ArgMax(foreground, axis=1, keepdims=0), calc)                  # class - 1
            valid = g.And(g.Greater(score, g.scalar(-1, calc)),
                          g.Not(g.Less(score, g.scalar(np.float32(self.threshold), calc))))
        else:
            score, ids = _full(g, -1, calc, (b, n)), _full(g, -1, calc, (b, n))
            valid = _full(g, False, np.bool_, (b, n))
        rows = g.Concat(g.Unsqueeze(ids, g.int64s([2])), g.Unsqueeze(score, g.int64s([2])),
                        self._decode(g, anchor, loc_pred, b, n, calc), axis=2)
        minus = g.scalar(-1, calc)
        gather = lambda index, count: g.GatherElements(rows, g.Expand(g.Unsqueeze(index, g.int64s([2])),
                                                                      g.int64s([b, count, 6])), axis=1)
        compact = _compact_order(g, valid, n)
        packed = g.Where(g.Unsqueeze(g.GatherElements(valid, compact, axis=1), g.int64s([2])),
                         gather(compact, n), minus)                                 # (B, N, 6)
        if not 0 < self.nms_threshold <= 1:
            return packed
        k = n if self.nms_topk <= 0 else min(self.nms_topk, n)
        key = g.Where(valid, score, g.scalar(-np.inf, calc))
        order = g.TopK(key, g.int64s([k]), axis=1, largest=1, sorted=1, _outputs=2)[1]    # stable: lower index
        live = g.GatherElements(valid, order, axis=1)
        ranked = gather(order, k)                                                         # (B, K, 6)
        labels = g.Where(live, g.Squeeze(_col(g, ranked, 0), g.int64s([2])), minus)
        labels = self._suppress(g, labels, ranked, b, k, calc)
        head = g.Where(g.Unsqueeze(live, g.int64s([2])),
                       g.Concat(g.Unsqueeze(labels, g.int64s([2])),
                                g.Slice(ranked, g.int64s([1]), g.int64s([6]), g.int64s([2])), axis=2), minus)
        if k < n:
            tail = g.Slice(packed, g.int64s([k, 1]), g.int64s([n, 6]), g.int64s([1, 2]))
            head = g.Concat(head, g.Concat(_full(g, -1, calc, (b, n - k, 1)), tail, axis=2), axis=1)
        return head

    def _decode(self, g, anchor, loc_pred, b, n, calc):
        """TransformLocations: corner boxes (B, N, 4) from the offsets, clipped to [0, 1] when clip."""
        a = [_col(g, anchor, i) for i in range(4)]                                        # (1, N, 1)
        p = [_col(g, g.Reshape(loc_pred, g.int64s([b, n, 4])), i) for i in range(4)]      # (B, N, 1)
        v = [g.scalar(np.float32(x), calc) for x in self.variances]
        two = g.scalar(2, calc)
        aw, ah = g.Sub(a[2], a[0]), g.Sub(a[3], a[1])
        ax, ay = g.Div(g.Add(a[0], a[2]), two), g.Div(g.Add(a[1], a[3]), two)
        ox, oy = g.Add(g.Mul(g.Mul(p[0], v[0]), aw), ax), g.Add(g.Mul(g.Mul(p[1], v[1]), ah), ay)
        ow = g.Div(g.Mul(g.Exp(g.Mul(p[2], v[2])), aw), two)
        oh = g.Div(g.Mul(g.Exp(g.Mul(p[3], v[3])), ah), two)
        out = g.Concat(g.Sub(ox, ow), g.Sub(oy, oh), g.Add(ox, ow), g.Add(oy, oh), axis=2)
        if self.clip:
            out = g.Max(g.scalar(0, calc), g.Min(g.scalar(1, calc), out))
        return out

    def _suppress(self, g, labels, ranked, b, k, calc):
        """Greedy NMS over the K ranked rows: a live row i marks every later live row j (same class unless
        force_suppress) with IoU >= nms_threshold as class -1. Each step jumps to the next live row (the rows
        a step suppresses are skipped, as MXNet's loop skips them), and the loop ends when none is left."""
        box = [g.Squeeze(_col(g, ranked, 2 + i), g.int64s([2])) for i in range(4)]        # (B, K)
        positions = g.const(np.arange(k, dtype=np.int64)[None])
        limit = g.scalar(np.float32(self.nms_threshold), calc)

        def step(body, _, state):
            current, done = state                        # labels (B, K); the last row handled (B, 1)
            zero = body.scalar(0, calc)
            live = body.GreaterOrEqual(current, zero)
            first, found = _first_true(body, body.And(live, body.Greater(positions, done)))
            ref = lambda v: body.GatherElements(v, first, axis=1)                         # (B, 1)
            w = body.Max(zero, body.Sub(body.Min(ref(box[2]), box[2]), body.Max(ref(box[0]), box[0])))
            h = body.Max(zero, body.Sub(body.Min(ref(box[3]), box[3]), body.Max(ref(box[1]), box[1])))
            inter = body.Mul(w, h)
            area = lambda x: body.Mul(body.Sub(x[2], x[0]), body.Sub(x[3], x[1]))
            union = body.Sub(body.Add(area([ref(v) for v in box]), area(box)), inter)
            iou = body.Where(body.LessOrEqual(union, zero), zero, body.Div(inter, union))
            hit = body.And(body.And(found, live), body.And(body.GreaterOrEqual(iou, limit),
                                                           body.Greater(positions, first)))
            if not self.force_suppress:
                hit = body.And(hit, body.Equal(current, ref(current)))
            done = body.Where(found, first, body.scalar(k, np.int64))
            return _any(body, found), [body.Where(hit, body.scalar(-1, calc), current), done]

        start = _full(g, -1, np.int64, (b, 1))
        return _loop(g, k, [labels, start], [((b, k), calc), ((b, 1), np.int64)], step, early_exit=True)[0]


# ---------------------------------------------------------------- Proposal / MultiProposal
def _rpn_anchors(stride, ratios, scales):
    """GenerateAnchors (proposal-inl.h) in MXNet's float32 / double arithmetic: (len(ratios) * len(scales), 4),
    ratio-major."""
    f = np.float32
    x1, y1, x2, y2 = f(0), f(0), f(stride - 1.0), f(stride - 1.0)
    w, h = f(f(x2 - x1) + f(1)), f(f(y2 - y1) + f(1))
    x_ctr, y_ctr = f(float(x1) + 0.5 * float(f(w - f(1)))), f(float(y1) + 0.5 * float(f(h - f(1))))
    anchors = []
    for ratio in ratios:
        for scale in scales:
            ratio, scale = f(ratio), f(scale)
            size_ratios = np.floor(f(f(w * h) / ratio))
            new_w = f(np.floor(f(np.sqrt(size_ratios) + f(0.5))) * scale)
            new_h = f(np.floor(f(f(f(new_w / scale) * ratio) + f(0.5))) * scale)
            half_w, half_h = f(f(0.5) * f(new_w - f(1))), f(f(0.5) * f(new_h - f(1)))
            anchors.append([f(x_ctr - half_w), f(y_ctr - half_h), f(x_ctr + half_w), f(y_ctr + half_h)])
    return np.array(anchors, np.float32)


@dataclasses.dataclass(frozen=True)
class _ProposalBase(OpDef):
    """Region proposals of a Faster R-CNN RPN: shifted anchors (per cell, row-major, anchors fastest) moved by
    bbox_pred (center/size deltas, or corner deltas with iou_loss) and clipped to the image, scored by the
    foreground half of cls_prob (-1 outside im_info's real feature area, and for boxes smaller than
    rpn_min_size * scale, which are also grown by half of it on each side); the rpn_pre_nms_top_n best (stable
    sort) go through greedy NMS (IoU > threshold suppresses, +1 pixel areas) until rpn_post_nms_top_n are kept;
    the kept boxes repeat cyclically to fill rpn_post_nms_top_n rows of (image index, corners), with the scores
    as a second output. float32 only; zero gradient. Mirrors MXNet src/operator/contrib/proposal.cc and
    multi_proposal.cc."""
    inputs = ("cls_prob", "bbox_pred", "im_info")
    outputs = ("output", "score")
    differentiable = False
    float_only = True
    rpn_pre_nms_top_n: int = param(6000, doc="Number of top scoring boxes to keep before applying NMS to RPN "
                                             "proposals")
    rpn_post_nms_top_n: int = param(300, doc="Number of top scoring boxes to keep after applying NMS to RPN "
                                             "proposals")
    threshold: float = param(0.7, doc="NMS value, below which to suppress.")
    rpn_min_size: int = param(16, doc="Minimum height or width in proposal")
    scales: FloatTuple = param((4.0, 8.0, 16.0, 32.0), doc="Used to generate anchor windows by enumerating "
                                                               "scales")
    ratios: FloatTuple = param((0.5, 1.0, 2.0), doc="Used to generate anchor windows by enumerating ratios")
    feature_stride: int = param(16, doc="The size of the receptive field each unit in the convolution layer of the "
                                        "rpn, for example the product of all stride's prior to this layer.")
    output_score: bool = param(False, doc="Add score to outputs")
    iou_loss: bool = param(False, doc="Usage of IoU Loss")

    def num_visible_outputs(self):
        return 2 if self.output_score else 1

    def infer_shape(self, cls_prob, bbox_pred, im_info):
        if cls_prob is None:
            return None
        _check(self, len(cls_prob) == 4, "cls_prob must be 4-D (batch, 2 * num_anchors, height, width), got %s",
               tuple(cls_prob))
        # MXNet gives (0, 5) and (0, 1) outputs for 0; a zero dimension means "unknown" to shape inference here
        _check(self, self.rpn_post_nms_top_n >= 1, "rpn_post_nms_top_n must be >= 1, got %d", self.rpn_post_nms_top_n)
        anchors = len(self.ratios) * len(self.scales)
        _check(self, cls_prob[1] == 2 * anchors, "cls_prob %s must have 2 * len(ratios) * len(scales) = %d channels",
               tuple(cls_prob), 2 * anchors)
        b = cls_prob[0]
        wanted = [tuple(cls_prob), (b, cls_prob[1] * 2, cls_prob[2], cls_prob[3]), (b, 3)]
        for name, shape, need in zip(self.inputs[1:], (bbox_pred, im_info), wanted[1:]):
            _check(self, shape is None or tuple(shape) == need, "input '%s' has shape %s, expected %s", name,
                   None if shape is None else tuple(shape), need)
        rows = self._rows(b)
        return wanted, [(rows, 5), (rows, 1)]

    def infer_type(self, *types):
        return _float32_only(self, types)

    def lower(self, g, cls_prob, bbox_pred, im_info):
        b, channels, height, width = g.shape(cls_prob)
        num = channels // 2
        count = num * height * width
        pre = count if self.rpn_pre_nms_top_n <= 0 else min(self.rpn_pre_nms_top_n, count)
        post = min(self.rpn_post_nms_top_n, pre)
        f32 = np.dtype(np.float32)
        # shifted anchors, (1, count) per coordinate; cell (h, w) and anchor a at index (h * W + w) * A + a
        base = _rpn_anchors(self.feature_stride, self.ratios, self.scales)
        shift_x = (np.arange(width) * self.feature_stride).astype(np.float32)
        shift_y = (np.arange(height) * self.feature_stride).astype(np.float32)
        grid = np.zeros((height, width, num, 4), np.float32)
        grid[..., 0] = base[None, None, :, 0] + shift_x[None, :, None]
        grid[..., 1] = base[None, None, :, 1] + shift_y[:, None, None]
        grid[..., 2] = base[None, None, :, 2] + shift_x[None, :, None]
        grid[..., 3] = base[None, None, :, 3] + shift_y[:, None, None]
        anchors = grid.reshape(1, count, 4)
        scores = g.Reshape(g.Transpose(g.Slice(cls_prob, g.int64s([num]), g.int64s([channels]), g.int64s([1])),
                                       perm=[0, 2, 3, 1]), g.int64s([b, count]))
        deltas = g.Reshape(g.Transpose(g.Reshape(bbox_pred, g.int64s([b, num, 4, height, width])),
                                       perm=[0, 3, 4, 1, 2]), g.int64s([b, count, 4]))
        d = [g.Squeeze(_col(g, deltas, i), g.int64s([2])) for i in range(4)]               # (B, count)
        info = [_col(g, im_info, i) for i in range(3)]                                     # (B, 1)
        if self.iou_loss:
            boxes = [g.Add(g.const(anchors[..., i]), d[i]) for i in range(4)]
        else:
            boxes = self._transform(g, anchors, d)
        one = g.scalar(1, f32)
        limits = [g.Sub(info[1], one), g.Sub(info[0], one)] * 2                            # width - 1, height - 1
        boxes = [g.Max(g.Min(v, limit), g.scalar(0, f32)) for v, limit in zip(boxes, limits)]
        # scores of cells outside the real (unpadded) feature map: -1
        stride = g.scalar(self.feature_stride, f32)
        real_h, real_w = (g.cast(g.Div(info[i], stride), np.int64) for i in (0, 1))
        index = np.arange(count)
        cell_h = g.const((index // (width * num)).reshape(1, -1).astype(np.int64))
        cell_w = g.const(((index // num) % width).reshape(1, -1).astype(np.int64))
        outside = g.Or(g.GreaterOrEqual(cell_h, real_h), g.GreaterOrEqual(cell_w, real_w))
        # FilterBox: too small boxes grow by min_size / 2 on each side and score -1
        min_size = g.Mul(g.scalar(self.rpn_min_size, f32), info[2])
        small = g.Or(g.Less(g.Add(g.Sub(boxes[2], boxes[0]), one), min_size),
                     g.Less(g.Add(g.Sub(boxes[3], boxes[1]), one), min_size))
        half = g.Div(min_size, g.scalar(2, f32))
        boxes = [g.Where(small, g.Sub(v, half) if i < 2 else g.Add(v, half), v) for i, v in enumerate(boxes)]
        minus = g.scalar(-1, f32)
        scores = g.Where(small, minus, g.Where(outside, minus, scores))
        order = g.TopK(scores, g.int64s([pre]), axis=1, largest=1, sorted=1, _outputs=2)[1]   # stable
        ranked = [g.GatherElements(v, order, axis=1) for v in boxes + [scores]]               # (B, pre)
        kept = self._nms(g, ranked[:4], b, pre, post)
        total = g.ReduceSum(g.cast(kept, np.int64), g.int64s([1]), keepdims=1)             # (B, 1), >= 1
        slots = g.Mod(g.const(np.arange(self.rpn_post_nms_top_n, dtype=np.int64)[None]), total)
        picked = g.GatherElements(_compact_order(g, kept, pre), slots, axis=1)             # (B, post rows)
        rows = self.rpn_post_nms_top_n
        column = lambda v: g.Unsqueeze(g.GatherElements(v, picked, axis=1), g.int64s([2]))
        image = g.const(np.repeat(np.arange(b, dtype=np.float32)[:, None, None], rows, axis=1))
        out = g.Concat(image, *(column(v) for v in ranked[:4]), axis=2)
        return g.Reshape(out, g.int64s([b * rows, 5])), g.Reshape(column(ranked[4]), g.int64s([b * rows, 1]))

    @staticmethod
    def _transform(g, anchors, d):
        """BBoxTransformInv: the float32 arithmetic of the kernel, its `0.5 * (w - 1.0)` terms in double."""
        f, f32, f64 = np.float32, np.dtype(np.float32), np.dtype(np.float64)
        x1, y1, x2, y2 = (anchors[0, :, i].astype(np.float32) for i in range(4))
        width, height = (x2 - x1 + f(1)).astype(np.float32), (y2 - y1 + f(1)).astype(np.float32)
        ctr_x = (x1.astype(np.float64) + 0.5 * (width.astype(np.float64) - 1.0)).astype(np.float32)
        ctr_y = (y1.astype(np.float64) + 0.5 * (height.astype(np.float64) - 1.0)).astype(np.float32)
        row = lambda v: g.const(v.reshape(1, -1))
        center_x = g.Add(g.Mul(d[0], row(width)), row(ctr_x))
        center_y = g.Add(g.Mul(d[1], row(height)), row(ctr_y))
        size_w, size_h = g.Mul(g.Exp(d[2]), row(width)), g.Mul(g.Exp(d[3]), row(height))
        wide = lambda v: g.cast(v, f64)
        half_w = g.Mul(g.scalar(0.5, f64), g.Sub(wide(size_w), g.scalar(1, f64)))
        half_h = g.Mul(g.scalar(0.5, f64), g.Sub(wide(size_h), g.scalar(1, f64)))
        corner = lambda op, c, half: g.cast(op(wide(c), half), f32)
        return [corner(g.Sub, center_x, half_w), corner(g.Sub, center_y, half_h), corner(g.Add, center_x, half_w),
                corner(g.Add, center_y, half_h)]

    def _nms(self, g, boxes, b, pre, post):
        """Greedy NMS over the ranked boxes: each step keeps the first live box and kills the live boxes whose
        overlap with it is > threshold; stops after `post` kept boxes or when none is live. (B, pre) kept flags."""
        f32 = np.dtype(np.float32)
        one = g.scalar(1, f32)
        area = g.Mul(g.Add(g.Sub(boxes[2], boxes[0]), one), g.Add(g.Sub(boxes[3], boxes[1]), one))
        positions = g.const(np.arange(pre, dtype=np.int64)[None])
        limit = g.scalar(np.float32(self.threshold), f32)

        def step(body, _, state):
            alive, kept = state
            first, found = _first_true(body, alive)
            ref = lambda v: body.GatherElements(v, first, axis=1)                         # (B, 1)
            zero, unit = body.scalar(0, f32), body.scalar(1, f32)
            side = lambda lo, hi: body.Max(zero, body.Add(body.Sub(body.Min(ref(boxes[hi]), boxes[hi]),
                                                                   body.Max(ref(boxes[lo]), boxes[lo])), unit))
            inter = body.Mul(side(0, 2), side(1, 3))
            overlap = body.Div(inter, body.Sub(body.Add(ref(area), area), inter))
            pick = body.And(found, body.Equal(positions, first))
            alive = body.And(alive, body.Not(body.Or(pick, body.Greater(overlap, limit))))
            return _any(body, found), [alive, body.Or(kept, pick)]                        # none live: stop

        return _loop(g, post, [_full(g, True, np.bool_, (b, pre)), _full(g, False, np.bool_, (b, pre))],
                     [((b, pre), np.bool_), ((b, pre), np.bool_)], step, early_exit=True)[1]


@register(name="_contrib_Proposal")
class Proposal(_ProposalBase):
    __doc__ = _ProposalBase.__doc__ + " One image only (batch 1)."

    def _rows(self, batch):
        if batch != 1:
            raise MXNetError("%s: Sorry, multiple images each device is not implemented (cls_prob has batch %d; "
                             "use _contrib_MultiProposal)" % (self.op_name, batch))
        return self.rpn_post_nms_top_n


@register(name="_contrib_MultiProposal")
class MultiProposal(_ProposalBase):
    __doc__ = _ProposalBase.__doc__ + " rpn_post_nms_top_n rows per image, image after image."

    def _rows(self, batch):
        return batch * self.rpn_post_nms_top_n
