"""Graph nodes: plain data, no onnx.

A node is a variable (`op is None`) or an operator application: `(op, name, attrs, inputs)` where `op` is a parsed
OpDef, `attrs` the MXNet attribute strings (op parameters plus user/hidden attributes such as `__lr_mult__`) and
`inputs` a tuple of `(node, output_index)` entries.
"""

__all__ = ["Node", "topo_order"]


class Node:
    __slots__ = ("op", "name", "attrs", "inputs", "versions", "version", "__weakref__")

    def __init__(self, op, name, attrs=None, inputs=(), versions=None):
        self.op = op
        self.name = name
        self.attrs = dict(attrs or {})
        self.inputs = tuple(inputs)
        # nnvm entry versions: a variable's version grows each time an op mutates it (auxiliary states); they
        # only appear in the JSON, where MXNet writes them as the third number of an input entry.
        self.versions = tuple(versions) if versions is not None else (0,) * len(self.inputs)
        self.version = 0

    @property
    def is_variable(self):
        return self.op is None

    @property
    def num_outputs(self):
        return 1 if self.op is None else self.op.count_outputs()

    def output_name(self, index):
        """MXNet's output name: the variable's own name, else `{node}_{output}`."""
        if self.op is None:
            return self.name
        return "%s_%s" % (self.name, self.op.output_names()[index])

    def aux_flags(self):
        """One bool per input: True where the input is an auxiliary state (mutated by the op)."""
        if self.op is None:
            return ()
        aux = set(self.op.aux_names())
        return tuple(name in aux for name in self.op.input_names())

    def __repr__(self):
        return "<Node %s %s>" % ("null" if self.op is None else self.op.op_name, self.name)


def topo_order(heads):
    """Nodes reachable from `heads` (node, index) entries in nnvm's DFS post-order (inputs in order)."""
    order, seen = [], set()
    for head, _ in heads:
        if id(head) in seen:
            continue
        stack = [(head, iter(head.inputs))]
        seen.add(id(head))
        while stack:
            node, children = stack[-1]
            for child, _ in children:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order
