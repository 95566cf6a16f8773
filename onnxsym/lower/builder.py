"""The ONNX graph builder every lowering writes through: names, constants, initializers and nodes.

`g.Gemm(a, b, c, transB=1)` emits a node and returns its output name; `_outputs=n` returns n names,
`_domain='com.microsoft'` picks a domain. `g.const(array)` makes a (deduplicated) initializer. Static shapes
and dtypes of the values that correspond to symbol entries are available through `g.shape(v)` / `g.dtype(v)`.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..base import MXNetError

__all__ = ["GraphBuilder", "OPSET", "IR_VERSION", "ir_version_for", "lift_to_opset", "onnx_dtype", "numpy_dtype",
           "STOP_GRADIENT_KEY", "CUSTOM_VJP_OPERATOR", "PYTHON_DOMAIN", "PYTHON_OP_PREFIX", "PYTHON_GRAD_PREFIX",
           "python_op_name", "python_op_dtypes", "aten_python_ops", "python_grad_key", "split_python_grad_key",
           "strip_stop_gradients"]

OPSET = 17
IR_VERSION = 8        # every onnxruntime >= 1.17 reads it (onnxruntime-training 1.19.2 accepts <= 10)

# Stop-gradient marker of training graphs: an ATen node whose input 0 the gradient builders treat as a stop edge
# (ORT only consults custom stop edges for ATen nodes, ORT_NOTES.md §2B). It becomes Identity after the build.
ATEN_DOMAIN = "org.pytorch.aten"
PYTHON_DOMAIN = "ai.onnx.contrib"          # onnxruntime-extensions' Python ops
FUNCTION_DOMAIN = "onnxsym.functions"       # composite custom ops exported as ONNX functions
PYTHON_OP_PREFIX = "MXCustom_"
PYTHON_GRAD_PREFIX = "MXCustomGrad_"
_DTYPE_CODES = {"float32": "f", "float64": "d", "float16": "h", "int64": "l", "int32": "i", "int8": "b", "uint8": "B",
                "bool": "o", "int16": "s", "uint16": "S", "uint32": "I", "uint64": "L"}
STOP_GRADIENT_OPERATOR = "onnxsym_blockgrad"
STOP_GRADIENT_KEY = "%s::ATen::%s::" % (ATEN_DOMAIN, STOP_GRADIENT_OPERATOR)
CUSTOM_VJP_OPERATOR = "onnxsym_vjp"     # value 0 unchanged, differentiated by a named rule from the other inputs


def onnx_dtype(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def numpy_dtype(elem_type):
    return helper.tensor_dtype_to_np_dtype(elem_type)


class GraphBuilder:
    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.inputs = []
        self.outputs = []
        self.domains = {"": OPSET}
        self.scope = "graph"
        # the inferred output shapes of the node being lowered (ops without inputs whose shape inference ran
        # backwards, mx.sym.ones(shape=(-1, -1)): their parameters alone do not say it)
        self.out_shapes = ()
        self._names = set()
        self._consts = {}
        self._shapes = {}
        self._dtypes = {}
        self._producer = {}
        self._renames = {}
        self.value_infos = []
        self._declared, self._declared_upto = set(), 0      # names in value_infos (declare's index)
        # Training graphs: ops read `is_train`; loss heads add `head_gradients` (input value, MXNet's gradient
        # for it); training-mode ops report new auxiliary-state values in `aux_updates` (aux input -> value).
        self.is_train = False
        self.gradients = "onnxsym"     # who differentiates a training graph: 'onnxsym' or 'ort-training'
        # Ops in training mode (BatchNorm batch statistics, Dropout masks, rrelu slopes): normally `is_train`; a
        # differentiable graph of an inference forward (backward after forward(is_train=False)) has it False.
        self.train_mode = False
        self.export_functions = False   # composite custom ops as ONNX functions (export) instead of inline
        self.functions = {}             # (domain, name) -> FunctionProto
        self.head_gradients = []
        self.aux_updates = {}
        self.kernels = []       # custom ops' Python kernels, called by key: they live as long as the Lowered graph

    # ----- names and static information -----
    def fresh(self, base):
        """A value/node name not used yet, derived from `base`."""
        name, k = base, 0
        while name in self._names:
            k += 1
            name = "%s_%d" % (base, k)
        self._names.add(name)
        return name

    def reserve(self, name):
        self._names.add(name)

    def set_info(self, value, shape=None, dtype=None):
        if shape is not None:
            self._shapes[value] = tuple(shape)
        if dtype is not None:
            self._dtypes[value] = np.dtype(dtype)

    def shape(self, value):
        """The static shape of a value (known for symbol entries and constants)."""
        try:
            return self._shapes[value]
        except KeyError:
            raise KeyError("no static shape recorded for ONNX value %r" % value) from None

    def dtype(self, value):
        try:
            return self._dtypes[value]
        except KeyError:
            raise KeyError("no dtype recorded for ONNX value %r" % value) from None

    def producer(self, value):
        return self._producer.get(value)

    # ----- graph pieces -----
    def add_input(self, name, shape, dtype):
        self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape) if shape else shape))
        self.set_info(name, shape, dtype)
        return name

    def declare(self, value, shape, dtype):
        """A value_info entry for `value` (shape and dtype), unless it has one."""
        declared = {v.name for v in self.value_infos[self._declared_upto:]} | self._declared
        self._declared, self._declared_upto = declared, len(self.value_infos)
        if value not in declared:
            self.value_infos.append(helper.make_tensor_value_info(value, onnx_dtype(dtype), list(shape)))

    def add_output(self, name, shape, dtype):
        self.outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape) if shape else shape))

    def const(self, value, dtype=None, name=None):
        """An initializer holding `value` (numpy-convertible); equal small constants are shared."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
            array = array.astype(np.float32)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 64 and name is None else None
        if key is not None and key in self._consts:
            return self._consts[key]
        out = self.fresh(name or "%s/const" % self.scope)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), out))
        self.set_info(out, array.shape, array.dtype)
        if key is not None:
            self._consts[key] = out
        return out

    def int64s(self, values):
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1))

    def scalar(self, value, dtype):
        """A 0-d constant of `dtype` (scalar operands follow the tensor's dtype, as in MXNet)."""
        return self.const(np.asarray(value, dtype=dtype))

    def cast(self, value, dtype):
        """Cast `value` to a numpy dtype (ONNX Cast with the matching element type)."""
        return self.Cast(value, to=onnx_dtype(dtype))

    # onnxruntime 1.19.2 has no OneHot kernel with float64 values: float32 values, then a Cast.
    def OneHot(self, indices, depth, values, axis=-1):
        dtype = self._dtypes.get(values)
        if dtype is None or np.dtype(dtype) in (np.float32, np.int64, np.int32):
            return self.emit("OneHot", [indices, depth, values], {"axis": axis})
        return self.cast(self.emit("OneHot", [indices, depth, self.cast(values, np.float32)], {"axis": axis}), dtype)

    def stop_gradient(self, value, dtype=None):
        """`value` unchanged, with no gradient flowing back through it when training (Identity otherwise)."""
        if not self.is_train:
            return self.Identity(value)
        dtype = dtype if dtype is not None else self.dtype(value)
        out = self.emit("ATen", [value], {"operator": STOP_GRADIENT_OPERATOR}, domain=ATEN_DOMAIN)
        self.value_infos.append(helper.make_tensor_value_info(out, onnx_dtype(dtype), None))
        self.set_info(out, self._shapes.get(value), dtype)
        return out

    def custom_vjp(self, output, saved, rule, params=()):
        """`output` unchanged, differentiated by onnxsym's VJP rule `rule` (autograd.vjp.registry.custom_rule) from
        `saved` [values the forward computed] instead of through the ops that computed `output`: what the backward
        pass keeps alive is then `saved`, not those ops' intermediate values. `params`: integers the rule reads.
        Only in graphs onnxsym's AD differentiates (training graphs, gradients='onnxsym'); Identity once the
        gradient graph is built (strip_stop_gradients). `output` has the shape and dtype of saved[0] unless
        recorded."""
        if not self.is_train or getattr(self, "gradients", "onnxsym") != "onnxsym":
            return output
        dtype = self._dtypes.get(output, self.dtype(saved[0]))
        shape = self._shapes.get(output, self._shapes.get(saved[0]))
        key = "%s:%s" % (rule, ",".join(str(int(p)) for p in params))
        out = self.emit("ATen", [output] + list(saved), {"operator": CUSTOM_VJP_OPERATOR, "overload_name": key},
                        domain=ATEN_DOMAIN)
        self.value_infos.append(helper.make_tensor_value_info(out, onnx_dtype(dtype), None))
        self.set_info(out, shape, dtype)
        return out

    def with_gradient(self, output, partials, reduce_axes=None):
        """`output` unchanged, differentiated through `partials` [(input, d output / d input), ...] when training.

        For ops whose ONNX form has no (or a wrong) onnxruntime-training gradient: output + sum((x - stop(x)) *
        stop(dydx)) adds zero to the value and gives x the gradient head * dydx (broadcast inputs are summed back by
        Mul's gradient; an input of another float dtype than the output goes through Cast). With `reduce_axes`, the
        output is a reduction over those axes (keepdims) of the Jacobian-shaped terms. A term's value is 0 * dydx,
        NaN where the derivative (or x) is infinite or NaN: such terms are dropped from the value, which therefore
        never changes (that element's gradient is then NaN: head * inf). The derivative values are computed only
        in training graphs (`partials` may be a callable)."""
        if not self.is_train:
            return output
        partials = partials() if callable(partials) else partials
        # integer inputs take no gradient (their derivative nodes, unused, are not written to the model)
        partials = [(value, derivative) for value, derivative in partials if np.dtype(self.dtype(value)).kind == "f"]
        if not partials:
            return output
        out_dtype = self._dtypes.get(output, self.dtype(partials[0][0]))
        total = self.stop_gradient(output, out_dtype)
        for value, derivative in partials:
            dtype = self.dtype(value)
            term = self.Mul(self.Sub(value, self.stop_gradient(value)), self.stop_gradient(derivative, dtype))
            term = self.Where(self.Equal(self.Sub(term, term), self.scalar(0, dtype)), term, self.scalar(0, dtype))
            if reduce_axes is not None:
                term = self.ReduceSum(term, self.int64s(reduce_axes), keepdims=1)
            if dtype != out_dtype:
                term = self.cast(term, out_dtype)
            total = self.Add(total, term)
        return total

    def function_op(self, name, inputs, build_body):
        """A call of the model-local ONNX function `name` (domain onnxsym.functions) whose body
        `build_body(sub_builder, input_names)` lowers into a fresh builder and returns its output values."""
        body = GraphBuilder()
        body.scope = name
        formal = ["x%d" % i for i in range(len(inputs))]
        for arg, value in zip(formal, inputs):
            body.add_input(arg, self.shape(value), self.dtype(value))
        outputs = build_body(body, formal)
        outputs = [body._renames.get(o, o) for o in outputs]
        body._apply_renames()
        nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in body.initializers] + body.nodes
        key = (FUNCTION_DOMAIN, name)
        proto = helper.make_function(FUNCTION_DOMAIN, name, formal, [o for o in outputs], nodes,
                                     [helper.make_opsetid(d, v) for d, v in body.domains.items()])
        existing = self.functions.get(key)
        if existing is not None and existing.SerializeToString() != proto.SerializeToString():
            key = (FUNCTION_DOMAIN, self.fresh(name))
            proto.name = key[1]
        self.functions[key] = proto
        self.domains.setdefault(FUNCTION_DOMAIN, 1)
        outs = self.emit(key[1], inputs, None, len(outputs), domain=FUNCTION_DOMAIN)
        return outs if isinstance(outs, tuple) else (outs,)

    def python_op(self, inputs, in_dtypes, out_dtypes, kernel, n_args, n_outputs):
        """A custom op's Python node: one PyOp type per dtype signature, dispatching on `kernel.key`. Training
        graphs carry it as an ATen placeholder (how ORT's gradient builders accept a registered gradient for it)."""
        name = python_op_name(PYTHON_OP_PREFIX, in_dtypes, out_dtypes)
        key = kernel.key
        self.kernels.append(kernel)
        if self.is_train and inputs:    # (an op without inputs has no gradient to give: a plain Python node)
            outs = self.emit("ATen", inputs, {"operator": name, "overload_name": key}, len(out_dtypes),
                             domain=ATEN_DOMAIN)
        else:
            outs = self.emit(name, inputs, {"key": key}, len(out_dtypes), domain=PYTHON_DOMAIN)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for value, dtype in zip(outs, out_dtypes):
            self.value_infos.append(helper.make_tensor_value_info(value, onnx_dtype(dtype), None))
            self.set_info(value, None, dtype)
        return outs if len(outs) > 1 else outs[0]

    def add_head_gradient(self, value, gradient):
        """Training: MXNet's backward of a loss head gives `gradient` for `value` (head gradients ignored)."""
        self.head_gradients.append((value, gradient))

    def update_aux(self, aux_value, new_value, momentum=None):
        """Training: how the auxiliary-state input `aux_value` changes. Without `momentum` it takes `new_value`
        when the forward runs (a custom op writes its aux states in forward). With `momentum` m it is a moving
        average that MXNet updates in the backward pass, once per backward() call:
        state = state * m + new_value * (1 - m) (BatchNorm's moving statistics)."""
        self.aux_updates[aux_value] = (self.stop_gradient(new_value, self.dtype(aux_value)), momentum)

    def emit(self, op_type, inputs, attrs=None, outputs=1, domain=""):
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        inputs = ["" if v is None else v for v in inputs]
        names = [self.fresh("%s/%s%s" % (self.scope, op_type, "" if outputs == 1 else ":%d" % i))
                 for i in range(outputs)]
        attrs = {k: _attr_value(v) for k, v in (attrs or {}).items() if v is not None}
        node = helper.make_node(op_type, inputs, names, name=self.fresh("%s/%s" % (self.scope, op_type)),
                                domain=domain or None, **attrs)
        return self._add_node(node, names, domain)

    def emit_with_attributes(self, op_type, inputs, attributes, outputs=1, domain=""):
        """A node with ready-made AttributeProtos (imported ONNX nodes); empty strings are absent inputs."""
        names = [self.fresh("%s/%s:%d" % (self.scope, op_type, i)) for i in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, name=self.fresh("%s/%s" % (self.scope, op_type)),
                                domain=domain or None)
        node.attribute.extend(attributes)
        return self._add_node(node, names, domain)

    def _add_node(self, node, names, domain):
        if domain and domain not in self.domains:
            self.domains[domain] = 1
        self.nodes.append(node)
        for n in names:
            self._producer[n] = node
        return names[0] if len(names) == 1 else tuple(names)

    def __getattr__(self, op_type):
        if not op_type[:1].isupper():
            raise AttributeError(op_type)

        def call(*inputs, _outputs=1, _domain="", **attrs):
            return self.emit(op_type, inputs, attrs, _outputs, _domain)

        return call

    def rename(self, old, new):
        """Rename the value `old` to `new` everywhere (applied once, when the model is made)."""
        self._renames[old] = new

    def _apply_renames(self):
        if not self._renames:
            return
        for node in self.nodes:
            for seq in (node.input, node.output):
                for i, name in enumerate(seq):
                    if name in self._renames:
                        seq[i] = self._renames[name]
            for inner in _body_nodes(node):     # outer values a subgraph reads (imported If/Loop/Scan)
                for i, name in enumerate(inner.input):
                    if name in self._renames:
                        inner.input[i] = self._renames[name]
        for value in list(self.inputs) + list(self.outputs) + list(self.value_infos):
            value.name = self._renames.get(value.name, value.name)
        for old, new in self._renames.items():
            for table in (self._shapes, self._dtypes):
                if old in table:
                    table.setdefault(new, table[old])
        self._renames = {}

    def live_nodes(self, needed=None):
        """The nodes the graph outputs (or the values `needed`) depend on, in emission order, and the initializers
        they read. Dead nodes (outputs of a multi-output op that nobody reads, a rule's gradient of an input that
        takes none) are dropped: ORT's gradient builder mis-handles them (ORT_NOTES.md §1, Split), and ORT's
        session runs them all the same."""
        needed = {o.name for o in self.outputs} if needed is None else set(needed)
        live = []
        for node in reversed(self.nodes):
            if any(name in needed for name in node.output):
                live.append(node)
                needed.update(i for i in node.input if i)
                needed.update(i for inner in _body_nodes(node) for i in inner.input if i)
        live.reverse()
        used_inits = [t for t in self.initializers if t.name in needed]
        return live, used_inits

    def model(self, name="onnxsym", doc=""):
        self._apply_renames()
        nodes, initializers = self.live_nodes()
        names = {n for node in nodes for n in node.output}
        value_info = [v for v in self.value_infos if v.name in names]
        for value in value_info:      # ops unknown to ONNX shape inference (ATen markers, Python ops): their shapes
            shape = self._shapes.get(value.name)
            kind = value.type.tensor_type
            if shape is not None and None not in shape and not kind.HasField("shape"):
                kind.shape.SetInParent()
                for dim in shape:
                    kind.shape.dim.add().dim_value = dim
        graph = helper.make_graph(nodes, name, self.inputs, self.outputs, initializers, value_info=value_info)
        opsets = [helper.make_opsetid(d, v) for d, v in self.domains.items()]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version_for(self.domains[""]),
                                  producer_name="onnxsym", doc_string=doc, functions=list(self.functions.values()))
        lift_to_opset(model)
        return model


# The one place where opsets mix: onnxsym's lowerings (and VJP rules) write opset-17 nodes; a graph holding an
# imported node of a newer opset (ops/onnx_node.py raises the builder's opset) declares that opset, and the nodes
# whose form changed since 17 are rewritten to it here (Reduce* axes became an input at 18, Split needs
# num_outputs without a split input at 18, GridSample's modes were renamed at 20). Imported nodes of the newer
# opset are already in that form, so the rewrite leaves them as they are.
_AXES_INPUT_AT_18 = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
                     "ReduceProd", "ReduceSumSquare"}
_GRID_SAMPLE_MODES_20 = {"bilinear": "linear", "bicubic": "cubic"}


def ir_version_for(opset):
    """The IR version a model of this ai.onnx opset needs (IR_VERSION up to opset 17)."""
    return max(IR_VERSION, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def lift_to_opset(model):
    """Rewrite `model`'s opset-17-form nodes (main graph, subgraphs, functions) for the ai.onnx opset it declares."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset <= OPSET:
        return model
    model.ir_version = max(model.ir_version, ir_version_for(opset))
    stack = [model.graph] + [f for f in model.functions]
    while stack:
        graph = stack.pop()
        nodes, lifted = [], False
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                nodes.append(node)
                continue
            stack.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
            stack.extend(g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs)
            if opset >= 18 and node.op_type in _AXES_INPUT_AT_18:
                axes = next((a for a in node.attribute if a.name == "axes"), None)
                if axes is not None:
                    values = list(axes.ints)
                    node.attribute.remove(axes)
                    name = "%s/axes_input" % (node.name or node.output[0])
                    # right before its reader: the nodes before it (a forward part) keep their positions
                    nodes.append(helper.make_node("Constant", [], [name], name=name,
                                                  value=numpy_helper.from_array(np.array(values, np.int64))))
                    lifted = True
                    del node.input[1:]
                    node.input.append(name)
            elif opset >= 18 and node.op_type == "Split" and (len(node.input) < 2 or not node.input[1]) and \
                    not any(a.name == "num_outputs" for a in node.attribute):
                node.attribute.append(helper.make_attribute("num_outputs", len(node.output)))
            elif opset >= 20 and node.op_type == "GridSample":
                for attribute in node.attribute:
                    if attribute.name == "mode" and attribute.s.decode() in _GRID_SAMPLE_MODES_20:
                        attribute.s = _GRID_SAMPLE_MODES_20[attribute.s.decode()].encode()
            nodes.append(node)
        if lifted:
            del graph.node[:]
            graph.node.extend(nodes)
    return model


def _body_nodes(node):
    """The nodes of `node`'s subgraphs (If/Loop/Scan bodies), at any depth."""
    stack = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH] + \
        [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
    while stack:
        graph = stack.pop()
        for inner in graph.node:
            yield inner
            stack.extend(a.g for a in inner.attribute if a.type == onnx.AttributeProto.GRAPH)
            stack.extend(g for a in inner.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs)


def _attr_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    return value


onnx_version = onnx.__version__


def python_op_name(prefix, in_dtypes, out_dtypes):
    """'MXCustom_ff_f': the PyOp type of a signature (two float32 inputs, one float32 output)."""
    try:
        return prefix + "".join(_DTYPE_CODES[np.dtype(t).name] for t in in_dtypes) + "_" + \
            "".join(_DTYPE_CODES[np.dtype(t).name] for t in out_dtypes)
    except KeyError as err:
        raise MXNetError("custom ops do not support dtype %s" % err) from None


def python_op_dtypes(op_type):
    """(input dtype names, output dtype names) of a PyOp type name."""
    codes = {c: n for n, c in _DTYPE_CODES.items()}
    body = op_type.split("_", 1)[1]
    inputs, outputs = body.split("_")
    return [codes[c] for c in inputs], [codes[c] for c in outputs]


def _attribute(node, name):
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.s.decode()
    return ""


def python_grad_key(key, req):
    """The `key` of a custom op's backward node: its forward node's key and, after '|', the req of each argument's
    gradient ('null' where the gradient builder needs none, as MXNet passes to CustomOp.backward)."""
    return "%s|%s" % (key, ",".join(req))


def split_python_grad_key(key):
    """(forward key, req list) of a backward node's key."""
    key, _, req = key.rpartition("|")
    return key, req.split(",")


def aten_python_ops(model):
    """[(op type, key, number of inputs, number of outputs)] of the custom-op placeholders of a training graph."""
    return [(_attribute(n, "operator"), _attribute(n, "overload_name"), len(n.input), len(n.output))
            for n in model.graph.node
            if n.domain == ATEN_DOMAIN and _attribute(n, "operator").startswith((PYTHON_OP_PREFIX,
                                                                                 PYTHON_GRAD_PREFIX))]


def strip_stop_gradients(model):
    """After the gradient build: stop-gradient markers become Identity, custom-op placeholders (forward and the
    backward nodes the builder added) become Python ops again (in place)."""
    uses_python = False
    missing = []
    for node in model.graph.node:
        if node.domain != ATEN_DOMAIN or node.op_type != "ATen":
            continue
        operator = _attribute(node, "operator")
        if operator.startswith((PYTHON_OP_PREFIX, PYTHON_GRAD_PREFIX)):
            key = _attribute(node, "overload_name")
            if operator.startswith(PYTHON_GRAD_PREFIX):
                key = python_grad_key(key, ["write" if name else "null" for name in node.output])
                missing.append(node)
            node.op_type, node.domain = operator, PYTHON_DOMAIN
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("key", key))
            for i, name in enumerate(node.output):
                if not name:        # a gradient the builder did not need (labels): Python ops need every output
                    node.output[i] = "%s_unused%d" % (node.name, i)
            uses_python = True
        else:       # stop-gradient and custom-VJP markers: their first input
            node.op_type, node.domain = "Identity", ""
            del node.attribute[:]
            del node.input[1:]
    _zero_missing_head_gradients(model, missing)
    keep = [o for o in model.opset_import if o.domain not in (ATEN_DOMAIN, PYTHON_DOMAIN)]
    if uses_python:
        keep.append(helper.make_opsetid(PYTHON_DOMAIN, 1))
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def _zero_missing_head_gradients(model, grad_nodes):
    """A custom op's backward takes one head gradient per output (GO(i), which the builders name
    `<output>_grad`), but they define it only for outputs that reach the loss or a head. The others (unused
    outputs, outputs behind a BlockGrad) get zeros of the output's shape here, as MXNet passes zeros for them."""
    if not grad_nodes:
        return
    graph = model.graph
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer} | \
        {name for node in graph.node for name in node.output}
    fills = []
    for node in grad_nodes:
        dtypes = dict(zip(node.input, python_op_dtypes(node.op_type)[0]))
        for name in node.input:
            output = name[:-len("_grad")]
            if name in defined or not name.endswith("_grad") or output not in dtypes:
                continue
            shape = "%s/zero_head/%s" % (node.name, output)
            zero = numpy_helper.from_array(np.zeros((1,), np.dtype(dtypes[output])))
            fills.append(helper.make_node("Shape", [output], [shape], name=shape))
            fills.append(helper.make_node("ConstantOfShape", [shape], [name], name=shape + "/zeros", value=zero))
            defined.add(name)
    if fills:
        nodes = list(graph.node)
        first = min(nodes.index(n) for n in grad_nodes)
        del graph.node[:]
        graph.node.extend(nodes[:first] + fills + nodes[first:])
