"""Optimizer-state files describe values only: every field is checked against the optimizer's own fields and
types, every state against its parameter; any other content is an MXNetError naming the file and the field."""
import json
import struct
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.module import _updater_states, lr_scheduler, optimizer
from tests.fixtures.recorded import leaves

SHAPES = [(3, 4), (5, 2)]     # 2-D: GroupAdaGrad's states need it
ALL_OPTIMIZERS = sorted(optimizer.Optimizer.opt_registry)
SCHEDULERS = [lambda: lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1),
              lambda: lr_scheduler.MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=0.1),
              lambda: lr_scheduler.PolyScheduler(max_update=10, base_lr=0.1, warmup_steps=2),
              lambda: lr_scheduler.CosineScheduler(max_update=10, base_lr=0.1, final_lr=0.01)]


def make_updater(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optimizer.get_updater(optimizer.create(name, **kwargs))


def make_weights(seed=0):
    return {i: mx.nd.array(np.random.RandomState(seed + i).uniform(-1, 1, s)) for i, s in enumerate(SHAPES)}


def run(updater, weights, steps, seed):
    rng = np.random.RandomState(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            grads = [mx.nd.array(rng.uniform(-1, 1, w.shape)) for w in weights.values()]
            updater(list(weights), grads, list(weights.values()))


def trained(name="sgd", steps=3, **kwargs):
    updater, weights = make_updater(name, **kwargs), make_weights()
    run(updater, weights, steps, seed=0)
    return updater, weights


def comparable(obj):
    """vars() of an optimizer/scheduler with arrays and nested objects made comparable."""
    out = {}
    for key, value in vars(obj).items():
        if key in ("param_dict", "_index_update_count"):
            continue
        if hasattr(value, "__dict__") and not isinstance(value, mx.nd.NDArray):
            value = (type(value).__name__, comparable(value))
        out[key] = repr(value)
    return out


@pytest.mark.parametrize("name", ALL_OPTIMIZERS)
def test_every_optimizer_round_trips_exactly(name):
    reference, weights = trained(name)
    restored = make_updater("sgd")
    restored.set_states(reference.get_states(dump_optimizer=True))
    assert type(restored.optimizer) is type(reference.optimizer)
    assert comparable(restored.optimizer) == comparable(reference.optimizer)
    assert set(restored.states) == set(reference.states)
    for key in reference.states:
        old, new = reference.states[key], restored.states[key]
        assert type(old) is type(new)
        for a, b in zip(leaves(old), leaves(new)):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    copies = {i: w.copy() for i, w in weights.items()}
    mx.random.seed(3)
    run(reference, weights, 2, seed=1)
    mx.random.seed(3)                       # SGLD draws noise (mx.random's)
    run(restored, copies, 2, seed=1)
    for i in weights:
        np.testing.assert_array_equal(weights[i].asnumpy(), copies[i].asnumpy())


@pytest.mark.parametrize("name", ["sgd", "nag", "lars", "lamb", "adam", "lbsgd"])
def test_round_trip_with_symbol_multipliers_and_float16(name):
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc",
                                attr={"__lr_mult__": "0.5", "__wd_mult__": "2"})
    momentum = {"momentum": 0.9} if name in ("sgd", "nag", "lars", "lbsgd") else {}
    reference = make_updater(name, sym=net, param_idx2name={0: "fc_weight", 1: "fc_bias"}, multi_precision=True,
                             clip_gradient=1, **momentum)
    reference.optimizer.set_lr_mult({"fc_bias": 2.0, 0: 3})
    weights = {i: w.astype("float16") for i, w in make_weights().items()}
    run(reference, weights, 2, seed=0)
    restored = make_updater("sgd")
    restored._set_states(reference.get_states(dump_optimizer=True), "test", weights)
    assert comparable(restored.optimizer) == comparable(reference.optimizer)
    copies = {i: w.copy() for i, w in weights.items()}
    run(reference, weights, 2, seed=1)
    run(restored, copies, 2, seed=1)
    for i in weights:
        np.testing.assert_array_equal(weights[i].asnumpy(), copies[i].asnumpy())


@pytest.mark.parametrize("make", SCHEDULERS, ids=lambda m: type(m()).__name__)
def test_every_scheduler_round_trips_exactly(make):
    reference, _ = trained("sgd", steps=5, momentum=0.9, lr_scheduler=make())
    restored = make_updater("sgd")
    restored.set_states(reference.get_states(dump_optimizer=True))
    assert comparable(restored.optimizer.lr_scheduler) == comparable(reference.optimizer.lr_scheduler)
    assert restored.optimizer.learning_rate == reference.optimizer.learning_rate


@pytest.mark.parametrize("name", ALL_OPTIMIZERS)
def test_every_optimizer_field_has_a_type(name):
    fields, _ = _updater_states._fields(optimizer.Optimizer.opt_registry[name])
    assert fields and None not in fields.values(), fields


# ----- refusing fields -----
def header_of(blob):
    size = struct.unpack_from("<Q", blob, 16)[0]
    return json.loads(blob[24:24 + size]), blob[24 + size:]


def with_header(header, data):
    text = json.dumps(header).encode()
    return b"ONNXSYM-UPDATER\n" + struct.pack("<Q", len(text)) + text + data


def edit_attrs(blob, change, owner="optimizer"):
    """The blob with change(attrs) applied to the optimizer's (or its scheduler's) attrs, a {name: V} dict."""
    header, data = header_of(blob)
    entry = header["optimizer"]
    if owner == "scheduler":
        entry = dict(entry["attrs"]["dict"])["lr_scheduler"]
    attrs = dict(entry["attrs"]["dict"])
    change(attrs)
    entry["attrs"]["dict"] = [[k, v] for k, v in attrs.items()]
    return with_header(header, data)


def setter(name, value):
    return lambda attrs: attrs.__setitem__(name, value)


FIELD_CASES = [
    ("update", "not a method", "'update' is not a field of SGD"),
    ("__class__", {"list": []}, "'__class__' is not a field of SGD"),
    ("__dict__", {"dict": []}, "'__dict__' is not a field of SGD"),
    ("create_state", None, "'create_state' is not a field of SGD"),
    ("lr", "abc", "field 'lr' of SGD must be None or a number, got 'abc'"),
    ("momentum", None, "field 'momentum' of SGD must be a number"),
    ("momentum", {"ndarray": 0}, "field 'momentum' of SGD must be a number"),
    ("wd", True, "field 'wd' of SGD must be a number"),
    ("num_update", -1, "field 'num_update' of SGD must be a non-negative integer"),
    ("num_update", 2.5, "field 'num_update' of SGD must be a non-negative integer"),
    ("aggregate_num", 10 ** 30, "field 'aggregate_num'"),
    ("multi_precision", "yes", "field 'multi_precision' of SGD must be a bool"),
    ("lr_mult", {"dict": [[0, "x"]]}, "field 'lr_mult' of SGD must be a dict of"),
    ("lr_mult", {"list": [1]}, "field 'lr_mult'"),
    ("idx2name", {"dict": [[0, 5]]}, "field 'idx2name'"),
    ("_all_index_update_counts", {"dict": [[0, {"dict": [[0, "many"]]}]]}, "field '_all_index_update_counts'"),
    ("sym_info", {"tuple": [1, 2, 3]}, "field 'sym_info'"),
    ("lr_scheduler", {"optimizer": "sgd", "attrs": {"dict": []}}, "fields missing"),
    ("_current_device", "cpu", "field '_current_device'"),
    ("lr", None, "field 'lr' of SGD is None without an lr_scheduler"),
]


@pytest.mark.parametrize("field,value,match", FIELD_CASES, ids=lambda v: str(v)[:30])
def test_module_refuses_foreign_fields_naming_file_and_field(tmp_path, field, value, match):
    updater, weights = trained("sgd", momentum=0.9)
    path = tmp_path / "bad.states"
    path.write_bytes(edit_attrs(updater.get_states(dump_optimizer=True), setter(field, value)))
    fresh = make_updater("adam")
    before = fresh.optimizer
    with pytest.raises(MXNetError) as info:
        fresh._load_file(str(path), weights)
    assert "optimizer states file '%s'" % path in str(info.value) and match in str(info.value)
    assert fresh.optimizer is before and fresh.states == {}          # nothing half-loaded
    with pytest.raises(MXNetError, match="^Updater.set_states: .*" + field):
        fresh.set_states(path.read_bytes())


def test_aggregation_only_where_the_optimizer_aggregates():
    updater, _ = trained("adam")
    blob = edit_attrs(updater.get_states(dump_optimizer=True), setter("aggregate_num", 4))
    with pytest.raises(MXNetError, match="field 'aggregate_num' of Adam must be 0"):
        make_updater("sgd").set_states(blob)


def test_missing_field_is_refused():
    updater, _ = trained("adam")
    blob = edit_attrs(updater.get_states(dump_optimizer=True), lambda attrs: attrs.pop("beta1"))
    with pytest.raises(MXNetError, match="Adam fields missing: beta1"):
        make_updater("sgd").set_states(blob)


@pytest.mark.parametrize("field,value,match", [
    ("__call__", "x", "'__call__' is not a field of FactorScheduler"),
    ("base_lr", "abc", "field 'base_lr' of FactorScheduler must be a number"),
    ("step", 0, "field 'step' of FactorScheduler must be an integer >= 1"),      # would loop for ever
    ("step", 1e-300, "field 'step'"),
    ("count", -1e18, "updates behind num_update"),                              # a 10^18-step catch-up loop
    ("warmup_mode", 3, "field 'warmup_mode'"),
])
def test_scheduler_fields_are_checked(field, value, match):
    updater, _ = trained("sgd", lr_scheduler=lr_scheduler.FactorScheduler(step=2, base_lr=0.1))
    blob = edit_attrs(updater.get_states(dump_optimizer=True), setter(field, value), owner="scheduler")
    with pytest.raises(MXNetError, match=match):
        make_updater("sgd").set_states(blob)


def test_unknown_scheduler_class_is_refused():
    updater, _ = trained("sgd", lr_scheduler=lr_scheduler.FactorScheduler(step=2, base_lr=0.1))
    blob = updater.get_states(dump_optimizer=True).replace(b'"FactorScheduler"', b'"LRScheduler_"')
    blob = with_header(*header_of(blob))
    with pytest.raises(MXNetError, match="unknown lr_scheduler 'LRScheduler_'"):
        make_updater("sgd").set_states(blob)


# ----- refusing states that do not fit the parameters -----
def module(hidden, dtype="float32"):
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=hidden, name="fc")
    mod = mx.mod.Module(mx.sym.SoftmaxOutput(net, name="softmax"))
    mod.bind(data_shapes=[mx.io.DataDesc("data", (2, 4), dtype)], label_shapes=[("softmax_label", (2,))])
    mod.init_params()
    mod.init_optimizer(optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    mod.forward_backward(mx.io.DataBatch(data=[mx.nd.ones((2, 4))], label=[mx.nd.array([0, 1])]))
    mod.update()
    return mod


def test_module_round_trip_and_shape_mismatch(tmp_path):
    path = str(tmp_path / "net.states")
    module(3).save_optimizer_states(path)
    same = module(3)
    same.load_optimizer_states(path)
    with pytest.raises(MXNetError, match=r"optimizer states file '.*net.states': state of parameter 0 \(fc_weight\)"
                                         r": an array of shape \(3, 4\) float32, expected \(5, 4\) float32"):
        module(5).load_optimizer_states(path)
    bad = str(tmp_path / "bad.states")
    for field, value in [("update", "not a method"), ("lr", "abc")]:
        with open(bad, "wb") as handle:
            handle.write(edit_attrs(same._updater.get_states(dump_optimizer=True), setter(field, value)))
        with pytest.raises(MXNetError, match=r"optimizer states file '.*bad.states': .*'%s'" % field):
            same.load_optimizer_states(bad)


@pytest.mark.parametrize("mutate,match", [
    (lambda states: states.update({0: states[0].astype("float64")}), r"\(3, 4\) float64, expected \(3, 4\) float32"),
    (lambda states: states.update({0: (states[0], states[0])}), "a tuple of 2, expected an array"),
    (lambda states: states.update({0: None}), "None, expected an array"),
    (lambda states: states.update({7: states[0]}), "state for parameter index 7, which is not a parameter"),
])
def test_states_must_fit_their_parameters(tmp_path, mutate, match):
    updater, weights = trained("sgd", momentum=0.9)
    mutate(updater.states)
    path = tmp_path / "x.states"
    path.write_bytes(updater.get_states())
    with pytest.raises(MXNetError, match=match):
        make_updater("sgd", momentum=0.9)._load_file(str(path), weights)


def test_kvstore_checks_states_against_its_arrays(tmp_path):
    kv = mx.kv.create("local")
    kv.set_optimizer(mx.optimizer.create("sgd", momentum=0.9))
    kv.init(0, mx.nd.ones((2,)))
    kv.push(0, mx.nd.ones((2,)))
    path = str(tmp_path / "kv.states")
    kv.save_optimizer_states(path)
    other = mx.kv.create("local")
    other.set_optimizer(mx.optimizer.create("sgd", momentum=0.9))
    other.init(0, mx.nd.ones((3,)))
    with pytest.raises(MXNetError, match=r"kv.states.*shape \(2,\) float32, expected \(3,\) float32"):
        other.load_optimizer_states(path)


@pytest.mark.parametrize("depth", [100, 100000])
def test_deep_nesting_is_an_mxnet_error(depth):
    states = '{"list": [' * depth + "null" + "]}" * depth
    text = ('{"format": 1, "arrays": [], "optimizer": null, "states": {"dict": [[0, %s]]}}' % states).encode()
    blob = b"ONNXSYM-UPDATER\n" + struct.pack("<Q", len(text)) + text
    with pytest.raises(MXNetError, match="corrupt header|nested too deeply|state of parameter 0"):
        make_updater("sgd", momentum=0.9)._set_states(blob, "deep.states", make_weights())


# ----- fuzz -----
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["ndarray", "tuple", "list", "dict", "optimizer", "attrs", "scheduler", "dtype", "shape", "x"]), inner,
        max_size=2), max_leaves=8)
SEED_UPDATER, SEED_WEIGHTS = trained("lbsgd", momentum=0.9, batch_scale=2,
                                     lr_scheduler=lr_scheduler.FactorScheduler(step=2, base_lr=0.1))
SEED_BLOB = SEED_UPDATER.get_states(dump_optimizer=True)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def replaced(node, path, value):
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = replaced(node[path[0]], path[1:], value)
    return copy


def node_at(node, path):
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_files(draw):
    """SEED_BLOB with JSON values replaced (scalars deep in the attrs most often, or a copy of another part of
    the header: realistic values in the wrong place), bytes overwritten, or cut short."""
    header, data = header_of(SEED_BLOB)
    kind = draw(st.sampled_from(["leaf", "leaf", "graft", "graft", "any", "bytes", "cut"]))
    if kind in ("leaf", "graft", "any"):
        for _ in range(draw(st.integers(1, 3))):
            every = list(paths(header))
            fields = [p for p in every if "attrs" in p and p[-1] == 1 and p[-3] == "dict"]   # [name, value]
            where = draw(st.sampled_from(every if kind == "any" or not fields else fields))
            if kind == "graft":
                value = node_at(header, draw(st.sampled_from(every)))
            elif kind == "leaf":
                value = draw(JSON_VALUES.filter(lambda v: not isinstance(v, (list, dict))) | JSON_VALUES)
            else:
                value = draw(JSON_VALUES)
            header = replaced(header, where, value)
        return with_header(header, data)
    blob = bytearray(SEED_BLOB)
    if kind == "cut":
        return bytes(blob[:draw(st.integers(0, len(blob)))])
    for _ in range(draw(st.integers(1, 8))):
        blob[draw(st.integers(0, len(blob) - 1))] = draw(st.integers(0, 255))
    return bytes(blob)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_files())
def test_fuzzed_state_files_only_raise_mxnet_errors(blob):
    updater = make_updater("sgd")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        updater._set_states(blob, "fuzz.states", SEED_WEIGHTS)
        loaded = True
    except MXNetError:
        loaded = False
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 * len(blob) + (4 << 20)
    if loaded:      # what loads also updates (a value of the right type may still divide by zero)
        try:
            run(updater, {i: w.copy() for i, w in SEED_WEIGHTS.items()}, 2, seed=0)
        except ArithmeticError:
            pass
