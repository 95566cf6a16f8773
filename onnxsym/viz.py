"""`mx.viz`: network pictures (Graphviz) and layer tables, laid out as MXNet 1.9.1's python/mxnet/visualization.py.

`plot_network` returns a `graphviz.Digraph` (the `graphviz` Python package); rendering it to SVG/PNG needs
Graphviz's `dot` program. `print_summary` prints the layer table with output shapes and parameter counts.
"""
import json
import math

from .base import MXNetError

__all__ = ["plot_network", "print_summary"]

_COLORS = ("#8dd3c7", "#fb8072", "#ffffb3", "#bebada", "#80b1d3", "#fdb462", "#b3de69", "#fccde5")


def _str2tuple(text):
    return [v.strip() for v in text.strip("()[] ").split(",") if v.strip()]


def _label_and_color(op, name, attrs):
    """MXNet's node label and fill color for an op node."""
    if op == "null":
        return name, _COLORS[0]
    if op == "Convolution":
        kernel = "x".join(_str2tuple(attrs.get("kernel", "()")))
        stride = "x".join(_str2tuple(attrs["stride"])) if "stride" in attrs else "1"
        return "Convolution\n%s/%s, %s" % (kernel, stride, attrs.get("num_filter", "")), _COLORS[1]
    if op == "FullyConnected":
        return "FullyConnected\n%s" % attrs.get("num_hidden", ""), _COLORS[1]
    if op == "BatchNorm":
        return op, _COLORS[3]
    if op in ("Activation", "LeakyReLU"):
        return "%s\n%s" % (op, attrs.get("act_type", "leaky" if op == "LeakyReLU" else "")), _COLORS[2]
    if op == "Pooling":
        if attrs.get("global_pool", "False") in ("True", "true", "1"):
            return "Pooling\n%s, global" % attrs.get("pool_type", "max"), _COLORS[4]
        kernel = "x".join(_str2tuple(attrs.get("kernel", "()")))
        stride = "x".join(_str2tuple(attrs["stride"])) if "stride" in attrs else "1"
        return "Pooling\n%s, %s/%s" % (attrs.get("pool_type", "max"), kernel, stride), _COLORS[4]
    if op in ("Concat", "Flatten", "Reshape"):
        return op, _COLORS[5]
    if op == "Softmax" or op == "SoftmaxOutput":
        return op, _COLORS[6]
    return op, _COLORS[7]


def _is_weight(name):
    return name.endswith(("_weight", "_bias", "_beta", "_gamma", "_moving_var", "_moving_mean",
                          "_running_var", "_running_mean"))


def plot_network(symbol, title="plot", save_format="pdf", shape=None, dtype=None, node_attrs=None,
                 hide_weights=True):
    """A graphviz.Digraph of `symbol`: one box per op (MXNet's labels and colors), input shapes on the edges
    when `shape` ({input name: shape}) is given; parameters hidden unless hide_weights=False."""
    try:
        from graphviz import Digraph
    except ImportError as err:
        raise ImportError("Draw network requires graphviz library: pip install graphviz") from err
    from .symbol.symbol import Symbol
    if not isinstance(symbol, Symbol):
        raise TypeError("symbol must be a Symbol")
    shape_dict = _entry_shapes(symbol, shape) if shape is not None else None
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    heads = {h[0] for h in graph["heads"]}
    # MXNet fixes the box size; a minimum size instead keeps long labels (elemwise_add, softmax_label) inside
    node_attr = {"shape": "box", "fixedsize": "false", "width": "1.3", "height": "0.8034", "style": "filled"}
    node_attr.update(node_attrs or {})
    dot = Digraph(name=title, format=save_format)
    hidden = set()
    for i, node in enumerate(nodes):
        op, name = node["op"], node["name"]
        attrs = node.get("attrs", {})
        if op == "null" and i not in heads and (hide_weights and _is_weight(name)):
            hidden.add(i)
            continue
        label, color = _label_and_color(op, name, attrs)
        attributes = dict(node_attr)
        attributes["fillcolor"] = color
        if op == "null":
            attributes["shape"] = "oval"
        dot.node(name=name, label=label, **attributes)
    for i, node in enumerate(nodes):
        if node["op"] == "null" or i in hidden:
            continue
        for item in node["inputs"]:
            source = nodes[item[0]]
            if item[0] in hidden:
                continue
            attributes = {"dir": "back", "arrowtail": "open"}
            if shape_dict is not None and shape_dict.get((source["name"], item[1])):
                attributes["label"] = "x".join(str(d) for d in shape_dict[(source["name"], item[1])][1:]) or "1"
            dot.edge(tail_name=node["name"], head_name=source["name"], **attributes)
    return dot


def _entry_shapes(symbol, shape):
    """{(node name, output index): shape} of every output in the graph, from the given input shapes."""
    internals = symbol.get_internals()
    _, out_shapes, _ = internals.infer_shape_partial(**shape)
    if out_shapes is None:
        raise MXNetError("Input shape is incomplete")
    return {(node.name, index): tuple(s) for (node, index), s in zip(internals.outputs, out_shapes)}


def print_summary(symbol, shape=None, line_length=120, positions=(.44, .64, .74, 1.)):
    """Print MXNet's layer table: layer (type), output shape, parameter count, previous layers."""
    from .symbol.symbol import Symbol
    if not isinstance(symbol, Symbol):
        raise TypeError("symbol must be Symbol")
    shape_dict = _entry_shapes(symbol, shape) if shape is not None else {}
    arg_shapes = {}
    if shape is not None:
        args, _, auxs = symbol.infer_shape_partial(**shape)
        arg_shapes = dict(zip(symbol.list_arguments() + symbol.list_auxiliary_states(), list(args) + list(auxs)))
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    positions = [int(line_length * p) for p in positions]
    header = ["Layer (type)", "Output Shape", "Param #", "Previous Layer"]

    def print_row(fields):
        line = ""
        for i, field in enumerate(fields):
            line += str(field)
            line = line[:positions[i]]
            line += " " * (positions[i] - len(line))
        print(line)

    print("_" * line_length)
    print_row(header)
    print("=" * line_length)
    total = 0
    for i, node in enumerate(nodes):
        if node["op"] == "null":
            continue
        previous = [nodes[item[0]]["name"] for item in node["inputs"] if nodes[item[0]]["op"] != "null"
                    or not _is_weight(nodes[item[0]]["name"])]
        params = sum(int(math.prod(arg_shapes.get(nodes[item[0]]["name"]) or ()))
                     for item in node["inputs"] if nodes[item[0]]["op"] == "null"
                     and _is_weight(nodes[item[0]]["name"]) and arg_shapes.get(nodes[item[0]]["name"]))
        total += params
        out_shape = shape_dict.get((node["name"], 0), ())
        fields = ["%s(%s)" % (node["name"], node["op"]), "x".join(str(d) for d in out_shape[1:]) if out_shape
                  else "", params, previous[0] if previous else ""]
        print_row(fields)
        for extra in previous[1:]:
            print_row(["", "", "", extra])
        print("_" * line_length)
    print("Total params: %d" % total)
    print("_" * line_length)
