"""The random stream behind ONNX Runtime's sampling nodes, reseeded by `mx.random.seed`.

ONNX Runtime seeds a RandomUniform / RandomNormal / Multinomial kernel from the node's `seed` attribute when its
session is created and then advances it run after run. Nodes onnxsym lowers carry no seed; `seeded_model` gives
each of them the next seed of this stream when a session is made, and marks the session with the seed epoch. After
`mx.random.seed(n)` the epoch changes: whoever holds a session that samples (`is_stale`) makes a new one, which
starts again from the stream of `n`. So the same seed and the same sequence of calls give the same draws, in an
imperative call or a bound executor, and two sessions never share a stream.
"""
import numpy as np
import onnx

__all__ = ["seed", "seeded_model", "is_stale", "mark", "has_sampling"]

SAMPLING_OPS = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Multinomial",
                          "Bernoulli", "Dropout"})
_SEED_LIMIT = 2 ** 24           # a float32 seed attribute holds integers below 2^24 exactly
_STATE = {"epoch": 0, "stream": np.random.RandomState(0)}


def seed(seed_state):
    """Restart the stream from `seed_state` (an int); sessions made before it are stale."""
    _STATE["stream"] = np.random.RandomState(int(seed_state) % (2 ** 32))
    _STATE["epoch"] += 1


def _unseeded(graph):
    """The sampling nodes without a seed, in `graph` and its subgraphs (Loop bodies)."""
    found = []
    for node in graph.node:
        if node.op_type in SAMPLING_OPS and node.domain in ("", "ai.onnx") and \
                not any(a.name == "seed" for a in node.attribute):
            found.append(node)
        for attribute in node.attribute:
            for sub in list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else []):
                found.extend(_unseeded(sub))
    return found


def has_sampling(model):
    """Whether `model` has sampling nodes without a seed (each run draws other values)."""
    return bool(_unseeded(model.graph))


def seeded_model(model):
    """(model, epoch): a copy of `model` whose unseeded sampling nodes have seeds from the stream, and the epoch
    they belong to; (model, None) when it samples nothing. Nodes that came with a seed (imported files) keep it."""
    if not _unseeded(model.graph):
        return model, None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in _unseeded(copy.graph):
        seed = int(_STATE["stream"].randint(_SEED_LIMIT))
        # (Dropout's seed attribute is an int, the Random* and Multinomial ones a float)
        node.attribute.append(onnx.helper.make_attribute("seed", seed if node.op_type == "Dropout" else float(seed)))
    return copy, _STATE["epoch"]


def mark(session, epoch):
    """Record on `session` the seed epoch of its sampling nodes (None: it samples nothing)."""
    session.onnxsym_seed_epoch = epoch
    return session


def is_stale(session):
    """Whether `session` samples with seeds from before the last `mx.random.seed`."""
    epoch = getattr(session, "onnxsym_seed_epoch", None)
    return epoch is not None and epoch != _STATE["epoch"]
