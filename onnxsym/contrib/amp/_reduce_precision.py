"""MXNet's ReducePrecision graph pass (src/nnvm/low_precision_pass.cc) and the dtype bookkeeping of
MXReducePrecisionSymbol / AMPInferUnknown (src/c_api/c_api_symbolic.cc, src/nnvm/amp_infer_unknown.cc) on
onnxsym's nodes.

Nodes are visited in nnvm's DFS order and copied; an input gets an `amp_cast` (or the inputs of a widest-type op
an `amp_multicast`) by the rules of the pass, and the dtype each copied output is known to have (float16 or
float32, by the op's type rule from its first input) decides where a cast can be shared or left out.
"""
import numpy as np

from ...base import DTYPE_NAMES, MXNetError
from ...ops.registry import get_op
from ...symbol.infer import infer_graph_types
from ...symbol.node import Node, topo_order

__all__ = ["reduce_precision", "input_dtype_attrs"]

_FLOAT32 = np.dtype(np.float32)


def _op_type(op, in_types):
    """Output dtypes (None = unknown) and the filled input dtypes of `op` given some input dtypes, or None when
    the op's rule cannot decide (MXNet's FInferType failing)."""
    try:
        result = op.infer_type(*in_types)
    except (MXNetError, ValueError, TypeError):
        return None
    if result is None:
        return None
    ins, outs = result
    norm = lambda types: [None if t is None else np.dtype(t) for t in types]
    return norm(ins), norm(outs)


class _Pass:
    def __init__(self, target, target_ops, fp32_ops, widest_ops, conditional, excluded, data_names,
                 cast_optional_params, named_output_ops):
        self.target = np.dtype(target)
        self.target_ops, self.fp32_ops, self.widest_ops = set(target_ops), set(fp32_ops), set(widest_ops)
        self.conditional, self.excluded, self.data_names = conditional, set(excluded), set(data_names)
        self.cast_optional_params = cast_optional_params
        self.named_output_ops = named_output_ops
        self.mirror = {}            # id(node) -> its copy
        self.fp32 = {}              # (id(node), index) -> (copy entry, version) known to be float32
        self.low = {}               # same, known to be the target dtype
        self.amp_cast = get_op("amp_cast")
        self.amp_multicast = get_op("amp_multicast")

    # ----- helpers
    def _suffix(self, node, index):
        if node.op is None:
            return ""
        if node.op.op_name in self.named_output_ops:
            return "_" + node.op.output_names()[index]
        return "_%d" % index

    def _mirror_entry(self, node, index, version):
        return (self.mirror[id(node)], index), version

    def _cast(self, node, index, version, dtype_name, table):
        """An amp_cast of the copy of (node, index), shared through `table`."""
        source, src_version = self._mirror_entry(node, index, version)
        attrs = {"dtype": dtype_name}
        cast = Node(self.amp_cast.from_attrs(attrs), node.name + self._suffix(node, index) + "_amp_cast_"
                    + dtype_name, attrs, [source], [src_version])
        table[(id(node), index)] = ((cast, 0), version)
        return (cast, 0), version

    def _record_outputs(self, node, copy, out_types):
        for i, dtype in enumerate(out_types):
            if dtype == self.target:
                self.low[(id(node), i)] = ((copy, i), 0)
            elif dtype == _FLOAT32:
                self.fp32[(id(node), i)] = ((copy, i), 0)

    def _is_conditional_fp32(self, node):
        if node.name in self.excluded or node.op.op_name not in self.conditional:
            return False
        return any(node.attrs.get(param) in values for param, values in self.conditional[node.op.op_name].items())

    # ----- one node
    def visit(self, node):
        if node.op is None:
            copy = Node(None, node.name, node.attrs)
            copy.version = node.version
            self.mirror[id(node)] = copy
            return
        entries = list(zip(node.inputs, node.versions))
        mutable = node.aux_flags()
        name, opname = node.name, node.op.op_name
        if opname in self.fp32_ops or name in self.excluded:
            inputs = self._fp32_inputs(node, entries, mutable=None)
            copy = self._copy(node, inputs)
            self._record_outputs(node, copy, [_FLOAT32] * node.num_outputs)
        elif opname in self.target_ops:
            copy = self._low_node(node, entries, mutable)
        elif opname in self.widest_ops:
            copy = self._widest_node(node, entries)
        elif self._is_conditional_fp32(node):
            inputs = self._fp32_inputs(node, entries, mutable=mutable)
            copy = self._copy(node, inputs)
            self._record_outputs(node, copy, [_FLOAT32] * node.num_outputs)
        else:
            copy = self._copy(node, [self._mirror_entry(src, i, v) for (src, i), v in entries])
            first = node.inputs[0] if node.inputs else None
            if first is not None and (id(first[0]), first[1]) in self.low.keys() | self.fp32.keys():
                in_types = [None] * len(node.inputs)
                in_types[0] = self.target if (id(first[0]), first[1]) in self.low else _FLOAT32
                typed = _op_type(node.op, in_types)
                if typed is not None:
                    self._record_outputs(node, copy, typed[1])
        self.mirror[id(node)] = copy

    def _copy(self, node, inputs):
        copy = Node(node.op, node.name, node.attrs, [e for e, _ in inputs], [v for _, v in inputs])
        return copy

    def _fp32_inputs(self, node, entries, mutable):
        """Inputs of an op that runs in float32: known float32 outputs as they are, variables as they are
        (assumed float32) for an fp32/excluded op, mutable inputs as they are for a conditional one, else a
        cast to float32."""
        inputs = []
        for k, ((src, i), version) in enumerate(entries):
            key = (id(src), i)
            if key in self.fp32:
                inputs.append(self.fp32[key])
            elif (mutable is None and src.op is None) or (mutable is not None and mutable[k]):
                inputs.append(self._mirror_entry(src, i, version))
            else:
                inputs.append(self._cast(src, i, version, "float32", self.fp32))
        return inputs

    def _low_node(self, node, entries, mutable):
        in_types = [None] * len(entries)
        out_types = [None] * node.num_outputs
        if entries:
            in_types[0] = self.target
            typed = _op_type(node.op, in_types)
            if typed is not None:
                in_types = list(typed[0]) + [None] * (len(entries) - len(typed[0]))
                out_types = typed[1]
        inputs = []
        for k, ((src, i), version) in enumerate(entries):
            key = (id(src), i)
            if key in self.low:
                inputs.append(self.low[key])
            elif ((self.cast_optional_params and src.op is None and src.name not in self.data_names)
                  or mutable[k] or not (in_types[k] is None or in_types[k] == self.target)):
                entry = self._mirror_entry(src, i, version)
                inputs.append(entry)
                if self.cast_optional_params and src.op is None:
                    self.low[key] = entry
            else:
                inputs.append(self._cast(src, i, version, self.target.name, self.low))
        copy = self._copy(node, inputs)
        self._record_outputs(node, copy, out_types)
        return copy

    def _widest_node(self, node, entries):
        if not entries:
            raise MXNetError("Please check the symbol. node name: %s op name %s has no inputs.It is likely that "
                             "something went wrong during symbolic construction." % (node.name, node.op.op_name))
        keys = [(id(src), i) for (src, i), _ in entries]
        if any(k not in self.low and k not in self.fp32 for k in keys):
            src, i = entries[0][0]
            count = len(entries)
            attrs = {"num_outputs": str(count)}
            multicast = Node(self.amp_multicast.from_attrs(attrs), src.name + self._suffix(src, i) + "_amp_multicast",
                             attrs, [(self.mirror[id(s)], j) for (s, j), _ in entries], [v for _, v in entries])
            return self._copy(node, [((multicast, k), v) for k, (_, v) in enumerate(entries)])
        dtype = _FLOAT32 if any(k in self.fp32 for k in keys) else self.target
        table = self.fp32 if dtype == _FLOAT32 else self.low
        inputs = []
        for (src, i), version in entries:
            key = (id(src), i)
            inputs.append(table[key] if key in table else self._cast(src, i, version, dtype.name, table))
        copy = self._copy(node, inputs)
        self._record_outputs(node, copy, [dtype] * node.num_outputs)
        return copy

    def heads(self, outputs):
        result = []
        for node, index in outputs:
            key = (id(node), index)
            if key in self.fp32:
                result.append(self.fp32[key][0])
            else:
                result.append(self._cast(node, index, 0, "float32", self.fp32)[0])
        return result


def reduce_precision(outputs, target, target_ops, fp32_ops, widest_ops, conditional, excluded, data_names,
                     cast_optional_params, named_output_ops):
    """The converted graph's output entries. `conditional`: {op name: {parameter: [values]}}."""
    state = _Pass(target, target_ops, fp32_ops, widest_ops, conditional, excluded, data_names, cast_optional_params,
                  named_output_ops)
    for node in topo_order(outputs):
        state.visit(node)
    return state.heads(outputs)


def _infer_unknown(outputs, types, target):
    """AMPInferUnknown: a variable whose dtype inference left unknown takes the dtype of the amp_cast it feeds
    (or the target dtype, for an amp_multicast of variables only); two casts that disagree leave it unknown."""
    result, visited = dict(types), {}

    def update(src, dtype):
        key = (id(src), 0)
        if src.name not in visited:
            if result.get(key) is None:
                visited[src.name] = dtype
                result[key] = dtype
        elif visited[src.name] != dtype:
            result[key] = types.get(key)

    for node in topo_order(outputs):
        if node.op is None:
            continue
        if node.op.op_name == "amp_cast":
            for src, _ in node.inputs:
                if src.op is None:
                    update(src, np.dtype(node.op.dtype))
        elif node.op.op_name == "amp_multicast":
            if all(src.op is None for src, _ in node.inputs):
                for src, _ in node.inputs:
                    update(src, np.dtype(target))
    return result


def input_dtype_attrs(outputs, target, data_names, model_params, cast_optional_params):
    """Set `__dtype__` on the converted graph's inputs as MXReducePrecisionSymbol does: on every model parameter
    when `model_params` is not empty, else only where an input already had one; data inputs are float32 and
    what inference leaves unknown is float32."""
    known = {name: _FLOAT32 for name in data_names}
    try:
        _, types = infer_graph_types(outputs, known)
    except MXNetError:
        types = {}
    if cast_optional_params:
        types = _infer_unknown(outputs, types, target)
    variables = [n for n in topo_order(outputs) if n.op is None]
    for node in variables:
        dtype = types.get((id(node), 0))
        code = "0" if dtype is None else str(DTYPE_NAMES.index(np.dtype(dtype).name))
        if model_params:
            if node.name in model_params:
                node.attrs["__dtype__"] = code
        elif "__dtype__" in node.attrs:
            node.attrs["__dtype__"] = code
