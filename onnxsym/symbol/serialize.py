"""MXNet's symbol JSON format (nnvm `saveload_json.cc`), both ways, plus `debug_str`.

Files written by MXNet 1.x (also the older `attr`/`param` keys, 2-element input entries and pre-0.9 graphs
without auxiliary variables) load here; files written here load in MXNet 1.9.1.
"""
import json
import os

from .._files import atomic_save, atomic_write  # noqa: F401 (atomic_write: re-exported for callers)
from ..base import MXNetError
from .node import HIDDEN_KEYS, Node, topo_order

__all__ = ["to_json", "load_json", "save", "load", "debug_str", "MXNET_VERSION", "atomic_write"]

MXNET_VERSION = 10901


def to_json(symbol):
    """MXNet's JSON text for `symbol`, laid out byte for byte as MXNet 1.9.1's dmlc writer does."""
    nodes = topo_order(symbol.outputs)
    index = {id(n): i for i, n in enumerate(nodes)}
    records, row_ptr = [], [0]
    for node in nodes:
        fields = ['"op": %s' % _q("null" if node.is_variable else node.op.op_name), '"name": %s' % _q(node.name)]
        if node.attrs:
            fields.append('"attrs": %s' % _object(node.attrs, 6))
        entries = [[index[id(src)], idx, version] for (src, idx), version in zip(node.inputs, node.versions)]
        fields.append('"inputs": %s' % _entries(entries, 6))
        records.append("    {\n" + ", \n".join("      " + f for f in fields) + "\n    }")
        row_ptr.append(row_ptr[-1] + node.num_outputs)
    arg_nodes = [i for i, n in enumerate(nodes) if n.is_variable]
    heads = [[index[id(n)], i, 0] for n, i in symbol.outputs]
    return ("{\n" + '  "nodes": [\n' + ", \n".join(records) + "\n  ], \n"
            + '  "arg_nodes": %s, \n' % _ints(arg_nodes)
            + '  "node_row_ptr": %s, \n' % _ints(row_ptr)
            + '  "heads": %s, \n' % _entries(heads)
            + '  "attrs": {"mxnet_version": ["int", %d]}\n}' % MXNET_VERSION)


def _q(text):
    return json.dumps(str(text))


def _list(items, indent):
    """dmlc's JSON writer puts lists of more than 10 items one item per line."""
    if len(items) <= 10:
        return "[" + ", ".join(items) + "]"
    pad = " " * (indent + 2)
    return "[\n" + ", \n".join(pad + item for item in items) + "\n" + " " * indent + "]"


def _ints(values, indent=2):
    return _list([str(v) for v in values], indent)


def _entries(entries, indent=2):
    return _list(["[%d, %d, %d]" % tuple(e) for e in entries], indent)


def _object(attrs, indent):
    items = ["%s: %s" % (_q(k), _q(attrs[k])) for k in sorted(attrs)]
    if len(items) == 1:
        return "{" + items[0] + "}"
    pad = " " * (indent + 2)
    return "{\n" + ", \n".join(pad + item for item in items) + "\n" + " " * indent + "}"


def _version(graph):
    value = graph.get("attrs", {}).get("mxnet_version")
    if isinstance(value, list) and len(value) == 2:
        return int(value[1])
    return 800    # files without a version are MXNet 0.8.0


def _node_attrs(record, version):
    attrs = {}
    for key in ("param", "attr", "attrs"):
        value = record.get(key) or {}
        if not isinstance(value, dict):
            raise MXNetError("node '%s': '%s' must be an object" % (record.get("name"), key))
        attrs.update({str(k): str(v) for k, v in value.items()})
    if version < MXNET_VERSION:
        for key in HIDDEN_KEYS:     # UpgradeJSON_FixParsing: hidden keys move to __key__
            if key in attrs:
                attrs.setdefault("__%s__" % key, attrs.pop(key))
    return attrs


def _move_input_multipliers(attrs, input_names, inputs):
    """Old files put `weight_lr_mult` on the op; MXNet moves it to `__lr_mult__` of the `weight` input."""
    for key in [k for k in attrs if k.endswith(("_lr_mult", "_wd_mult")) and not k.startswith("__")]:
        prefix, kind = key[: -len("_lr_mult")], key[-len("lr_mult"):]
        if prefix in input_names:
            src = inputs[input_names.index(prefix)][0]
            if src.is_variable:
                src.attrs["__%s__" % kind] = attrs.pop(key)


def load_json(json_str):
    """A Symbol from MXNet's JSON text. Raises MXNetError naming the node on an unknown op or bad entry."""
    from ..ops.registry import get_op
    from .symbol import Symbol
    try:
        graph = json.loads(json_str)
    except (ValueError, TypeError) as err:
        raise MXNetError("Invalid symbol JSON: %s" % err) from None
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise MXNetError("Invalid symbol JSON: expected an object with a 'nodes' list")
    version = _version(graph)
    nodes = []
    for nid, record in enumerate(graph["nodes"]):
        if not isinstance(record, dict) or "op" not in record or "name" not in record:
            raise MXNetError("Invalid symbol JSON: node %d needs 'op' and 'name'" % nid)
        name, attrs = str(record["name"]), _node_attrs(record, version)
        inputs, versions = [], []
        for entry in record.get("inputs", []):
            if not isinstance(entry, list) or len(entry) < 2 or not 0 <= entry[0] < nid:
                raise MXNetError("Invalid symbol JSON: node '%s' has a bad input entry %r" % (name, entry))
            src = nodes[entry[0]]
            if not 0 <= entry[1] < src.num_outputs:
                raise MXNetError("Invalid symbol JSON: node '%s' reads output %d of '%s', which has %d outputs"
                                 % (name, entry[1], src.name, src.num_outputs))
            inputs.append((src, int(entry[1])))
            versions.append(int(entry[2]) if len(entry) > 2 else 0)
            src.version = max(src.version, versions[-1])
        if record["op"] == "null":
            nodes.append(Node(None, name, attrs))
            continue
        opcls = get_op(record["op"])
        op = opcls.from_attrs(attrs, node_name=name, strict=False)
        expected = op.input_names()
        if len(inputs) < len(expected) and version < 900:
            # Before 0.9 auxiliary states were not stored: add them as variables `{node}_{input}`, which get the
            # op's attributes as any auto-created input does.
            for input_name in expected[len(inputs):]:
                var_attrs = dict(attrs)
                var_attrs.update(op.input_attrs(input_name))
                inputs.append((Node(None, "%s_%s" % (name, input_name), var_attrs), 0))
                versions.append(0)
        if version < MXNET_VERSION:
            _move_input_multipliers(attrs, expected, inputs)
        if len(inputs) != len(expected):
            raise MXNetError("Invalid symbol JSON: node '%s' (%s) has %d inputs, expected %d (%s)"
                             % (name, opcls.op_name, len(inputs), len(expected), ", ".join(expected)))
        nodes.append(Node(op, name, attrs, inputs, versions))
    heads = graph.get("heads")
    if not heads:
        raise MXNetError("Invalid symbol JSON: no 'heads'")
    outputs = []
    for entry in heads:
        if not isinstance(entry, list) or not 0 <= entry[0] < len(nodes):
            raise MXNetError("Invalid symbol JSON: bad head entry %r" % (entry,))
        outputs.append((nodes[entry[0]], int(entry[1])))
    return Symbol(outputs)


def save(symbol, fname):
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname must be a string")
    atomic_save(fname, symbol.tojson(), mode="w")


def load(fname):
    """A Symbol from an MXNet `-symbol.json` file, or from an `.onnx` model (as mx.onnx.import_model gives it; its
    parameters come from import_model)."""
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname must be a string")
    with open(fname, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.lstrip().startswith("{"):
        return load_json(text)
    if str(fname).lower().endswith(".onnx") or text is None:
        from converters.onnx_import import import_model
        return import_model(os.fspath(fname))[0]
    return load_json(text)


def debug_str(symbol):
    lines = ["Symbol Outputs:"]
    for i, (node, index) in enumerate(symbol.outputs):
        lines.append("\toutput[%d]=%s(%d)" % (i, node.name, index))
    for node in topo_order(symbol.outputs):
        if node.is_variable:
            lines.append("Variable:%s" % node.name)
            continue
        lines.append("--------------------")
        lines.append("Op:%s, Name=%s" % (node.op.op_name, node.name))
        lines.append("Inputs:")
        for i, (src, idx) in enumerate(node.inputs):
            lines.append("\targ[%d]=%s(%d) version=0" % (i, src.name, idx))
        if node.attrs:
            lines.append("Attrs:")
            lines.extend("\t%s=%s" % (k, node.attrs[k]) for k in sorted(node.attrs))
    return "\n".join(lines) + "\n"
