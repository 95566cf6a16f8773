"""`_onnx`: an ONNX node kept as it is, for imported models whose ops have no MXNet counterpart.

The node's type, domain and attributes travel as attributes of the op (the attributes as a base64 NodeProto:
protobuf, no pickle); its output shapes and dtypes come from ONNX shape inference at import. It lowers back to the
same ONNX node, so an imported graph runs, exports and trains (gradients from onnxsym's VJP rules, autograd/vjp/).
"""
import base64
import json

import numpy as np

from ..base import MXNetError
from .params import param
from .onnx_training import rule_for
from .registry import OpDef, register

__all__ = ["ONNXNode", "tensor_protos"]

# onnxruntime-training builds these gradients only with optional outputs declared (ORT_NOTES.md §1); the ops whose
# gradient it lacks or gets wrong have a training rule in ops/onnx_training.py.
TRAINING_OUTPUTS = {"Dropout": 2}


@register(name="_onnx")
class ONNXNode(OpDef):
    """An ONNX operator applied as is (imported models)."""
    op_type: str = param(doc="ONNX operator type.")
    domain: str = param("", doc="ONNX domain ('' = ai.onnx).")
    node_attributes: str = param("", doc="The node's attributes, as a base64 serialized NodeProto.")
    input_slots: str = param("", doc="One character per ONNX input: '1' given, '0' left empty (optional).")
    output_count: int = param(1, min=1, doc="Number of outputs.")
    out_shapes: str = param("", doc="JSON list of the output shapes found at import.")
    out_types: str = param("", doc="JSON list of the output dtype names found at import.")
    opset: int = param(17, min=1, doc="The ai.onnx opset the node comes from (a graph holding it declares it).")
    domain_opset: int = param(0, min=0, doc="The opset of the node's own domain (ai.onnx.ml, ...) in the model it "
                                            "comes from (a graph holding it declares it; 0: version 1).")
    captured: str = param("", doc="JSON list of the outer values its subgraphs (If/Loop/Scan bodies) read, by their "
                                  "ONNX names: extra inputs after the node's own.")

    def input_names(self):
        own = tuple("input%d" % i for i, flag in enumerate(self.input_slots) if flag == "1")
        return own + tuple("outer%d" % i for i in range(len(json.loads(self.captured)) if self.captured else 0))

    def output_names(self):
        return ("output",) if self.output_count == 1 else tuple("output%d" % i for i in range(self.output_count))

    def infer_shape(self, *in_shapes):
        """The output shapes import recorded; a shape that depends on data stays unknown (None, or None
        dimensions): ONNX Runtime decides it when the graph runs (lower/to_onnx.dynamic_entries)."""
        shapes = json.loads(self.out_shapes) if self.out_shapes else []
        if len(shapes) != self.output_count:
            shapes = [None] * self.output_count
        return list(in_shapes), [None if s is None or None in s or 0 in s else tuple(s) for s in shapes]

    def infer_type(self, *in_types):
        types = json.loads(self.out_types) if self.out_types else []
        if len(types) != self.output_count:
            return None
        return list(in_types), [np.dtype(t) for t in types]

    def attributes(self, renamed=None):
        """The node's AttributeProtos; `renamed` {ONNX name: lowered name}: the outer values subgraph bodies read."""
        attributes = self._attributes()
        if renamed:
            from onnx import AttributeProto
            stack = [a.g for a in attributes if a.type == AttributeProto.GRAPH] + \
                [g for a in attributes if a.type == AttributeProto.GRAPHS for g in a.graphs]
            while stack:
                graph = stack.pop()
                for node in graph.node:
                    for i, name in enumerate(node.input):
                        if name in renamed:
                            node.input[i] = renamed[name]
                    stack.extend(a.g for a in node.attribute if a.type == AttributeProto.GRAPH)
                    stack.extend(g for a in node.attribute if a.type == AttributeProto.GRAPHS for g in a.graphs)
                for output in graph.output:         # a body output may be an outer value itself
                    if output.name in renamed:
                        identity = graph.node.add()
                        identity.op_type, identity.name = "Identity", output.name + "/outer"
                        identity.input.append(renamed[output.name])
                        identity.output.append(output.name + "/outer")
                        output.name = output.name + "/outer"
        return attributes

    def _attributes(self):
        if not self.node_attributes:
            return []
        from onnx import NodeProto
        node = NodeProto()
        try:
            node.ParseFromString(base64.b64decode(self.node_attributes))
        except Exception as err:  # binascii.Error, protobuf's DecodeError
            raise MXNetError("ONNX node %s: node_attributes is not a base64 NodeProto (%s)" % (self.op_type, err)) \
                from None
        # A symbol file has no folder of its own: ONNX Runtime would resolve external data against the working
        # directory, so any file the process can read would become a tensor (import inlines the data it allows).
        if any(t.external_data or t.data_location == t.EXTERNAL for t in tensor_protos(node)):
            raise MXNetError("ONNX node %s: an attribute tensor refers to external data, which a symbol may not"
                             % self.op_type)
        return list(node.attribute)

    def lower(self, g, *inputs):
        if not self.domain and self.opset > g.domains[""]:
            g.domains[""] = self.opset      # (older-form nodes are rewritten for it: builder.lift_to_opset)
        elif self.domain and self.domain_opset > g.domains.get(self.domain, 0):
            g.domains[self.domain] = self.domain_opset
        values = iter(inputs)
        ordered = [next(values) if flag == "1" else "" for flag in self.input_slots]
        # the bodies read outer values by their ONNX names: they get the names lowering gave them
        renamed = dict(zip(json.loads(self.captured), values)) if self.captured else None
        rule = None if self.domain else rule_for(self.op_type, g.is_train, [g.dtype(v) for v in inputs],
                                                         g.gradients)
        if rule is not None:
            outputs = rule(g, _NodeView(self), [v or None for v in ordered])
            outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
            return outputs[0] if self.output_count == 1 else tuple(outputs[:self.output_count])
        return self.emit(g, ordered, renamed=renamed)

    def emit(self, g, ordered, count=None, renamed=None):
        """The ONNX node itself on `ordered` inputs ('' = absent): its outputs, or all `count` of them."""
        if count is not None:
            return g.emit_with_attributes(self.op_type, ordered, self.attributes(renamed), count, self.domain)
        count = self.output_count
        if g.is_train and not self.domain:
            count = max(count, TRAINING_OUTPUTS.get(self.op_type, count))
        outputs = g.emit_with_attributes(self.op_type, ordered, self.attributes(renamed), count, self.domain)
        if count == self.output_count:
            return outputs
        return outputs[0] if self.output_count == 1 else outputs[:self.output_count]


def tensor_protos(message):
    """Every TensorProto inside an ONNX protobuf message (a model, graph, function, node or attribute), at any
    depth: initializers, sparse tensors' values and indices, tensor attributes, subgraphs (If/Loop/Scan),
    function bodies, training graphs. Generic over the message fields, so no place is forgotten; iterative, so
    deep nesting cannot exhaust the Python stack."""
    from onnx import TensorProto
    stack = [message]
    while stack:
        message = stack.pop()
        if isinstance(message, TensorProto):
            yield message
            continue
        for field, value in message.ListFields():
            if field.message_type is not None:
                stack.extend(value if field.is_repeated else [value])


class _NodeView:
    """What a training rule (ops/onnx_training.py) reads of an `_onnx` node: op type, attributes as Python
    values, static output shapes and dtypes, and `emit` for the node itself."""

    def __init__(self, op):
        from onnx import helper
        self.op_type = op.op_type
        self.raw = op.attributes()
        self.attrs = {a.name: helper.get_attribute_value(a) for a in self.raw}
        self.attrs = {k: _text(v) for k, v in self.attrs.items()}
        self.out_shapes = json.loads(op.out_shapes) if op.out_shapes else []
        self.out_types = [np.dtype(t) for t in json.loads(op.out_types)] if op.out_types else []
        self.output_count = op.output_count
        self._op = op

    def emit(self, g, inputs, count=None):
        """The original node on `inputs` (None = absent); a tuple of all outputs when count > 1."""
        return self._op.emit(g, ["" if v is None else v for v in inputs], count)


def _text(value):
    """Attribute values with bytes (ONNX strings) decoded."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value
