"""onnxsym's own reverse-mode automatic differentiation over ONNX graphs (no onnxruntime-training).

`gradient_model(model, seeds, wrt)` appends to a forward model the nodes computing the vector-Jacobian product of
its seeded values: each seed is (value, gradient) with the gradient a graph input (head gradient) or None for a
scalar loss seeded with 1. One VJP rule per ONNX op type (`onnxsym/autograd/vjp/`), each written as standard ONNX
nodes. Stop-gradient markers (lowering's ATen `onnxsym_blockgrad`) pass no gradient; values that do not depend on a
`wrt` input, or do not reach a seed, are never differentiated; a `wrt` input no seed depends on gets no gradient
output (its gradient is zero).
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from ..base import MXNetError
from ..lower.builder import ATEN_DOMAIN, CUSTOM_VJP_OPERATOR, STOP_GRADIENT_OPERATOR, GraphBuilder, lift_to_opset, \
    numpy_dtype
from . import vjp
from .expand import constant_value, expand_functions

__all__ = ["gradient_model", "GradientBuilder", "value_info"]


def _operator(node):
    for attribute in node.attribute:
        if attribute.name == "operator":
            return attribute.s.decode()
    return ""


def is_stop_gradient(node):
    return node.domain == ATEN_DOMAIN and node.op_type == "ATen" and _operator(node) == STOP_GRADIENT_OPERATOR


def is_custom_vjp(node):
    return node.domain == ATEN_DOMAIN and node.op_type == "ATen" and _operator(node) == CUSTOM_VJP_OPERATOR


def value_info(model):
    """{value name: (shape tuple (None for unknown dimensions) or None, numpy dtype)} of every value of `model`'s
    main graph, from ONNX shape inference (stop-gradient and custom-VJP markers read as the Identity of their first
    input; values it cannot type keep the model's value_info)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for node in probe.graph.node:
        if is_stop_gradient(node) or is_custom_vjp(node):
            node.op_type, node.domain = "Identity", ""
            del node.attribute[:]
            del node.input[1:]
    try:
        probe = shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
    except Exception:   # noqa: BLE001 - partial information is still usable; rules that need more say so
        pass
    info = {}
    graph = probe.graph
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        kind = value.type.tensor_type
        if not kind.elem_type:
            continue
        shape = None
        if kind.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim)
        info[value.name] = (shape, numpy_dtype(kind.elem_type))
    for tensor in graph.initializer:
        info[tensor.name] = (tuple(tensor.dims), numpy_dtype(tensor.data_type))
    return info


class GradientBuilder(GraphBuilder):
    """The GraphBuilder VJP rules write into: static shapes and dtypes of the forward values, node attributes,
    and the helpers every rule shares."""

    def __init__(self, model, info):
        super().__init__()
        self.scope = "grad"
        self.is_train = False
        self.forward = model
        self._constants = self._identities = None
        for name in _all_names(model):
            self.reserve(name)
        self._partial = {}
        for name, (shape, dtype) in info.items():
            if shape is not None and None in shape:
                self._partial[name] = shape
                shape = None
            self.set_info(name, shape, dtype)

    def emit(self, op_type, inputs, attrs=None, outputs=1, domain=""):
        out = super().emit(op_type, inputs, attrs, outputs, domain)
        if outputs == 1 and not domain and out not in self._shapes:
            self._infer(op_type, [v for v in inputs if v], out, attrs or {})
        return out

    def _infer(self, op_type, inputs, out, attrs):
        """Shape and dtype of a rule's elementwise node (what the rules that follow need: ranks, shapes)."""
        if op_type in _SAME_SHAPE and inputs:
            shape = self._shapes.get(inputs[0], self._partial.get(inputs[0]))
        elif op_type in _BROADCASTING and inputs:
            shapes = [self._shapes.get(v, self._partial.get(v)) for v in inputs]
            shape = None if any(s is None for s in shapes) else _broadcast(shapes)
        else:
            return
        if op_type == "Cast":
            dtype = numpy_dtype(attrs["to"])
        elif op_type in _BOOLEAN:
            dtype = np.dtype(bool)
        else:
            operands = inputs[1:] if op_type == "Where" else inputs
            dtype = next((self._dtypes[v] for v in operands if v in self._dtypes), None)
        if shape is not None and None in shape:
            self._partial[out] = shape
            shape = None
        self.set_info(out, shape, dtype)

    @staticmethod
    def attrs(node):
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def floating(self, value):
        return np.issubdtype(self.dtype(value), np.floating)

    def scalar_like(self, value, like):
        """A 0-d constant `value` in `like`'s dtype."""
        return self.scalar(value, self.dtype(like))

    def constant(self, name):
        """The value of an initializer or Constant node of the forward graph, seen through Identity nodes
        (imported models pass every input through one), or None. Indexed once per gradient build."""
        if self._constants is None:
            graph = self.forward.graph
            self._constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
            self._constants.update((n.output[0], constant_value(n)) for n in graph.node
                                   if n.op_type == "Constant" and not n.domain and constant_value(n) is not None)
            self._identities = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
        while name in self._identities:
            name = self._identities[name]
        return self._constants.get(name)

    def known_shape(self, value):
        """The static shape of `value`, or None."""
        return self._shapes.get(value)

    def rank(self, value):
        """The rank of `value`, or None."""
        shape = self._shapes.get(value, self._partial.get(value))
        return None if shape is None else len(shape)

    def shape_of(self, value):
        """`value`'s shape as an int64 tensor: a constant when known statically, else a Shape node."""
        shape = self.known_shape(value)
        return self.int64s(shape) if shape is not None else self.Shape(value)

    def unbroadcast(self, grad, like):
        """`grad` (of a broadcast result) summed back to the shape of the input `like` (numpy broadcasting)."""
        out_shape, in_shape = self.known_shape(grad), self.known_shape(like)
        if out_shape is None or in_shape is None:
            return self._unbroadcast_dynamic(grad, like)
        if out_shape == in_shape:
            return grad
        lead = len(out_shape) - len(in_shape)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(in_shape) if d == 1 and out_shape[lead + i] != 1]
        result = grad
        if axes:
            result = self.ReduceSum(grad, self.int64s(axes), keepdims=1)
        return self.reshape_to(result, in_shape)

    def _unbroadcast_dynamic(self, grad, like):
        """unbroadcast with shapes known at run time only: the axes where `like` (padded with leading 1s to
        grad's rank) is 1 and grad is not, summed (ReduceSum with computed axes), then reshaped to like's shape."""
        out_rank, in_rank = self.rank(grad), self.rank(like)
        if out_rank is None or in_rank is None:
            raise MXNetError("the gradient of a broadcast needs the ranks of %s and %s" % (grad, like))
        in_shape = self.Shape(like)
        if out_rank > in_rank:
            in_shape = self.Concat(self.int64s([1] * (out_rank - in_rank)), in_shape, axis=0)
        one = self.int64s([1])
        summed = self.And(self.Equal(in_shape, one), self.Not(self.Equal(self.Shape(grad), one)))
        axes = self.Reshape(self.NonZero(summed), self.int64s([-1]))
        reduced = self.ReduceSum(grad, axes, keepdims=1, noop_with_empty_axes=1)
        return self.like(self.Reshape(reduced, self.Shape(like)), like)

    def reshape_like(self, value, like):
        """`value` reshaped to `like`'s shape (static when known, else read at run time)."""
        shape = self.known_shape(like)
        if shape is not None:
            return self.reshape_to(value, shape)
        return self.like(self.Reshape(value, self.Shape(like)), like)

    def reshape_to(self, value, shape):
        out = self.Reshape(value, self.int64s(shape))
        self.set_info(out, shape, self._dtypes.get(value))
        return out

    def like(self, value, like):
        """`value` with the static shape and dtype of `like` recorded (rules' results)."""
        self.set_info(value, self._shapes.get(like), self._dtypes.get(like))
        if like in self._partial:
            self._partial[value] = self._partial[like]
        return value

    def zeros_like(self, value):
        shape = self.known_shape(value)
        if shape is not None:
            return self.like(self.Expand(self.scalar(0, self.dtype(value)), self.int64s(shape)), value)
        return self.like(self.Expand(self.scalar(0, self.dtype(value)), self.Shape(value)), value)


_SAME_SHAPE = {"Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Sign", "Sin", "Cos", "Tanh", "Sigmoid", "Relu",
               "Cast", "Not", "Identity", "Floor", "Ceil", "Erf", "Cosh", "Sinh", "Softplus", "IsNaN", "IsInf"}
_BOOLEAN = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf"}
_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Mod", "PRelu"} | _BOOLEAN - {"Not", "IsNaN",
                                                                                                      "IsInf"}


def _broadcast(shapes):
    """numpy broadcasting of shapes whose dimensions may be None (unknown)."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        known = [d for d in dims if d is not None and d != 1]
        if known:
            out.append(known[0])
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _all_names(model):
    graph = model.graph
    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    names.update(t.name for t in graph.initializer)
    for node in graph.node:
        names.update(node.output)
        names.add(node.name)
    return names


def _active(graph, seeds, wrt):
    """Values on a path from a `wrt` input to a seed: the only ones that get gradients."""
    varying = set(wrt)
    for node in graph.node:
        if is_stop_gradient(node):
            continue
        if any(name in varying for name in node.input if name):
            varying.update(node.output)
    needed = set(seeds)
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            needed.update(name for name in node.input if name)
    return varying & needed


def gradient_model(model, seeds, wrt, info=None):
    """(model with the gradients appended, {wrt name: gradient value name}, number of forward nodes: the model's
    first nodes, the forward graph with the operators that have no rule expanded to their function bodies).

    seeds: [(value, gradient value or None)], None meaning a scalar seeded with 1 (the loss). wrt: graph input
    names. A wrt input that no seed depends on is missing from the returned dict (its gradient is zero)."""
    seed_values = [value for value, _ in seeds]
    expanded = expand_functions(model, lambda m: _active(m.graph, seed_values, wrt))
    if expanded is not model:       # operators with no rule of their own: through their function bodies
        model, info = expanded, None
    graph = model.graph
    info = value_info(model) if info is None else info
    g = GradientBuilder(model, info)
    active = g.active = _active(graph, seed_values, wrt)
    contributions = {}
    for value, gradient in seeds:
        if value not in active:
            continue
        if gradient is None:
            gradient = g.like(g.Expand(g.scalar(1, g.dtype(value)), g.shape_of(value)), value)
        contributions.setdefault(value, []).append(gradient)
    for node in reversed(graph.node):
        if is_stop_gradient(node) or not any(name in contributions for name in node.output):
            continue
        if not any(name in active for name in node.input if name):
            continue
        out_grads = [_total(g, contributions.pop(name, None), name) for name in node.output]
        rule = vjp.rule_for(node)
        if rule is None:
            raise MXNetError("onnxsym cannot differentiate the ONNX operator %s%s (node %s): no gradient rule"
                             % (node.domain + "." if node.domain else "", node.op_type, node.name))
        g.scope = "grad/" + (node.name or node.op_type)
        in_grads = list(rule(g, node, out_grads) or [])
        for name, grad in zip(node.input, in_grads):
            if grad is None or not name or name not in active:
                continue
            if g.known_shape(grad) is None or grad not in g._dtypes:
                g.like(grad, name)      # a gradient has its input's shape and dtype
            contributions.setdefault(name, []).append(grad)
    grads = {}
    for name in wrt:
        total = _total(g, contributions.get(name), name)
        if total is not None:
            grads[name] = total
    return _append(model, g, grads), grads, len(graph.node)


def _total(g, parts, like):
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = g.like(g.Add(total, part), like)
    return total


def _append(model, g, grads):
    """A copy of `model` with the gradient nodes and an output `<name>_grad` per gradient."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    g._apply_renames()
    # (only what the gradients need: a rule builds the gradients of all its inputs, and ORT runs every node, a
    # first layer's data gradient included: the MLP's 784-wide one was 15 % of its training step)
    nodes, initializers = g.live_nodes(set(grads.values()))
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    for domain, version in g.domains.items():
        if not any(o.domain == domain for o in out.opset_import):
            out.opset_import.append(helper.make_opsetid(domain, version))
    # (each gradient through an Identity: made straight into `<name>_grad` by its last node, ResNet-18's training
    # step ran in an order that kept 55 MB more alive, ORT's order following the graph's last nodes)
    for name, value in grads.items():
        target = name + "_grad"
        graph.node.append(helper.make_node("Identity", [value], [target], name=target))
        shape, dtype = g._shapes.get(name), g._dtypes.get(name, np.dtype(np.float32))
        graph.output.append(helper.make_tensor_value_info(target, onnx.helper.np_dtype_to_tensor_dtype(dtype),
                                                          list(shape) if shape is not None else None))
    return lift_to_opset(out)       # (the rules write opset-17 nodes; a newer model's opset rewrites them)
