"""Hostile `.onnx` files: a model file may only describe a model. External data never reaches outside the model's
folder (whatever tensor carries it), malformed files are one-line MXNetErrors naming the file, and mutated files
never crash or hang the process (fuzzed in a subprocess)."""
import base64
import os
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import onnxsym as mx

SECRET = b"S3CRET!-KEEP-OUT"          # 16 bytes: four float32 values
X = helper.make_tensor_value_info("x", TP.FLOAT, [4])
Y = helper.make_tensor_value_info("y", TP.FLOAT, [4])


def external(name, location, dims=(4,), offset=0, length=16, data_type=TP.FLOAT):
    tensor = TP(name=name, data_type=data_type, dims=dims, data_location=TP.EXTERNAL)
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        tensor.external_data.add(key=key, value=str(value))
    return tensor


def make_model(nodes, initializers=(), outputs=(Y,), **kwargs):
    graph = helper.make_graph(nodes, "g", [X], list(outputs), list(initializers))
    kwargs.setdefault("opset_imports", [helper.make_opsetid("", 17)])
    return helper.make_model(graph, ir_version=8, **kwargs)


def branch(nodes, output="c"):
    return helper.make_graph(nodes, "branch", [], [helper.make_tensor_value_info(output, TP.FLOAT, None)])


def constant(tensor, output="c"):
    return helper.make_node("Constant", [], [output], value=tensor)


def if_model(tensor):
    """y = x + (constant from the then-branch if sum(x) >= 0): ORT does not constant-fold a branch it cannot
    decide at load time, so before the check this one returned the file's bytes."""
    then = branch([constant(tensor)])
    other = branch([helper.make_node("Constant", [], ["c"], value_floats=[0.0] * 4)])
    return make_model([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
                       helper.make_node("Constant", [], ["zero"], value_float=0.0),
                       helper.make_node("GreaterOrEqual", ["s", "zero"], ["t"]),
                       helper.make_node("If", ["t"], ["c"], then_branch=then, else_branch=other),
                       helper.make_node("Add", ["x", "c"], ["y"])])


def loop_model(tensor):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), constant(tensor, "v"),
         helper.make_node("Add", ["acc", "v"], ["acc_out"])], "body",
        [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("cond", TP.BOOL, []),
         helper.make_tensor_value_info("acc", TP.FLOAT, [4])],
        [helper.make_tensor_value_info("cond_out", TP.BOOL, []), helper.make_tensor_value_info("acc_out", TP.FLOAT, [4])])
    return make_model([helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)],
                      [numpy_helper.from_array(np.array(1, np.int64), "n")])


def function_model(tensor):
    function = helper.make_function("local", "AddSecret", ["a"], ["b"],
                                    [constant(tensor, "k"), helper.make_node("Add", ["a", "k"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    return make_model([helper.make_node("AddSecret", ["x"], ["y"], domain="local")], functions=[function],
                      opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])


def sparse_model(values, indices=None):
    indices = indices or numpy_helper.from_array(np.array([0, 1, 2, 3], np.int64), "s_idx")
    model = make_model([helper.make_node("Add", ["x", "s"], ["y"])])
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return model


def _named(tensor, name):
    tensor.name = name
    return tensor


def _resized(tensor, dims, length, data_type=TP.FLOAT):
    del tensor.dims[:]
    tensor.dims.extend(dims)
    tensor.data_type = data_type
    for entry in tensor.external_data:
        if entry.key == "length":
            entry.value = str(length)
    return tensor


def _with_training_info(tensor):
    model = make_model([helper.make_node("Identity", ["x"], ["y"])])
    model.training_info.add().initialization.CopyFrom(
        helper.make_graph([constant(tensor)], "init", [], [helper.make_tensor_value_info("c", TP.FLOAT, [4])]))
    return model


# Each vector: (external tensor -> model carrying it there).
VECTORS = {
    "initializer": lambda t: make_model([helper.make_node("Add", ["x", "w"], ["y"])], [_named(t, "w")]),
    "constant_value": lambda t: make_model([constant(t), helper.make_node("Add", ["x", "c"], ["y"])]),
    "constant_of_shape": lambda t: make_model(
        [helper.make_node("ConstantOfShape", ["shape"], ["c"], value=_resized(t, [1], 4)),
         helper.make_node("Add", ["x", "c"], ["y"])], [numpy_helper.from_array(np.array([4], np.int64), "shape")]),
    "sparse_values": lambda t: sparse_model(_named(t, "s")),
    "sparse_indices": lambda t: sparse_model(numpy_helper.from_array(np.ones(4, np.float32), "s"),
                                             _resized(t, [4], 16, TP.INT32)),
    "if_branch": if_model,
    "loop_body": loop_model,
    "function_body": function_model,
    "training_info": _with_training_info,
}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """(model folder, secret's absolute path): the secret sits outside the model's folder, in the working
    directory, so a location resolved against the working directory (ONNX Runtime on bytes) reaches it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET)
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.chdir(outside)
    return folder, str(outside / "secret.bin")


def attempt(model, capfd):
    """import_model + bind + forward on `model` (a path or bytes): the MXNetError's message; fails if the model
    ran, and if SECRET shows in the message, the outputs or anything printed."""
    try:
        sym, args, aux = mx.onnx.import_model(model)
        outputs = sym.bind(mx.cpu(), {**args, "x": mx.nd.zeros(4)}, aux_states=aux).forward()
        leaked = b"".join(o.asnumpy().tobytes() for o in outputs)
    except mx.MXNetError as err:
        message = str(err)
    else:
        pytest.fail("the model ran; its output bytes %r" % leaked)
    printed = capfd.readouterr()
    assert SECRET.decode() not in message + printed.out + printed.err
    return message


def save(model, folder, name="m.onnx"):
    path = str(folder / name)
    with open(path, "wb") as file:      # onnx.save would move external data around
        file.write(model if isinstance(model, bytes) else model.SerializeToString())
    return path


LOCATIONS = {
    "cwd_relative": lambda folder, secret: "secret.bin",
    "dotdot": lambda folder, secret: os.path.relpath(secret, folder),
    "absolute": lambda folder, secret: secret,
}


@pytest.mark.parametrize("how", sorted(LOCATIONS))
@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_external_data_outside_the_folder_is_refused(place, capfd, vector, how):
    folder, secret = place
    path = save(VECTORS[vector](external("v", LOCATIONS[how](folder, secret))), folder)
    message = attempt(path, capfd)
    assert path in message and "\n" not in message, message


def test_symlink_out_of_the_folder_is_refused(place, capfd):
    folder, secret = place
    os.symlink(secret, folder / "weights.bin")
    path = save(VECTORS["constant_value"](external("v", "weights.bin")), folder)
    assert "outside the model's folder" in attempt(path, capfd)
    os.symlink(os.path.dirname(secret), folder / "sub")     # a symlinked folder
    path = save(VECTORS["initializer"](external("v", "sub/secret.bin")), folder)
    assert "outside the model's folder" in attempt(path, capfd)


@pytest.mark.parametrize("vector", ["initializer", "constant_value", "if_branch"])
def test_bytes_model_may_not_use_external_data(place, capfd, vector):
    model = VECTORS[vector](external("v", "secret.bin"))
    assert "model given as bytes" in attempt(model.SerializeToString(), capfd)


@pytest.mark.parametrize("offset, length, words", [(16, 16, "beyond the end"), (-4, 16, "offset -4"),
                                                  (0, 8, "need 16 bytes"), (0, 2 ** 40, "need 16 bytes"),
                                                  (2 ** 62, 16, "beyond the end"), ("x", 16, "malformed")])
def test_external_offset_and_length_are_checked(place, capfd, offset, length, words):
    folder, _ = place
    (folder / "data.bin").write_bytes(b"\0" * 20)
    path = save(VECTORS["constant_value"](external("v", "data.bin", offset=offset, length=length)), folder)
    message = attempt(path, capfd)
    assert path in message and words in message, message


def test_external_data_must_be_a_regular_file(place, capfd):
    folder, _ = place
    os.mkfifo(folder / "fifo")          # reading it would block forever
    path = save(VECTORS["initializer"](external("v", "fifo")), folder)
    assert "not a regular file" in attempt(path, capfd)


def test_external_data_inside_the_folder_still_loads(place):
    """The check refuses only what it must: data beside the model loads, from a Constant in an If branch and
    from a function body too."""
    folder, _ = place
    values = np.arange(8, dtype=np.float32)
    (folder / "data.bin").write_bytes(values.tobytes())
    for vector in ("initializer", "constant_value", "if_branch", "function_body"):
        path = save(VECTORS[vector](external("v", "data.bin", offset=16, length=16)), folder, vector + ".onnx")
        sym, args, aux = mx.onnx.import_model(path)
        out = sym.bind(mx.cpu(), {**args, "x": mx.nd.ones(4)}).forward()[0].asnumpy()
        np.testing.assert_array_equal(out, values[4:] + 1)


def test_symbol_json_onnx_node_may_not_use_external_data(place, capfd):
    """An `_onnx` node's attributes travel in symbol JSON (and in the metadata of onnxsym's .onnx files), which
    have no folder: an external tensor there is refused when the graph is built."""
    holder = helper.make_node("Constant", [], [], value=external("v", "secret.bin"))
    node = mx.sym.create_symbol("_onnx", name="c", op_type="Constant", input_slots="",
                                node_attributes=base64.b64encode(holder.SerializeToString()).decode(),
                                out_shapes="[[4]]", out_types='["float32"]')
    sym = mx.sym.load_json((mx.sym.Variable("x") + node).tojson())
    with pytest.raises(mx.MXNetError, match="external data"):
        sym.bind(mx.cpu(), {"x": mx.nd.zeros(4)}).forward()
    # the same graph as the MXNet JSON inside an onnxsym .onnx file
    folder, _ = place
    path = mx.onnx.export_model(mx.sym.relu(mx.sym.Variable("x")), {}, [(4,)], onnx_file_path=str(folder / "e.onnx"))
    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == "mxnet_symbol":
            prop.value = sym.tojson()
    assert "external data" in attempt(save(model, folder), capfd)


# ----- malformed files: one-line MXNetErrors naming the file -----

def _valid():
    return make_model([helper.make_node("Add", ["x", "w"], ["y"])],
                      [numpy_helper.from_array(np.ones(4, np.float32), "w")])


def _edit(change):
    def build():
        model = _valid()
        change(model)
        return model.SerializeToString()
    return build


def _typed_huge(model):
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.float_data.extend([1.0, 2.0])
    tensor.dims[0] = 2 ** 40


def _nested_graphs(depth):
    """A model whose graph nests `depth` graphs deep (node -> attribute g -> graph), written as protobuf wire
    bytes: deeper than protobuf's parser allows (onnx.helper cannot even build it)."""
    def varint(n):
        out = b""
        while n > 0x7F:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    def field(number, payload):
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    graph = b""
    for _ in range(depth):      # GraphProto.node = 1, NodeProto.attribute = 5, AttributeProto.g = 6
        graph = field(1, field(5, field(1, b"then_branch") + field(6, graph)))
    return _valid().SerializeToString() + field(7, graph)      # ModelProto.graph = 7, merged into the valid one


def _huge_constant_of_shape():
    return make_model([helper.make_node("ConstantOfShape", ["shape"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
                      [numpy_helper.from_array(np.array([2 ** 20, 2 ** 20, 4], np.int64), "shape")],
                      outputs=[helper.make_tensor_value_info("y", TP.FLOAT, None)]).SerializeToString()


MALFORMED = {
    "unknown_tensor_type": (_edit(lambda m: setattr(m.graph.initializer[0], "data_type", 999)), "unknown data type"),
    "unknown_input_type": (_edit(lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", 999)), "(999)"),
    "truncated": (lambda: _valid().SerializeToString()[:-7], "not a readable ONNX model"),
    "garbled": (lambda: bytes(range(256)) * 4, "not a readable ONNX model"),
    "empty_file": (lambda: b"", "no graph"),
    "no_graph": (lambda: onnx.ModelProto(ir_version=8).SerializeToString(), "no graph"),
    "negative_dims": (_edit(lambda m: m.graph.initializer[0].dims.__setitem__(0, -4)), "negative dimensions"),
    "raw_data_short": (_edit(lambda m: setattr(m.graph.initializer[0], "raw_data", b"\0" * 8)), "holds 8 bytes"),
    "dims_2_to_40": (_edit(lambda m: m.graph.initializer[0].dims.__setitem__(0, 2 ** 40)), "4398046511104 bytes"),
    "typed_data_short": (_edit(_typed_huge), "more than the data it holds"),
    "undefined_input": (_edit(lambda m: m.graph.node[0].input.__setitem__(1, "nowhere")), "nowhere"),
    "undefined_output": (_edit(lambda m: setattr(m.graph.output[0], "name", "nowhere")), "nowhere"),
    "nested_1000": (lambda: _nested_graphs(1000), "not a readable ONNX model"),
    "huge_inferred_value": (_huge_constant_of_shape, "larger than this machine's memory"),
    "python_op_domain": (_edit(lambda m: setattr(m.graph.node[0], "domain", "ai.onnx.contrib")), "reserves"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_a_one_line_error_naming_it(tmp_path, case):
    build, words = MALFORMED[case]
    path = save(build(), tmp_path, "%s.onnx" % case)
    with pytest.raises(mx.MXNetError) as info:
        sym, args, aux = mx.onnx.import_model(path)
        sym.bind(mx.cpu(), {**args, "x": mx.nd.zeros(4)}).forward()
    message = str(info.value)
    assert path in message and words in message and "\n" not in message, message


# ----- fuzzing: mutated files give MXNetError or run; never a crash, a hang, another exception or a write -----

def fuzz_seeds(folder):
    """Bytes of small valid models: one onnxsym exports from a tiny symbol, one with a Constant and an If."""
    data = mx.sym.Variable("data")
    net = mx.sym.relu(mx.sym.FullyConnected(data, num_hidden=3, name="fc"))
    params = {"fc_weight": mx.nd.array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10),
              "fc_bias": mx.nd.array(np.ones(3, np.float32))}
    path = mx.onnx.export_model(net, params, [(2, 4)], onnx_file_path=os.path.join(folder, "seed.onnx"),
                                dynamic=False)
    with open(path, "rb") as file:
        exported = file.read()
    os.remove(path)
    return [exported, if_model(numpy_helper.from_array(np.arange(4, dtype=np.float32), "v")).SerializeToString()]


def mutate(data, edits, cut):
    """`data` with bytes replaced (position modulo its length) and optionally cut short."""
    data = bytearray(data)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[:cut % (len(data) + 1)] if cut is not None else data)


def load_and_run(data, path):
    """Import the model `data` (written to `path`) and run it on zeros; returns 'ran' or 'refused'. Anything but
    an MXNetError propagates."""
    with open(path, "wb") as file:
        file.write(data)
    try:
        sym, args, aux = mx.onnx.import_model(path)
        shapes = {name: shape for name, shape in mx.onnx.get_model_metadata(path)["input_tensor_data"]
                  if name in sym.list_arguments() and all(isinstance(d, int) for d in shape)}
        arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
        if arg_shapes and sum(int(np.prod(s)) for s in arg_shapes + aux_shapes) > 10 ** 7:
            return "refused"            # a mutated input shape: too big to feed, not a loader problem
        exe = sym.simple_bind(mx.cpu(), grad_req="null", **shapes)
        exe.copy_params_from(args, aux, allow_extra_params=True)
        exe.forward()
        [o.asnumpy() for o in exe.outputs]
    except mx.MXNetError:
        return "refused"
    return "ran"


def _guard_writes(allowed):
    """An audit hook failing any file opened for writing but `allowed` (Python-level; the folder snapshots in
    the parent catch native writes)."""
    import sys

    def hook(event, args):
        if event == "open" and args[0] != allowed and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise RuntimeError("a model made the process open %r for writing" % (args[0],))
    sys.addaudithook(hook)


def fuzz_in_process(folder, examples):
    """The hypothesis campaign (run by the subprocess of test_mutated_files_never_crash)."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    seeds = fuzz_seeds(folder)
    path = os.path.join(folder, "mutant.onnx")
    _guard_writes(path)

    @settings(max_examples=examples, deadline=20000, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(model=st.sampled_from(range(len(seeds))),
           edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6),
           cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
    def check(model, edits, cut):
        load_and_run(mutate(seeds[model], edits, cut), path)

    check()


def run_isolated(code, tmp_path, timeout):
    """Run `code` in a fresh interpreter whose working directory, HOME and TMPDIR are empty folders, capped at
    8 GiB of address space; returns (CompletedProcess, files the run left anywhere but `models/`)."""
    import subprocess
    import sys
    home = tmp_path / "home"
    for sub in ("home", "models"):
        (tmp_path / sub).mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, HOME=str(home), TMPDIR=str(home), PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1")
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=home, env=env, capture_output=True,
                          text=True, timeout=timeout)
    left = [os.path.join(d, f) for d, _, files in os.walk(home) for f in files]
    return done, left


def test_mutated_files_never_crash_write_or_raise_another_error(tmp_path):
    code = "from tests.test_onnx_hostile import fuzz_in_process; fuzz_in_process(%r, 200)" \
        % str(tmp_path / "models")
    done, left = run_isolated(code, tmp_path, timeout=540)
    assert done.returncode == 0, "fuzzing crashed or failed (rc %d):\n%s" % (done.returncode, done.stderr[-3000:])
    assert left == [] and sorted(os.listdir(tmp_path / "models")) == ["mutant.onnx"], left


def campaign(total, batch=500):
    """The longer campaign (not in CI): `total` random mutants in subprocesses of `batch`; prints outcomes,
    crashes, hangs and the peak memory. python -c 'from tests.test_onnx_hostile import campaign; campaign(5000)'"""
    import pathlib
    import tempfile
    for start in range(0, total, batch):
        code = textwrap.dedent("""
            import collections, random, resource, traceback
            from tests.test_onnx_hostile import fuzz_seeds, mutate, load_and_run, _guard_writes
            seeds = fuzz_seeds(%r)
            path = %r
            _guard_writes(path)
            rng, counts = random.Random(%d), collections.Counter()
            for _ in range(%d):
                data = rng.choice(seeds)
                edits = [(rng.randrange(len(data)), rng.randrange(256)) for _ in range(rng.randint(1, 8))]
                cut = rng.randrange(len(data) + 1) if rng.random() < 0.2 else None
                try:
                    counts[load_and_run(mutate(data, edits, cut), path)] += 1
                except Exception as err:
                    counts[type(err).__name__] += 1
                    print("OTHER", type(err).__name__, str(err)[:200], edits, cut)
            print("COUNTS", dict(counts), "PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
            """)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            models = str(tmp / "models")
            try:
                done, left = run_isolated(code % (models, os.path.join(models, "mutant.onnx"), start,
                                                  min(batch, total - start)), tmp, timeout=1200)
                print("batch", start, "rc", done.returncode, "left", left, done.stdout[-2000:], done.stderr[-500:])
            except Exception as err:        # subprocess.TimeoutExpired: a hang
                print("batch", start, "HANG or failure:", err)


def test_cli_sessions_ignore_a_models_ort_config(tmp_path):
    """With ORT_LOAD_CONFIG_FROM_MODEL=1, ORT applies a model's metadata `ort_config` (e.g. profiling, which
    writes files): the command line's plain sessions are made from the checked model without it."""
    import subprocess
    import sys
    import textwrap
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"ort_config": '{"session_options": {"enable_profiling": 1}}'})
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    work = tmp_path / "work"
    work.mkdir()
    script = textwrap.dedent("""
        import sys, numpy as np
        sys.path.insert(0, %r)
        from onnxsym import cli
        session = cli._plain_session(%r, cli._load_onnx(%r))
        print(session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0].tolist())
    """ % (os.getcwd(), str(path), str(path)))
    env = dict(os.environ, ORT_LOAD_CONFIG_FROM_MODEL="1")
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[0.0, 2.0]" in done.stdout
    assert list(work.iterdir()) == []
