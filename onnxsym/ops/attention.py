"""Ops of GluonNLP / Gluon exports: the interleaved multi-head attention products
(_contrib_interleaved_matmul_{selfatt,encdec}_{qk,valatt}), _contrib_arange_like and _rnn_param_concat
(MXNet 1.9.1 src/operator/contrib/transformer.cc, tensor/init_op.{h,cc}, nn/concat.cc).

The interleaved layout: a (seq, batch, heads * 3 * head_dim) projection is (seq, batch, heads, 3, head_dim) with
queries, keys, values at index 0, 1, 2 of axis 3 (keys and values of encdec: (..., heads, 2, head_dim)); attention
batch i = b * heads + h. Each op is a Reshape, a Gather of its part, a Transpose and a batched MatMul, so its gradient
is MXNet's backward (the exact derivative). float16 runs in float32 (MXNet's GPU GEMM accumulates in float32).
"""
import dataclasses
import typing

import numpy as np

from .._shapes import fmt, partial_rule
from ..base import MXNetError
from .params import param
from .registry import OpDef, register
from .shape import Concat

__all__ = []


# ---------------------------------------------------------------- interleaved multi-head attention
def _rank3(op, shape, name, layout):
    if shape is not None and len(shape) != 3:
        raise MXNetError("%s: input '%s' must be 3-D (%s), got shape %s" % (op.op_name, name, layout, fmt(shape)))


def _head_dim(op, shape, name, parts):
    """head_dim of a (seq, batch, heads * parts * head_dim) projection; MXNet divides without checking."""
    if op.heads < 1:
        raise MXNetError("%s: heads must be a positive number, got %d" % (op.op_name, op.heads))
    if shape[2] % (parts * op.heads):
        raise MXNetError("%s: input '%s' has shape %s: its last axis (%d) must be heads * %d * head_dim with "
                         "heads=%d" % (op.op_name, name, fmt(shape), shape[2], parts, op.heads))
    return shape[2] // (parts * op.heads)


def _part(g, value, heads, parts, index):
    """Part `index` of an interleaved (seq, batch, heads * parts * head_dim) projection as (batch, heads, seq,
    head_dim)."""
    head_dim = g.shape(value)[2] // (heads * parts)
    split = g.Reshape(value, g.int64s([0, 0, heads, parts, head_dim]))     # 0: copied (any batch size)
    picked = g.Gather(split, g.const(np.asarray(index, dtype=np.int64)), axis=3)
    return g.Transpose(picked, perm=[1, 2, 0, 3])


def _heads_first(g, value, heads):
    """A (seq, batch, heads * head_dim) projection as (batch, heads, seq, head_dim)."""
    return g.Transpose(g.Reshape(value, g.int64s([0, 0, heads, g.shape(value)[2] // heads])), perm=[1, 2, 0, 3])


def _attention(g, heads, attention):
    """(batch * heads, q_seq, kv_seq) attention maps as (batch, heads, q_seq, kv_seq)."""
    _, q_seq, kv_seq = g.shape(attention)
    return g.Reshape(attention, g.int64s([-1, heads, q_seq, kv_seq]))


def _float32(g, inputs):
    """The inputs, float16 ones cast to float32; and the dtype the outputs are cast back to (None: none)."""
    if g.dtype(inputs[0]) != np.float16:
        return inputs, None
    wide = []
    for value in inputs:
        cast = g.cast(value, np.float32)
        g.set_info(cast, g.shape(value), np.float32)
        wide.append(cast)
    return wide, np.float16


@dataclasses.dataclass(frozen=True)
class _Interleaved(OpDef):
    heads: int = param(doc="Set number of heads")
    float_only = True       # MXNet 1.9.1: "Only FP32 is supported on CPU at the moment" (float16 on GPU)

    def lower(self, g, *inputs):
        inputs, back = _float32(g, inputs)
        out = self._product(g, *inputs)
        return out if back is None else g.cast(out, back)


@register(name="_contrib_interleaved_matmul_selfatt_qk")
class interleaved_matmul_selfatt_qk(_Interleaved):
    """out[b*heads+h, s, t] = q[s, b, h] . k[t, b, h] / sqrt(head_dim), q and k interleaved in
    queries_keys_values (seq, batch, heads * 3 * head_dim). Mirrors MXNet _contrib_interleaved_matmul_selfatt_qk."""
    inputs = ("queries_keys_values",)

    def infer_shape(self, qkv):
        _rank3(self, qkv, "queries_keys_values", "seq_length, batch, 3 * proj_dim")
        _head_dim(self, qkv, "queries_keys_values", 3)
        return [qkv], [(self.heads * qkv[1], qkv[0], qkv[0])]

    def _product(self, g, qkv):
        seq, _, width = g.shape(qkv)
        queries, keys = _part(g, qkv, self.heads, 3, 0), _part(g, qkv, self.heads, 3, 1)
        scores = _scaled_scores(g, queries, keys, width // (3 * self.heads), g.dtype(qkv))
        return g.Reshape(scores, g.int64s([-1, seq, seq]))


def _batched_matmul(g, a, b, dtype, transpose_b=False):
    """a @ b (or a @ b^T) over (batch, heads, ...) values. float64 as an Einsum: ORT fuses Transpose + MatMul
    into com.microsoft FusedMatMul, which has no float64 kernel before 1.32 (plain ORT would refuse the export)."""
    if np.dtype(dtype) == np.float64:
        return g.Einsum(a, b, equation="bhij,bhkj->bhik" if transpose_b else "bhij,bhjk->bhik")
    return g.MatMul(a, g.Transpose(b, perm=[0, 1, 3, 2]) if transpose_b else b)


def _scaled_scores(g, queries, keys, head_dim, dtype):
    """queries @ keys^T / sqrt(head_dim) on (batch, heads, seq, head_dim) values (MXNet: GEMM alpha)."""
    scores = _batched_matmul(g, queries, keys, dtype, transpose_b=True)
    return g.Mul(scores, g.scalar(1.0 / np.sqrt(head_dim), dtype))


@register(name="_contrib_interleaved_matmul_selfatt_valatt")
class interleaved_matmul_selfatt_valatt(_Interleaved):
    """out[s, b, h*head_dim:(h+1)*head_dim] = sum_t attention[b*heads+h, s, t] * v[t, b, h], v interleaved in
    queries_keys_values. Mirrors MXNet _contrib_interleaved_matmul_selfatt_valatt."""
    inputs = ("queries_keys_values", "attention")

    def infer_shape(self, qkv, attention):
        _rank3(self, qkv, "queries_keys_values", "seq_length, batch, 3 * proj_dim")
        _rank3(self, attention, "attention", "batch * heads, seq_length, seq_length")
        _head_dim(self, qkv, "queries_keys_values", 3)
        expected = (qkv[1] * self.heads, qkv[0], qkv[0])
        if tuple(attention) != expected:
            raise MXNetError("%s: input 'attention' has shape %s but queries_keys_values %s with heads=%d needs %s"
                             % (self.op_name, fmt(attention), fmt(qkv), self.heads, fmt(expected)))
        return [qkv, attention], [(qkv[0], qkv[1], qkv[2] // 3)]

    def _product(self, g, qkv, attention):
        values = _part(g, qkv, self.heads, 3, 2)
        product = _batched_matmul(g, _attention(g, self.heads, attention), values, g.dtype(qkv))
        return _merge_heads(g, product, g.shape(qkv)[2] // 3)


def _merge_heads(g, value, width):
    """(batch, heads, seq, head_dim) -> (seq, batch, heads * head_dim)."""
    return g.Reshape(g.Transpose(value, perm=[2, 0, 1, 3]), g.int64s([0, 0, width]))


@register(name="_contrib_interleaved_matmul_encdec_qk")
class interleaved_matmul_encdec_qk(_Interleaved):
    """out[b*heads+h, s, t] = q[s, b, h] . k[t, b, h] / sqrt(head_dim), queries (q_seq, batch, heads * head_dim),
    keys interleaved in keys_values (kv_seq, batch, heads * 2 * head_dim). Mirrors MXNet
    _contrib_interleaved_matmul_encdec_qk."""
    inputs = ("queries", "keys_values")

    def infer_shape(self, queries, keys_values):
        _rank3(self, queries, "queries", "seq_length, batch, proj_dim")
        _rank3(self, keys_values, "keys_values", "seq_length, batch, 2 * proj_dim")
        _head_dim(self, queries, "queries", 1)
        if keys_values[2] != 2 * queries[2] or keys_values[1] != queries[1]:
            raise MXNetError("%s: input 'keys_values' has shape %s but queries %s needs (kv_seq_length, %d, %d)"
                             % (self.op_name, fmt(keys_values), fmt(queries), queries[1], 2 * queries[2]))
        return [queries, keys_values], [(queries[1] * self.heads, queries[0], keys_values[0])]

    def _product(self, g, queries, keys_values):
        q_seq, _, width = g.shape(queries)
        keys = _part(g, keys_values, self.heads, 2, 0)
        scores = _scaled_scores(g, _heads_first(g, queries, self.heads), keys, width // self.heads,
                                g.dtype(queries))
        return g.Reshape(scores, g.int64s([-1, q_seq, g.shape(keys_values)[0]]))


@register(name="_contrib_interleaved_matmul_encdec_valatt")
class interleaved_matmul_encdec_valatt(_Interleaved):
    """out[s, b, h*head_dim:(h+1)*head_dim] = sum_t attention[b*heads+h, s, t] * v[t, b, h], v interleaved in
    keys_values (kv_seq, batch, heads * 2 * head_dim). Mirrors MXNet _contrib_interleaved_matmul_encdec_valatt."""
    inputs = ("keys_values", "attention")

    def infer_shape(self, keys_values, attention):
        _rank3(self, keys_values, "keys_values", "seq_length, batch, 2 * proj_dim")
        _rank3(self, attention, "attention", "batch * heads, q_seq_length, kv_seq_length")
        _head_dim(self, keys_values, "keys_values", 2)
        if attention[2] != keys_values[0] or attention[0] != keys_values[1] * self.heads:
            raise MXNetError("%s: input 'attention' has shape %s but keys_values %s with heads=%d needs "
                             "(%d, q_seq_length, %d)" % (self.op_name, fmt(attention), fmt(keys_values), self.heads,
                                                         keys_values[1] * self.heads, keys_values[0]))
        return [keys_values, attention], [(attention[1], keys_values[1], keys_values[2] // 2)]

    def _product(self, g, keys_values, attention):
        values = _part(g, keys_values, self.heads, 2, 1)
        product = _batched_matmul(g, _attention(g, self.heads, attention), values, g.dtype(keys_values))
        return _merge_heads(g, product, g.shape(keys_values)[2] // 2)


# ---------------------------------------------------------------- arange_like
@register(name="_contrib_arange_like")
class arange_like(OpDef):
    """out.flat[i] = start + (i // repeat) * step, of data's shape (or (data.shape[axis],) with axis) and dtype;
    data's values are never read. Mirrors MXNet _contrib_arange_like."""
    aliases = ("_npx_arange_like",)
    start: float = param(0.0, doc="Start of interval. The interval includes this value. The default start value "
                                   "is 0.")
    step: float = param(1.0, doc="Spacing between values.")
    repeat: int = param(1, doc="The repeating time of all elements. E.g repeat=3, the element a will be repeated "
                               "three times --> a, a, a.")
    ctx: str = param("", doc="Context of output, in format [cpu|gpu|cpu_pinned](n).Only used for imperative calls.")
    axis: typing.Optional[int] = param(None, doc="Arange elements according to the size of a certain axis of input "
                                                 "array. The negative numbers are interpreted counting from the "
                                                 "backward. If not provided, will arange elements according to the "
                                                 "input shape.")
    differentiable = False      # MXNet: MakeZeroGradNodes

    def _out(self, data):
        if self.repeat <= 0:
            raise MXNetError("_contrib_arange_like: repeat must be positive, got %d" % self.repeat)
        if self.axis is None:
            return tuple(data)
        if not -len(data) <= self.axis < len(data):
            raise MXNetError("_contrib_arange_like: cannot handle axis %d for data of shape %s"
                             % (self.axis, fmt(data)))
        return (data[self.axis % len(data)],)

    def infer_shape(self, data):
        return [data], [self._out(data)]

    def lower(self, g, data):
        shape = self._out(g.shape(data))
        values = _range_values(self.start, self.step, self.repeat, int(np.prod(shape, dtype=np.int64)), g.dtype(data))
        return g.Identity(g.const(values.reshape(shape)))


def _range_values(start, step, repeat, size, dtype):
    """MXNet's range kernel: start + (i // repeat) * step in the output dtype. Integer dtypes and float16 (whose
    mshadow half_t is not std::is_signed, so MXNet casts start and step to index_t) truncate start and step."""
    dtype = np.dtype(dtype)
    index = np.arange(size, dtype=np.int64) // repeat
    if dtype.kind in "iub" or dtype == np.float16:
        return (int(start) + index * int(step)).astype(dtype)
    return (np.asarray(start).astype(dtype) + index.astype(dtype) * np.asarray(step).astype(dtype)).astype(dtype)


# ---------------------------------------------------------------- _rnn_param_concat
@register
class _rnn_param_concat(Concat):
    """out = the inputs joined along `dim` (Concat), with MXNet's RNN parameter shape rule: one or two inputs
    whose size along `dim` is unknown share what the known output size leaves. Mirrors MXNet _rnn_param_concat
    (Gluon rnn.LSTM/GRU/RNN join their flattened weights and biases with it)."""
    aliases = ("_npi_rnn_param_concat",)

    @partial_rule
    def infer_shape(self, *shapes, out_shapes=None):
        try:
            decided = Concat.infer_shape(self, *shapes, out_shapes=out_shapes)
        except MXNetError as err:
            raise MXNetError(str(err).replace("Concat:", self.op_name + ":", 1)) from None
        if decided is None:
            return None
        ins, outs = decided
        axis = self.dim % len(outs[0])
        total = outs[0][axis] if outs[0][axis] is not None else (out_shapes[0][axis] if out_shapes and
                                                                  out_shapes[0] is not None else None)
        unknown = [i for i, shape in enumerate(ins) if shape[axis] is None]
        if total is None or not unknown:
            return ins, outs
        residual = total - sum(shape[axis] for shape in ins if shape[axis] is not None)
        if residual < 0:
            raise MXNetError("_rnn_param_concat: the inputs' sizes along dim=%d already exceed the output's %d "
                             "(residual %d)" % (self.dim, total, residual))
        if len(unknown) > 2:
            raise MXNetError("_rnn_param_concat: expecting 1 or 2 inputs that need shape inference, got %d"
                             % len(unknown))
        ins = [tuple(residual // len(unknown) if k == axis else d for k, d in enumerate(shape))
               if i in unknown else shape for i, shape in enumerate(ins)]
        return ins, [outs[0][:axis] + (total,) + outs[0][axis + 1:]]
