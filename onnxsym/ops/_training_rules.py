"""The registry of training lowerings of imported ONNX nodes (onnx_training.py says what they are and why), in a
module of its own so that the rule families (onnx_training.py, onnx_training_sampling.py,
onnx_training_sequence.py) share it without importing one another."""
import numpy as np

__all__ = ["rule_for"]

_RULES = {}          # op type -> rule
_FLOAT64_RULES = set()   # op types whose rule also lowers float64 inference graphs (ORT has no float64 CPU kernel)
_OWN_AD_RULES = set()    # op types whose rule onnxsym's own AD uses too (no VJP rule of its own, or a faster graph)


def _rule(*op_types, float64=False, own_ad=False):
    def register(fn):
        for op_type in op_types:
            _RULES[op_type] = fn
            if float64:
                _FLOAT64_RULES.add(op_type)
            if own_ad:
                _OWN_AD_RULES.add(op_type)
        return fn
    return register


def rule_for(op_type, training, dtypes, gradients="onnxsym"):
    """The rule lowering an ai.onnx node of `op_type` with input `dtypes`, or None for the node as it is.
    `gradients`: who differentiates the training graph, 'onnxsym' (its own VJP rules, autograd/vjp/, cover the
    node itself for most ops) or 'ort-training' (every rule here)."""
    if training and (gradients == "ort-training" or op_type in _OWN_AD_RULES):
        return _RULES.get(op_type)
    if op_type in _FLOAT64_RULES and any(np.dtype(d) == np.float64 for d in dtypes):
        return _RULES.get(op_type)
    return None


def _zero(g, like):
    return g.scalar(0, g.dtype(like))


def _one(g, like):
    return g.scalar(1, g.dtype(like))


def _mask(g, condition, like):
    return g.cast(condition, g.dtype(like))
