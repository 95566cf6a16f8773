"""Files from the internet only describe a model: every malformed symbol JSON or `.params` file gives one MXNetError
naming the file (or "the JSON string" / "the buffer"), never another exception type, a crash, a hang or an
allocation the file's size does not justify. Hand-made cases, then hypothesis mutation fuzzing in a subprocess
(tests/fuzz_loaders.py, which also runs the long campaign)."""
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.module.model import ParamNameError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "mxnet")
CHECKPOINT = os.path.join(FIXTURES, "checkpoint_mlp")


def _graph(nodes, heads=((0, 0, 0),), **fields):
    if isinstance(heads, (list, tuple)):
        heads = [list(h) if isinstance(h, tuple) else h for h in heads]
    graph = {"nodes": nodes, "arg_nodes": [], "heads": heads}
    graph.update(fields)
    return json.dumps(graph)


X = {"op": "null", "name": "x", "inputs": []}


def relu(inputs, **fields):
    return dict({"op": "relu", "name": "r", "inputs": inputs}, **fields)


OLD = {"mxnet_version": ["int", 800]}
ENTRY = "is not \\[node_id, output_index, version\\] of non-negative integers"

JSON_CASES = {  # name: (text, what the message says after "Invalid symbol JSON in <source>: ", or "^" and all of it)
    "not JSON": ("not json", "not valid JSON: Expecting value"),
    "empty": ("", "not valid JSON"),
    "top level a list": ("[1, 2]", "expected an object with a 'nodes' list"),
    "no nodes": ('{"heads": [[0, 0, 0]]}', "expected an object with a 'nodes' list"),
    "nodes not a list": ('{"nodes": {"a": 1}, "heads": [[0, 0, 0]]}', "'nodes' list"),
    "node not an object": (_graph([5]), "node 0 is 5, not an object"),
    "op missing": (_graph([{"name": "x"}]), "node 0 needs 'op', a string \\(got None\\)"),
    "op not a string": (_graph([dict(X, op=["relu"])]), "node 0 needs 'op', a string \\(got \\['relu'\\]\\)"),
    "op unknown": (_graph([dict(X, op="NoSuchOp")]),
                   "^Operator 'NoSuchOp' is not registered in onnxsym \\(node 0 \\('x'\\) in {source}\\)$"),
    "name missing": (_graph([{"op": "null"}]), "node 0 needs 'name', a string"),
    "name not a string": (_graph([dict(X, name=5)]), "node 0 needs 'name', a string \\(got 5\\)"),
    "name null": (_graph([dict(X, name=None)]), "node 0 needs 'name'"),
    "attrs not an object": (_graph([dict(X, attrs=[1])]), "node 0 \\('x'\\): 'attrs' must be an object, got \\[1\\]"),
    "param not an object": (_graph([dict(X, param="abc")]), "'param' must be an object, got 'abc'"),
    "attr not an object": (_graph([dict(X, attr=7)]), "'attr' must be an object, got 7"),
    "attr value a number": (_graph([X, relu([[0, 0, 0]], op="Activation", attrs={"act_type": 1})], [(1, 0, 0)]),
                            "node 1 \\('r'\\): attribute 'act_type' must be a string, got 1"),
    "attr value a list": (_graph([dict(X, attrs={"__shape__": [1, 2]})]), "attribute '__shape__' must be a string"),
    "attr value bad for the op": (_graph([X, relu([[0, 0, 0]], op="FullyConnected", attrs={"num_hidden": "x"})],
                                         [(1, 0, 0)]),
                                  "^Invalid Parameter format for num_hidden .* \\(node 1 \\('r'\\) in {source}\\)$"),
    "inputs not a list": (_graph([X, relu(5)], [(1, 0, 0)]), "node 1 \\('r'\\): 'inputs' must be a list, got 5"),
    "input a number": (_graph([X, relu([0])], [(1, 0, 0)]), "node 1 \\('r'\\): input 0 " + ENTRY),
    "input out of range": (_graph([X, relu([[5, 0, 0]])], [(1, 0, 0)]),
                           "input \\[5, 0, 0\\] refers to node 5, not one of the nodes before it \\(0 to 0\\)"),
    "input negative": (_graph([X, relu([[-1, 0, 0]])], [(1, 0, 0)]), "input \\[-1, 0, 0\\] " + ENTRY),
    "input id a string": (_graph([X, relu([["0", 0, 0]])], [(1, 0, 0)]), "input \\['0', 0, 0\\] " + ENTRY),
    "input id a float": (_graph([X, relu([[0.0, 0, 0]])], [(1, 0, 0)]), "input \\[0.0, 0, 0\\] " + ENTRY),
    "input id null": (_graph([X, relu([[None, 0, 0]])], [(1, 0, 0)]), "input \\[None, 0, 0\\] " + ENTRY),
    "input id a bool": (_graph([X, relu([[True, 0, 0]])], [(1, 0, 0)]), "input \\[True, 0, 0\\] " + ENTRY),
    "input index a string": (_graph([X, relu([[0, "0", 0]])], [(1, 0, 0)]), "input \\[0, '0', 0\\] " + ENTRY),
    "input version negative": (_graph([X, relu([[0, 0, -1]])], [(1, 0, 0)]), "input \\[0, 0, -1\\] " + ENTRY),
    "input too short": (_graph([X, relu([[0]])], [(1, 0, 0)]), "input \\[0\\] " + ENTRY),
    "input too long": (_graph([X, relu([[0, 0, 0, 0]])], [(1, 0, 0)]), "input \\[0, 0, 0, 0\\] " + ENTRY),
    "input output index out of range": (_graph([X, relu([[0, 3, 0]])], [(1, 0, 0)]),
                                        "input reads output 3 of node 0 \\('x'\\), which has 1 output"),
    "input refers to itself": (_graph([X, relu([[1, 0, 0]])], [(1, 0, 0)]),
                               "node 1 \\('r'\\): input \\[1, 0, 0\\] refers to node 1, not one of the nodes before"),
    "input refers forward (a cycle)": (_graph([relu([[1, 0, 0]]), relu([[0, 0, 0]], name="s")]),
                                       "node 0 \\('r'\\): input \\[1, 0, 0\\] refers to node 1.*\\(there are none\\)"),
    "too few inputs": (_graph([X, relu([[0, 0, 0]], op="FullyConnected", attrs={"num_hidden": "2"})],
                              [(1, 0, 0)], attrs={"mxnet_version": ["int", 10901]}),
                       "node 1 \\('r'\\) \\(FullyConnected\\) has 1 inputs, expected 3 \\(data, weight, bias\\)"),
    "heads missing": (json.dumps({"nodes": [X]}), "no 'heads'"),
    "heads empty": (_graph([X], []), "no 'heads'"),
    "heads not a list": (_graph([X], 5), "the graph: 'heads' must be a list, got 5"),
    "head out of range": (_graph([X], [(3, 0, 0)]),
                          "head \\[3, 0, 0\\] refers to node 3, not one of the graph's nodes \\(0 to 0\\)"),
    "head negative": (_graph([X], [(-1, 0, 0)]), "head \\[-1, 0, 0\\] " + ENTRY),
    "head id a string": (_graph([X], [("0", 0, 0)]), "head \\['0', 0, 0\\] " + ENTRY),
    "head id a float": (_graph([X], [(0.5, 0, 0)]), "head \\[0.5, 0, 0\\] " + ENTRY),
    "head id null": (_graph([X], [(None, 0, 0)]), "head \\[None, 0, 0\\] " + ENTRY),
    "head too short": (_graph([X], [(0,)]), "head \\[0\\] " + ENTRY),
    "head output index out of range": (_graph([X], [(0, 1, 0)]), "head reads output 1 of node 0 \\('x'\\)"),
    "graph attrs not an object": (_graph([X], attrs=[1]), "the graph: 'attrs' must be an object"),
    "version a string": (_graph([X], attrs={"mxnet_version": ["int", "abc"]}), "'mxnet_version' is \\['int', 'abc'\\]"),
    "version negative": (_graph([X], attrs={"mxnet_version": ["int", -5]}), "'mxnet_version' is \\['int', -5\\]"),
    "version an object": (_graph([X], attrs={"mxnet_version": {}}), "'mxnet_version' is \\{\\}"),
    "NaN": ('{"nodes": [{"op": "null", "name": "x"}], "heads": [[NaN, 0, 0]]}', "NaN is not a JSON value"),
    "Infinity": ('{"nodes": [{"op": "null", "name": "x"}], "heads": [[Infinity, 0, 0]]}', "Infinity is not"),
    "huge float": ('{"nodes": [{"op": "null", "name": "x"}], "heads": [[1e400, 0, 0]]}', "head \\[inf, 0, 0\\] "),
    "huge integer id": (_graph([X], [(1 << 70, 0, 0)]), "head \\[1180591620717411303424, 0, 0\\] refers to node"),
    "integer of 5000 digits": ('{"nodes": [], "heads": [[%s, 0, 0]]}' % ("9" * 5000), "Exceeds the limit"),
    "huge num_args": (_graph([X, {"op": "Concat", "name": "c", "attrs": {"num_args": "1000000000"},
                                  "inputs": [[0, 0, 0]]}], [(1, 0, 0)], attrs=OLD),
                      "node 1 \\('c'\\): num_args=1000000000 is more than a symbol file of this size can use"),
    "huge num_outputs": (_graph([X, {"op": "SliceChannel", "name": "s", "attrs": {"num_outputs": "1000000000"},
                                     "inputs": [[0, 0, 0]]}], [(1, 5, 0)]),
                         "node 1 \\('s'\\): num_outputs=1000000000 is more than"),
    "huge num_outputs over many nodes": (_graph([X] + [{"op": "SliceChannel", "name": "s%d" % i, "attrs": {
        "num_outputs": "30000"}, "inputs": [[0, 0, 0]]} for i in range(4)], [(1, 0, 0)]),
        "node 3 \\('s2'\\): num_outputs=30000 is more than"),
    "nested 1000 levels in an attribute": (
        '{"nodes": [{"op": "null", "name": "x", "attrs": {"a": %s}}], "heads": [[0, 0, 0]]}'
        % ("[" * 900 + "]" * 900), "attribute 'a' must be a string, got \\[+\\.\\.\\.\\]+$"),
}


@pytest.fixture
def checkpoint_params(tmp_path):
    """A valid `-0000.params` beside the symbol files the JSON cases write."""
    with open(CHECKPOINT + "-0003.params", "rb") as source:
        (tmp_path / "net-0000.params").write_bytes(source.read())
    return tmp_path


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_malformed_json_is_one_mxneterror_naming_the_source(name, checkpoint_params):
    text, message = JSON_CASES[name]
    if not message.startswith("^"):
        message = "^Invalid symbol JSON in {source}: .*" + message
    with pytest.raises(mx.MXNetError, match=message.replace("{source}", "the JSON string")):
        mx.sym.load_json(text)
    path = checkpoint_params / "net-symbol.json"
    path.write_text(text)
    pattern = message.replace("{source}", "file '%s'" % re.escape(str(path)))
    with pytest.raises(mx.MXNetError, match=pattern):
        mx.sym.load(str(path))
    with pytest.raises(mx.MXNetError, match=pattern):
        mx.model.load_checkpoint(str(checkpoint_params / "net"), 0)


def test_non_utf8_json_names_the_file(tmp_path):
    raw = b'{"nodes": [{"op": "null", "name": "\xff"}], "heads": [[0, 0, 0]]}'
    with pytest.raises(mx.MXNetError, match="^Invalid symbol JSON in the JSON string: not UTF-8 text"):
        mx.sym.load_json(raw)
    for name, data in (("net-symbol.json", raw), ("model.txt", raw), ("latin.json", b"\xff\xfe{}")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(mx.MXNetError, match="in file '%s': not UTF-8 text" % re.escape(str(tmp_path / name))):
            mx.sym.load(str(tmp_path / name))


def test_load_json_takes_text_or_utf8_bytes_only():
    with pytest.raises(TypeError, match="json_str required to be a string"):
        mx.sym.load_json(None)
    assert mx.sym.load_json(mx.sym.Variable("x").tojson().encode()).list_arguments() == ["x"]


def test_duplicate_names_load_as_in_mxnet_and_binding_refuses_them():
    # MXNet 1.9.1 loads two variables named 'x' (list_arguments ['x', 'x']); binding by name is then ambiguous.
    sym = mx.sym.load_json(_graph([X, X, {"op": "elemwise_add", "name": "a", "inputs": [[0, 0, 0], [1, 0, 0]]}],
                                  [(2, 0, 0)]))
    assert sym.list_arguments() == ["x", "x"]
    with pytest.raises(mx.MXNetError, match="two inputs named 'x'"):
        sym.eval(x=mx.nd.array([1.0, 2.0]))


def test_arity_within_the_budget_still_loads():
    sym = mx.sym.load_json(_graph([X, {"op": "SliceChannel", "name": "s", "attrs": {"num_outputs": "1000"},
                                       "inputs": [[0, 0, 0]]}], [(1, 999, 0)]))
    assert sym.list_outputs() == ["s_output999"]


@pytest.mark.parametrize("text", [
    _graph([X, {"op": "Concat", "name": "c", "attrs": {"num_args": "100000000"}, "inputs": [[0, 0, 0]]}],
           [(1, 0, 0)], attrs=OLD),
    _graph([X, {"op": "SliceChannel", "name": "s", "attrs": {"num_outputs": "100000000"}, "inputs": [[0, 0, 0]]}]
           + [relu([[1, i, 0]], name="r%d" % i) for i in range(50)], [(2, 0, 0)]),
])
def test_declared_arity_allocates_nothing_big(text):
    tracemalloc.start()
    try:
        with pytest.raises(mx.MXNetError, match="is more than a symbol file of this size can use"):
            mx.sym.load_json(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak


def _run(script, timeout=120):
    """Run Python code in a fresh interpreter from the repository root: a crash fails the test, not pytest."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_deep_nesting_in_a_subprocess(tmp_path):
    path = tmp_path / "deep-symbol.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    script = (
        "import onnxsym as mx\n"
        "texts = ['[' * 100000 + ']' * 100000, '{\"a\":' * 100000 + '1' + '}' * 100000,\n"
        "         '{\"nodes\": [{\"op\": \"null\", \"name\": \"x\", \"attrs\": {\"a\": ' + '[' * 100000"
        " + ']' * 100000 + '}}], \"heads\": [[0, 0, 0]]}']\n"
        "for text in texts:\n"
        "    try:\n        mx.sym.load_json(text)\n"
        "    except mx.MXNetError as err:\n        print(err)\n"
        "try:\n    mx.sym.load(%r)\nexcept mx.MXNetError as err:\n    print(err)\n" % str(path))
    result = _run(script)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all("nested more deeply than the JSON parser allows" in line for line in lines)
    assert lines[:3] == ["Invalid symbol JSON in the JSON string: not valid JSON: nested more deeply than the JSON "
                         "parser allows"] * 3
    assert str(path) in lines[3]


# ----- .params -----
def _header(count):
    return struct.pack("<QQQ", 0x112, 0, count)


def _v2(shape, flag=0, stype=0, data=None, magic=0xF993FAC9):
    body = struct.pack("<Iii", magic, stype, len(shape)) + struct.pack("<%dq" % len(shape), *shape)
    body += struct.pack("<iii", 1, 0, flag)
    return body + (data if data is not None else b"\0" * (4 * int(np.prod(shape))))


def _sparse(stype, shape, storage, aux, values):
    """A V2 sparse record: storage shape, shape, cpu(0), float32, int64 aux arrays, then the data."""
    shape_bytes = lambda s: struct.pack("<i", len(s)) + struct.pack("<%dq" % len(s), *s)
    body = struct.pack("<Ii", 0xF993FAC9, stype) + shape_bytes(storage) + shape_bytes(shape)
    body += struct.pack("<iii", 1, 0, 0) + b"".join(struct.pack("<i", 6) + shape_bytes((len(a),)) for a in aux)
    return body + np.asarray(values, np.float32).tobytes() + b"".join(np.asarray(a, np.int64).tobytes() for a in aux)


def _rsp(shape, rows):
    return _sparse(1, shape, (len(rows),) + shape[1:], [rows], np.ones((len(rows),) + shape[1:]))


def _csr(shape, indptr, cols):
    return _sparse(2, shape, (len(cols),), [indptr, cols], np.ones(len(cols)))


def _names(*names):
    return struct.pack("<Q", len(names)) + b"".join(struct.pack("<Q", len(n)) + n for n in names)


ONE = _v2((1,))
PARAMS_CASES = {  # name: (bytes, what the message says after "cannot load <source>: ")
    "empty file": (b"", "truncated .params data in the file header: the file magic needs 8 bytes"),
    "wrong magic": (struct.pack("<QQQ", 0x113, 0, 0), "not an MXNet .params file \\(magic is not 0x112\\)"),
    "text file": (b'{"nodes": []}' + b" " * 20, "not an MXNet .params file"),
    "absurd array count": (_header(1 << 62) + ONE, "4611686018427387904 arrays cannot fit in"),
    "count larger than the arrays": (_header(3) + ONE + ONE, "array 2 of 3: the array magic needs 4 bytes"),
    "unknown array magic": (_header(1) + struct.pack("<I", 0xDEADBEEF), "array 0 of 1: unknown array magic"),
    "absurd ndim": (_header(1) + struct.pack("<Iii", 0xF993FAC9, 0, 0x7FFFFFFF), "shape ndim 2147483647"),
    "ndim 33": (_header(1) + struct.pack("<Iii", 0xF993FAC9, 0, 33), "shape ndim 33"),
    "ndim -2": (_header(1) + struct.pack("<Iii", 0xF993FAC9, 0, -2), "shape ndim -2"),
    "2^40 elements": (_header(1) + _v2((1 << 20, 1 << 20), data=b""),
                      "array 0 of 1: the data of shape \\(1048576, 1048576\\) float32 needs 4398046511104 bytes"),
    "2^124 elements": (_header(1) + _v2((1 << 62, 1 << 62), data=b""), "needs 85070591730234615865843651857942052864"),
    "zero-size, other dims overflow": (_header(1) + _v2((0, 1 << 62, 1 << 62), data=b""),
                                       "shape \\(0, 4611686018427387904, 4611686018427387904\\) is too large"),
    "negative dim": (_header(1) + _v2((2, -3), data=b""), "negative dimension in shape \\(2, -3\\)"),
    "legacy negative-looking dims": (_header(1) + struct.pack("<II", 1, 0xFFFFFFFF) + struct.pack("<iii", 1, 0, 0),
                                     "the data of shape \\(4294967295,\\) float32 needs 17179869180 bytes"),
    "unknown type flag": (_header(1) + _v2((1,), flag=13), "unknown dtype flag 13"),
    "negative type flag": (_header(1) + _v2((1,), flag=-1), "unknown dtype flag -1"),
    "bfloat16": (_header(1) + _v2((1,), flag=12), "bfloat16 dtype flag 12"),
    "row_sparse row out of range": (_header(1) + _rsp((4, 2), [7]), "indices must be unique, sorted"),
    "row_sparse rows unsorted": (_header(1) + _rsp((4, 2), [2, 1]), "indices must be unique, sorted"),
    "row_sparse cut short": (_header(1) + _rsp((4, 2), [1, 2])[:-4], "aux array 0 of shape \\(2,\\) int64 needs"),
    "row_sparse huge dense shape": (_header(1) + _rsp((1 << 40, 1 << 20), []), "dense-backed sparse arrays allow"),
    "csr indptr wrong": (_header(1) + _csr((2, 3), [0, 3, 1], [1]), "indptr must have 3 entries"),
    "csr column out of range": (_header(1) + _csr((2, 3), [0, 1, 1], [5]), "column indices of each row"),
    "csr in a V3 record": (_header(1) + struct.pack("<Ii", 0xF993FACA, 2), "storage type 2 in a 0xF993FACA record"),
    "unknown storage type": (_header(1) + _v2((4,), stype=-7), "storage type -7"),
    "V2 none array": (_header(1) + _v2(()), "array 0 of 1: it is a 'none' array"),
    "V3 none array": (_header(1) + struct.pack("<Iii", 0xF993FACA, 0, -1), "it is a 'none' array"),
    "V1 none array": (_header(1) + struct.pack("<Ii", 0xF993FAC8, 0), "it is a 'none' array"),
    "names for no arrays": (_header(0) + _names(b"a"), "1 names for 0 arrays"),
    "fewer names than arrays": (_header(2) + ONE + ONE + _names(b"a"), "1 names for 2 arrays"),
    "name count absurd": (_header(1) + ONE + struct.pack("<Q", 1 << 63), "9223372036854775808 names for 1 arrays"),
    "name length absurd": (_header(1) + ONE + struct.pack("<QQ", 1, 1 << 62), "name 0 of 1: a name of"),
    "name not UTF-8": (_header(1) + ONE + _names(b"arg:\xff"), "name 0 is not UTF-8"),
    "name table missing": (_header(1) + ONE, "the names table: the name count needs 8 bytes"),
}


@pytest.mark.parametrize("name", sorted(PARAMS_CASES))
def test_malformed_params_is_one_mxneterror_naming_the_file(name, tmp_path):
    payload, message = PARAMS_CASES[name]
    path = tmp_path / "net-0000.params"
    path.write_bytes(payload)
    tracemalloc.start()
    try:
        with pytest.raises(mx.MXNetError, match="^cannot load file '%s': .*%s" % (re.escape(str(path)), message)):
            mx.nd.load(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak     # refused before allocating what the header claims
    with pytest.raises(mx.MXNetError, match="^cannot load the buffer: .*" + message):
        mx.nd.load_frombuffer(payload)
    with open(CHECKPOINT + "-symbol.json") as source:
        (tmp_path / "net-symbol.json").write_text(source.read())
    with pytest.raises(mx.MXNetError, match=re.escape(str(path))):
        mx.model.load_checkpoint(str(tmp_path / "net"), 0)


@pytest.mark.parametrize("fixture", ["params_list", "params_legacy", "params_v1", "params_v3"])
def test_truncated_at_every_byte_names_the_file(fixture, tmp_path):
    with open(os.path.join(FIXTURES, fixture + ".params"), "rb") as source:
        raw = source.read()
    path = tmp_path / "cut.params"
    for end in range(len(raw)):
        path.write_bytes(raw[:end])
        with mx.np_shape(fixture.endswith("v3")), \
                pytest.raises(mx.MXNetError, match="^cannot load file '%s': truncated" % re.escape(str(path))):
            mx.nd.load(str(path))       # (a V3 file is read in the semantics it was written in)


def test_str_buffer_of_non_bytes():
    with pytest.raises(mx.MXNetError, match="cannot load the buffer"):
        mx.nd.load_frombuffer("\u20ac" * 30)


def _params_file(path, arrays):
    mx.nd.save(str(path), arrays)
    return path


def test_checkpoint_params_names(tmp_path, caplog):
    with open(CHECKPOINT + "-symbol.json") as source:
        (tmp_path / "net-symbol.json").write_text(source.read())
    prefix = str(tmp_path / "net")
    one = mx.nd.array([1.0])
    _params_file(tmp_path / "net-0000.params", [one])
    with pytest.raises(mx.MXNetError, match="net-0000.params: it holds an unnamed list of arrays"):
        mx.model.load_checkpoint(prefix, 0)
    _params_file(tmp_path / "net-0000.params", {"arg:w": one, "weight": one})
    with pytest.raises(ParamNameError, match="net-0000.params: parameter names start with arg: or aux:, got 'weight'"):
        mx.model.load_checkpoint(prefix, 0)
    assert issubclass(ParamNameError, mx.MXNetError) and issubclass(ParamNameError, ValueError)
    _params_file(tmp_path / "net-0000.params", {})
    with caplog.at_level("WARNING"):
        sym, args, auxs = mx.model.load_checkpoint(prefix, 0)      # MXNet warns and returns empty dicts
    assert (args, auxs) == ({}, {}) and "is empty" in caplog.text


# ----- property-based fuzzing, in a subprocess so that a crash fails the test instead of killing pytest -----
@pytest.mark.parametrize("loader", ["load_json", "sym.load", "nd.load", "load_checkpoint"])
def test_mutated_files_give_only_mxneterrors(loader):
    result = subprocess.run([sys.executable, "-m", "tests.fuzz_loaders", "hypothesis", loader, "--examples", "200",
                             "--deadline-ms", "5000"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "200 examples, only MXNetErrors naming the file" in result.stdout
