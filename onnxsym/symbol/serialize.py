"""MXNet's symbol JSON format (nnvm `saveload_json.cc`), both ways, plus `debug_str`.

Files written by MXNet 1.x (also the older `attr`/`param` keys, 2-element input entries and pre-0.9 graphs
without auxiliary variables) load here; files written here load in MXNet 1.9.1.
"""
import json
import os
import reprlib

from .._files import atomic_save, atomic_write  # noqa: F401 (atomic_write: re-exported for callers)
from ..base import MXNetError
from ..name import HIDDEN_KEYS
from ..ops.params import parse_shape
from ..ops.registry import get_op
from ..util import is_np_shape
from .node import Node, topo_order
from .symbol import Symbol

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
            + '  "attrs": {%s"mxnet_version": ["int", %d]}\n}'
            % ('"is_np_shape": ["int", 1], ' if is_np_shape() else "", MXNET_VERSION))


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


def _parse(text):
    """The JSON value of `text`; MXNetError for anything dmlc's reader refuses (NaN, non-UTF-8 bytes)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise MXNetError("not UTF-8 text (%s)" % err) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MXNetError("not valid JSON: nested more deeply than the JSON parser allows") from None
    except ValueError as err:   # JSONDecodeError, integers of more than 4300 digits, NaN
        raise MXNetError("not valid JSON: %s" % err) from None


def _refuse_constant(name):
    raise ValueError("%s is not a JSON value" % name)


def _short(value):
    """A repr short enough for an error message, whatever the file holds."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_KIND_NAMES = {dict: "an object", list: "a list", str: "a string"}


def _is_count(value):
    """A non-negative JSON integer (not a bool): dmlc reads node ids, indices and versions as unsigned."""
    return type(value) is int and value >= 0


def _field(record, key, kind, default, where):
    """record[key] when present (MXNetError unless it is a `kind`), else `default`."""
    if key not in record:
        return default
    value = record[key]
    if not isinstance(value, kind):
        raise MXNetError("%s: '%s' must be %s, got %s" % (where, key, _KIND_NAMES[kind], _short(value)))
    return value


def _version(graph):
    """The file's `mxnet_version` (major*10000 + minor*100 + patch); a file without one is MXNet 0.8.0."""
    attrs = _field(graph, "attrs", dict, {}, "the graph")
    if "mxnet_version" not in attrs:
        return 800
    value = attrs["mxnet_version"]
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and _is_count(value[1])):
        raise MXNetError("the graph attribute 'mxnet_version' is %s, expected [\"int\", <version number>]"
                         % _short(value))
    return value[1]


def _graph_is_np_shape(graph):
    value = _field(graph, "attrs", dict, {}, "the graph").get("is_np_shape")
    return isinstance(value, list) and len(value) == 2 and value[1] not in (0, "0")


def _unknown_as_minus_one(text, where):
    try:
        dims = parse_shape(text)
    except (ValueError, TypeError):
        raise MXNetError("%s: __shape__ %s is not a shape" % (where, _short(text))) from None
    return str(tuple(-1 if d == 0 else d for d in dims))


def _node_attrs(record, version, where):
    attrs = {}
    for key in ("param", "attr", "attrs"):      # 0.8 StaticGraph, nnvm before 1.0, 1.x: merged
        for name, value in _field(record, key, dict, {}, where).items():
            if not isinstance(value, str):      # dmlc reads attributes as a map of strings
                raise MXNetError("%s: attribute '%s' must be a string, got %s" % (where, name, _short(value)))
            attrs[name] = value
    if version < MXNET_VERSION:
        for key in HIDDEN_KEYS:     # UpgradeJSON_FixParsing: hidden keys move to __key__
            if key in attrs:
                attrs.setdefault("__%s__" % key, attrs.pop(key))
    return attrs


def _entry(value, limit, what, scope):
    """(node id, output index, version) of an input or head entry: 2 or 3 non-negative integers, the node id
    below `limit`. Inputs must refer to earlier nodes (as MXNet writes them), so a graph read here has no cycle."""
    if not (isinstance(value, list) and len(value) in (2, 3) and all(_is_count(v) for v in value)):
        raise MXNetError("%s %s is not [node_id, output_index, version] of non-negative integers"
                         % (what, _short(value)))
    if value[0] >= limit:
        raise MXNetError("%s %s refers to node %d, not one of %s (%s)" % (
            what, _short(value), value[0], scope, "0 to %d" % (limit - 1) if limit else "there are none"))
    return value[0], value[1], value[2] if len(value) == 3 else 0


def _output(nodes, counts, entry, what):
    """The (node, index) an entry reads, after checking the node has that output."""
    nid, index, _ = entry
    if index >= counts[nid]:
        raise MXNetError("%s reads output %d of node %d ('%s'), which has %d output(s)"
                         % (what, index, nid, nodes[nid].name, counts[nid]))
    return nodes[nid], index


def _move_input_multipliers(attrs, input_names, inputs):
    """Old files put `weight_lr_mult` on the op; MXNet moves it to `__lr_mult__` of the `weight` input."""
    for key in [k for k in attrs if k.endswith(("_lr_mult", "_wd_mult")) and not k.startswith("__")]:
        prefix, kind = key[: -len("_lr_mult")], key[-len("lr_mult"):]
        if prefix in input_names:
            src = inputs[input_names.index(prefix)][0]
            if src.is_variable:
                src.attrs["__%s__" % kind] = attrs.pop(key)


# Attributes that set how many inputs or outputs an op has (variadic ops' num_args, SliceChannel's and
# amp_multicast's num_outputs): loading materializes that many names, so the whole graph may declare no more
# than ARITY_BUDGET plus one per byte of JSON; a 100-byte file cannot make the loader build a billion names.
_ARITY_FIELDS = ("num_args", "num_outputs")
ARITY_BUDGET = 1 << 16


def _check_arity(op, where, budget):
    """Charge the op's declared input/output counts to `budget` (a one-item list); MXNetError when spent."""
    for field in _ARITY_FIELDS:
        value = getattr(op, field, None)
        if type(value) is int:
            budget[0] -= value
            if budget[0] < 0:
                raise MXNetError("%s: %s=%d is more than a symbol file of this size can use"
                                 % (where, field, value))


class _OpRefused(MXNetError):
    """The op layer refused a well-formed node (an op onnxsym lacks, an unregistered Custom op_type, a bad
    attribute value): its own message comes first, then where the node is."""


def _op_node(record, name, attrs, inputs, versions, version, budget, where):
    """The Node of an operator record, after the upgrades MXNet applies to files older than `version`."""
    try:
        opcls = get_op(record["op"])
        op = opcls.from_attrs(attrs, node_name=name, strict=False)
    except MXNetError as err:
        raise _OpRefused("%s (%s" % (err, where)) from None
    _check_arity(op, where, budget)
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
        raise MXNetError("%s (%s) has %d inputs, expected %d (%s)"
                         % (where, opcls.op_name, len(inputs), len(expected), ", ".join(expected)))
    return Node(op, name, attrs, inputs, versions)


def _graph_symbol(graph, size):
    """The Symbol of a parsed JSON graph of `size` characters; MXNetError naming the node on any defect."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise MXNetError("expected an object with a 'nodes' list")
    version = _version(graph)
    # a file written outside NumPy shape semantics, read inside them: its 0 dimensions are unknown ones (-1), as
    # MXNet converts them when it loads such a file
    legacy_shapes = is_np_shape() and not _graph_is_np_shape(graph)
    budget = [ARITY_BUDGET + size]
    nodes, counts = [], []      # counts[i]: outputs of node i, computed once
    for nid, record in enumerate(graph["nodes"]):
        if not isinstance(record, dict):
            raise MXNetError("node %d is %s, not an object" % (nid, _short(record)))
        for key in ("op", "name"):
            if not isinstance(record.get(key), str):
                raise MXNetError("node %d needs '%s', a string (got %s)" % (nid, key, _short(record.get(key))))
        name = record["name"]
        where = "node %d (%s)" % (nid, _short(name))
        attrs = _node_attrs(record, version, where)
        inputs, versions = [], []
        for entry in _field(record, "inputs", list, [], where):
            entry = _entry(entry, nid, "%s: input" % where, "the nodes before it")
            inputs.append(_output(nodes, counts, entry, "%s: input" % where))
            versions.append(entry[2])
            nodes[entry[0]].version = max(nodes[entry[0]].version, entry[2])
        if record["op"] == "null":
            if legacy_shapes and "__shape__" in attrs:
                attrs["__shape__"] = _unknown_as_minus_one(attrs["__shape__"], where)
            node = Node(None, name, attrs)
        else:
            node = _op_node(record, name, attrs, inputs, versions, version, budget, where)
        nodes.append(node)
        counts.append(node.num_outputs)
    heads = _field(graph, "heads", list, [], "the graph")
    if not heads:
        raise MXNetError("no 'heads' (the symbol's outputs)")
    return Symbol([_output(nodes, counts, _entry(entry, len(nodes), "head", "the graph's nodes"), "head")
                   for entry in heads])


def _load_text(text, source):
    """load_json's work; every error names `source` (the file, or "the JSON string")."""
    try:
        return _graph_symbol(_parse(text), len(text))
    except _OpRefused as err:
        raise MXNetError("%s in %s)" % (err, source)) from None
    except MXNetError as err:
        raise MXNetError("Invalid symbol JSON in %s: %s" % (source, err)) from None


def load_json(json_str):
    """A Symbol from MXNet's JSON text (str or UTF-8 bytes). Any defect in it, from bad JSON to an unknown op
    or a bad input entry, raises one MXNetError naming the node and what is wrong.

    >>> sym = mx.sym.load_json(mx.sym.Variable('x').tojson())
    """
    if not isinstance(json_str, (str, bytes, bytearray)):
        raise TypeError("json_str required to be a string, got %s" % type(json_str).__name__)
    return _load_text(json_str, "the JSON string")


def save(symbol, fname):
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname must be a string")
    atomic_save(fname, to_json(symbol), mode="w")


def load(fname):
    """A Symbol from an MXNet `-symbol.json` file, or from an `.onnx` model (as mx.onnx.import_model gives it; its
    parameters come from import_model). A malformed file raises one MXNetError naming the file."""
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname must be a string")
    with open(fname, "rb") as handle:
        raw = handle.read()
    path = os.fspath(fname)
    if not raw.lstrip().startswith(b"{") and not path.lower().endswith(".json"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            path = path + ".onnx"       # binary: an ONNX model, whatever its name
        if path.lower().endswith(".onnx"):
            from ..converters.onnx_import import import_model  # lazy: sym.load reads .onnx; converters sit above
            return import_model(os.fspath(fname))[0]
    return _load_text(raw, "file '%s'" % os.fspath(fname))


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
