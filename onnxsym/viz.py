"""`mx.viz`: network pictures (Graphviz) and layer tables, drawn and printed as MXNet 1.9.1's
python/mxnet/visualization.py does (tests/test_viz.py compares both with MXNet's own output).

`plot_network` returns a `graphviz.Digraph` (the `graphviz` Python package); rendering it to SVG/PNG needs
Graphviz's `dot` program. `print_summary` prints the layer table with output shapes and parameter counts.

MXNet quirks kept on purpose, because they are what MXNet users see:

- plot_network labels only Convolution, FullyConnected, Activation, LeakyReLU, Pooling and Custom (its op_type)
  specially; every other node, SoftmaxOutput and BatchNorm included, is labelled with its name.
- Boxes have a fixed size (node_attrs={"fixedsize": "false"} lets long labels grow them).
- Weight-like variables (`*_weight`, `*_bias`, `*_gamma`, ...) are never declared as nodes: hidden with their edges
  by default, and with hide_weights=False drawn only as the end of their edges (Graphviz's default node).
- An edge from a node with a `num_outputs` attribute shows the shape (and type) of that node's last output.
- print_summary's parameter counts come from the attributes and the previous layers' channel counts (dimension 1),
  not from the weights' shapes: FullyConnected counts (channels + 1) * num_hidden, BatchNorm 2 * channels,
  Embedding input_dim * output_dim, Convolution channels * num_filter / num_group * kernel (+ num_filter), others 0.
  Previous layers are op nodes and the graph's first node; the first node is listed as a layer of its own.

Where MXNet 1.9.1 fails on a valid graph with a KeyError or IndexError (Pooling without pool_type, a multi-output
node without num_outputs on a shape edge, a one-dimensional previous layer in print_summary), onnxsym draws and
prints what MXNet would have meant: pool_type's default, the edge's own output, no channels.
"""
import json
import re
import warnings

from .symbol.node import topo_order
from .symbol.symbol import Symbol

__all__ = ["plot_network", "print_summary"]

_COLORS = ("#8dd3c7", "#fb8072", "#ffffb3", "#bebada", "#80b1d3", "#fdb462", "#b3de69", "#fccde5")
_WEIGHT_SUFFIXES = ("_weight", "_bias", "_beta", "_gamma", "_moving_var", "_moving_mean", "_running_var",
                    "_running_mean")
_DEFAULT_NODE_ATTRS = (("shape", "box"), ("fixedsize", "true"), ("width", "1.3"), ("height", "0.8034"),
                       ("style", "filled"))


def _dims(text):
    """The integers of an attribute string: "(3, 3)" -> ["3", "3"]."""
    return re.findall(r"\d+", text)


def _looks_like_weight(name):
    return name.endswith(_WEIGHT_SUFFIXES)


def _check_symbol(symbol, message):
    if not isinstance(symbol, Symbol):
        raise TypeError(message)


def _internal_values(symbol, method, known, incomplete):
    """Every internal output's inferred shape or type, keyed two ways: by output name as MXNet keys them
    (`fc1_output`, `data`; a repeated name keeps its last value) and by (node position in the JSON, index)."""
    internals = symbol.get_internals()
    _, values, _ = getattr(internals, method)(**known)
    if values is None:
        raise ValueError(incomplete)
    position = {id(node): i for i, node in enumerate(topo_order(symbol.outputs))}
    by_entry = {(position[id(node)], index): value for (node, index), value in zip(internals.outputs, values)}
    return dict(zip(internals.list_outputs(), values)), by_entry


def _edge_value(nodes, entry, values):
    """The shape or type MXNet shows on the edge from input `entry`: a variable's own; an op's `<name>_output`,
    with the last index appended when the op has a `num_outputs` attribute (so every edge from SliceChannel shows
    its last output). Where MXNet 1.9.1 has no such key (KeyError), the entry's own output."""
    by_name, by_entry = values
    node = nodes[entry[0]]
    if node["op"] == "null":
        return by_name[node["name"]]
    key = node["name"] + "_output"
    if "num_outputs" in node.get("attrs", {}):
        key += str(int(node["attrs"]["num_outputs"]) - 1)
    return by_name[key] if key in by_name else by_entry[(entry[0], entry[1])]


def _label_and_color(node):
    """MXNet's label and fill color of a node that is not a weight."""
    op, name, attrs = node["op"], node["name"], node.get("attrs", {})
    if op == "null":
        return name, _COLORS[0]
    if op == "Convolution":
        stride = "x".join(_dims(attrs["stride"])) if "stride" in attrs else "1"
        return "Convolution\n%s/%s, %s" % ("x".join(_dims(attrs["kernel"])), stride, attrs["num_filter"]), _COLORS[1]
    if op == "FullyConnected":
        return "FullyConnected\n%s" % attrs["num_hidden"], _COLORS[1]
    if op == "BatchNorm":
        return name, _COLORS[3]
    if op == "Activation":
        return "Activation\n%s" % attrs["act_type"], _COLORS[2]
    if op == "LeakyReLU":
        return "LeakyReLU\n%s" % attrs.get("act_type", "Leaky"), _COLORS[2]
    if op == "Pooling":
        kernel = "x".join(_dims(attrs["kernel"])) if "kernel" in attrs else "[]"
        stride = "x".join(_dims(attrs["stride"])) if "stride" in attrs else "1"
        return "Pooling\n%s, %s/%s" % (attrs.get("pool_type", "max"), kernel, stride), _COLORS[4]
    if op in ("Concat", "Flatten", "Reshape"):
        return name, _COLORS[5]
    if op == "Softmax":     # MXNet's check; its JSON (and onnxsym's) names the op SoftmaxOutput, so it never matches
        return name, _COLORS[6]
    if op == "Custom":
        return attrs["op_type"], _COLORS[7]
    return name, _COLORS[7]


def plot_network(symbol, title="plot", save_format="pdf", shape=None, dtype=None, node_attrs={},  # noqa: B006
                 hide_weights=True):
    """A graphviz.Digraph of the graph that computes `symbol`, as MXNet draws it.

    Parameters
    ----------
    symbol : Symbol
    title : str
        The digraph's name.
    save_format : str
        The digraph's format (used by render()).
    shape : dict of str to tuple, optional
        Input shapes; each edge is labelled with the shape of the tensor it carries, batch axis left out.
    dtype : dict of str to numpy type, optional
        Input types; each edge label gets "(float32)" etc. appended.
    node_attrs : dict
        Graphviz attributes for the nodes, over MXNet's defaults (box, 1.3 x 0.8034, fixed size, filled).
    hide_weights : bool
        Leave out the `*_weight`, `*_bias`, ... variables and their edges.

    Example
    -------
    >>> net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=10, name="fc1")
    >>> dot = mx.viz.plot_network(net, shape={"data": (1, 20)}, node_attrs={"fixedsize": "false"})
    >>> dot.render("net")   # needs Graphviz's dot program
    """
    try:
        from graphviz import Digraph
    except ImportError as err:
        raise ImportError("Draw network requires graphviz library") from err
    _check_symbol(symbol, "symbol must be a Symbol")
    shapes = _internal_values(symbol, "infer_shape", shape, "Input shape is incomplete") if shape is not None \
        else None
    types = _internal_values(symbol, "infer_type", dtype, "Input type is incomplete") if dtype is not None else None
    nodes = json.loads(symbol.tojson())["nodes"]
    _warn_repeated_names(nodes)
    defaults = dict(_DEFAULT_NODE_ATTRS)
    defaults.update(node_attrs)
    dot = Digraph(name=title, format=save_format)
    hidden = set()
    for node in nodes:
        if node["op"] == "null" and _looks_like_weight(node["name"]):
            if hide_weights:
                hidden.add(node["name"])
            continue
        label, color = _label_and_color(node)
        attrs = dict(defaults)
        if node["op"] == "null":
            attrs["shape"] = "oval"
        attrs["fillcolor"] = color
        dot.node(name=node["name"], label=label, **attrs)
    for node in nodes:
        if node["op"] == "null":
            continue
        inputs = node["inputs"][:1] if node["op"] == "_contrib_BilinearResize2D" else node["inputs"]
        for entry in inputs:
            source = nodes[entry[0]]["name"]
            if source in hidden:
                continue
            label = ""
            if shapes is not None:
                label = "x".join(str(d) for d in _edge_value(nodes, entry, shapes)[1:])
            if types is not None:
                label += "(%s)" % _edge_value(nodes, entry, types).__name__
            dot.edge(tail_name=node["name"], head_name=source, dir="back", arrowtail="open", label=label)
    return dot


def _warn_repeated_names(nodes):
    seen, repeated = set(), []
    for node in nodes:
        if node["name"] in seen and node["name"] not in repeated:
            repeated.append(node["name"])
        seen.add(node["name"])
    if repeated:
        warnings.warn("There are multiple variables with the same name in your graph, this may result in cyclic "
                      "graph. Repeated names: " + ",".join(repeated), RuntimeWarning, stacklevel=3)


def _param_count(node, channels, shapes):
    """MXNet's parameter count of a layer from its attributes and its inputs' channel count."""
    op, attrs = node["op"], node.get("attrs", {})
    if op == "Convolution":
        count = channels * int(attrs["num_filter"]) // int(attrs.get("num_group", "1"))
        for k in _dims(attrs["kernel"]):
            count *= int(k)
        return count if attrs.get("no_bias") == "True" else count + int(attrs["num_filter"])
    if op == "FullyConnected":
        return (channels + (attrs.get("no_bias") != "True")) * int(attrs["num_hidden"])
    if op == "BatchNorm" and shapes is not None:
        return int(shapes[node["name"] + "_output"][1]) * 2
    if op == "Embedding":
        return int(attrs["input_dim"]) * int(attrs["output_dim"])
    return 0


def print_summary(symbol, shape=None, line_length=120, positions=[.44, .64, .74, 1.]):  # noqa: B006
    """Print MXNet's layer table: "Layer (type)", "Output Shape", "Param #", "Previous Layer".

    Parameters
    ----------
    symbol : Symbol
    shape : dict of str to tuple, optional
        Input shapes; without them the table has no output shapes and counts only what the attributes give.
    line_length : int
        Width of the table.
    positions : list of float or int
        Where each column ends: fractions of line_length, or characters when the last one is over 1.

    Example
    -------
    >>> net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=10, name="fc1")
    >>> mx.viz.print_summary(net, shape={"data": (1, 20)})
    """
    _check_symbol(symbol, "symbol must be Symbol")
    shapes = _internal_values(symbol, "infer_shape", shape, "Input shape is incomplete")[0] if shape is not None \
        else None
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    # MXNet takes the set of the first head's [node, index, version] numbers as "the heads": node 0 (version 0)
    # is always in it, so the first node is a layer and a previous layer, while other variables are neither.
    heads = set(graph["heads"][0])
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]

    def print_row(fields):
        line = ""
        for i, field in enumerate(fields):
            line = (line + str(field))[:positions[i]]
            line += " " * (positions[i] - len(line))
        print(line)

    def shape_of(index):
        """The output shape MXNet shows for node `index` (no batch axis), or () when it has none."""
        node = nodes[index]
        if shapes is None or (node["op"] == "null" and index not in heads):
            return ()
        key = node["name"] if node["op"] == "null" else node["name"] + "_output"
        return tuple(shapes.get(key, (None,))[1:])

    print("_" * line_length)
    print_row(["Layer (type)", "Output Shape", "Param #", "Previous Layer"])
    print("=" * line_length)
    total = 0
    for i, node in enumerate(nodes):
        if node["op"] == "null" and i > 0:
            continue
        previous, channels = [], 0
        if node["op"] != "null":
            for entry in node["inputs"]:
                if nodes[entry[0]]["op"] != "null" or entry[0] in heads:
                    previous.append(nodes[entry[0]]["name"])
                    channels += int((shape_of(entry[0]) or (0,))[0])   # MXNet 1.9.1: IndexError on ()
        params = _param_count(node, channels, shapes)
        total += params
        print_row(["%s(%s)" % (node["name"], node["op"]), "x".join(str(d) for d in shape_of(i)), params,
                   previous[0] if previous else ""])
        for name in previous[1:]:
            print_row(["", "", "", name])
        print(("=" if i == len(nodes) - 1 else "_") * line_length)
    print("Total params: %d" % total)
    print("_" * line_length)
