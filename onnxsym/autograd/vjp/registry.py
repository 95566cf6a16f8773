"""VJP rules by ONNX op type: `rule(g, node, out_grads) -> [input gradient or None, ...]`.

`g` is the autograd GradientBuilder (a GraphBuilder: `g.Mul(a, b)`, `g.scalar(v, dtype)`, `g.shape(v)`,
`g.dtype(v)`, `g.attrs(node)`, `g.unbroadcast(grad, input)`), `node` the forward NodeProto (its inputs and outputs
are forward values a rule may read), `out_grads` one gradient value per output (None where no gradient flows).
The result lists one gradient per input, in the input's shape and dtype (None: no gradient; shorter lists leave the
last inputs without)."""

_RULES = {}

# Scope of the nodes that replace an operator by its ONNX function body (autograd/expand.py): rules that must be
# robust where the fused operator is but the body is not (Attention's fully masked rows) check for it.
FUNCTION_BODY_SCOPE = "/expanded/"

__all__ = ["rule", "rule_for", "no_gradient", "registered", "FUNCTION_BODY_SCOPE"]


def rule(*op_types, domain=""):
    def register(fn):
        for op_type in op_types:
            _RULES[(domain, op_type)] = fn
        return fn
    return register


_CUSTOM = {}       # custom-VJP rule name -> fn(g, node, out_grads, params)


def custom_rule(name):
    """Register the VJP of GraphBuilder.custom_vjp markers naming `name`: fn(g, node, out_grads, params) returns
    one gradient (or None) per marker input, the marked value first (None: nothing flows through the ops that
    computed it)."""
    def register(fn):
        _CUSTOM[name] = fn
        return fn
    return register


def custom_rule_for(key):
    """(rule, params) of a custom-VJP marker's overload_name 'name:1,2,3'."""
    name, _, params = key.partition(":")
    return _CUSTOM[name], [int(p) for p in params.split(",") if p]


def rule_for(node):
    return _RULES.get((node.domain or "", node.op_type))


def registered():
    return sorted(_RULES)


def no_gradient(g, node, out_grads):
    """Ops whose outputs are piecewise constant or not differentiable values (indices, booleans, shapes)."""
    return []
