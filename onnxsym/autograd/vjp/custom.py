"""VJP of the lowering's ATen placeholders: custom Python ops (their Python backward as one node) and custom-VJP
markers (GraphBuilder.custom_vjp: the rule they name)."""
from onnx import helper

from ...custom.kernels import get_kernel
from ...lower.builder import ATEN_DOMAIN, CUSTOM_VJP_OPERATOR, PYTHON_GRAD_PREFIX, PYTHON_OP_PREFIX, \
    python_op_dtypes, python_op_name
from .registry import custom_rule_for, rule


def _string(node, name):
    return next((a.s.decode() for a in node.attribute if a.name == name), "")


@rule("ATen", domain=ATEN_DOMAIN)
def _python_op(g, node, out_grads):
    """The backward node takes (head gradients, arguments, aux states as the forward wrote them, outputs) and gives
    the arguments' gradients (MXNet's CustomOp.backward sees the arrays the forward wrote); a head gradient no
    value reaches is zeros (MXNet passes zeros), an argument that needs no gradient gets an empty output (req
    'null' when the placeholder becomes a Python op)."""
    op_type, key = _string(node, "operator"), _string(node, "overload_name")
    if op_type == CUSTOM_VJP_OPERATOR:
        fn, params = custom_rule_for(key)
        return fn(g, node, out_grads, params)
    if not op_type.startswith(PYTHON_OP_PREFIX):
        raise NotImplementedError("ATen operator %s" % op_type)
    kernel = get_kernel(key)
    n_out, n_args = kernel.num_outputs, kernel.num_args
    in_names, out_names = python_op_dtypes(op_type)
    heads = [grad if grad is not None else g.zeros_like(node.output[i]) for i, grad in enumerate(out_grads[:n_out])]
    inputs = heads + list(node.input[:n_args]) + list(node.output[n_out:]) + list(node.output[:n_out])
    grad_type = python_op_name(PYTHON_GRAD_PREFIX, out_names[:n_out] + in_names + out_names[:n_out],
                               in_names[:n_args])
    outputs = [g.fresh("%s/grad%d" % (g.scope, i)) if x in g.active else "" for i, x in enumerate(node.input[:n_args])]
    g.domains.setdefault(ATEN_DOMAIN, 1)
    g.nodes.append(helper.make_node("ATen", inputs, outputs, name=g.fresh(g.scope + "/python_backward"),
                                    domain=ATEN_DOMAIN, operator=grad_type, overload_name=key))
    for name, x in zip(outputs, node.input):
        if name:
            g.like(name, x)
    return [name or None for name in outputs]
