"""ONNX's backend node tests through onnxsym: import_model -> bind -> forward, against the recorded outputs.

    python tests/onnx_conformance.py NODE_DIR [NODE_DIR ...] [--jobs 2] [--json results.json] [--only SUBSTRING]
                                     [--gradients]

NODE_DIR: an `onnx/backend/test/data/node` folder of an onnx checkout (not committed here), e.g. from the onnx
repository at tag v1.16.2 (opsets <= 21) and at 6be0677 (the last commit before that folder was removed, newer
opsets): `git archive v1.16.2 onnx/backend/test/data/node | tar -x -C /tmp/v1.16.2`. Each case folder holds
model.onnx and test_data_set_0/{input,output}_*.pb.

Only cases plain ONNX Runtime itself runs correctly count (the same tolerance: rtol 1e-3, atol 1e-5 as onnx's
backend runner, exact for integers and NaN positions); a case is then `pass`, `wrong` (onnxsym ran and its numbers
differ: the worst outcome), or failed at `import`, `bind` or `run` (the first line of the error kept). Prints the
pass count per opset and the failure kinds, most frequent first.

--gradients checks onnxsym's gradients instead, on every single-node case with a floating-point input and output:
the model is turned to float64 (inputs, initializers, Cast targets, constants), onnxsym's backward of a random head
gradient is compared with differences of plain ORT running that float64 model, or of onnx's reference
implementation where ORT has no float64 kernel for the op (a sample of up to 32 elements per input; at a kink any
subgradient passes, at a jump nothing is checked: see _check_gradient). Every floating-point input is checked (Pow's exponent, Clip's bounds, PRelu's slope, BatchNorm's
statistics), except those the op defines as settings rather than values (Resize's roi and scales), whose gradient
must be zeros. Where ORT has no float64 kernel for the op the check runs in float32 with a wider step and tolerance.
"""
import argparse
import collections
import concurrent.futures
import glob
import json
import os
import signal
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RTOL, ATOL = 1e-3, 1e-5
TIMEOUT = 60


def _tensors(folder, kind):
    import onnx
    from onnx import numpy_helper
    values = []
    for path in sorted(glob.glob(os.path.join(folder, "%s_*.pb" % kind)),
                       key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0])):
        with open(path, "rb") as f:
            data = f.read()
        tensor = onnx.TensorProto()
        try:
            tensor.ParseFromString(data)
        except Exception:  # noqa: BLE001 - sequences, optionals: not tensors
            return None
        if tensor.data_type == 0:       # an empty optional, or not a tensor at all
            return None
        values.append(numpy_helper.to_array(tensor))
    return values


def _close(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if expected.dtype.kind in "fc":
        return np.allclose(actual.astype(np.float64) if expected.dtype != np.float64 else actual,
                           expected.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)
    if expected.dtype.kind in "US":
        return np.array_equal(actual.astype(str), expected.astype(str))
    return np.array_equal(actual, expected)


def _first_line(err):
    text = ("%s: %s" % (type(err).__name__, err)).strip().splitlines()
    line = text[0] if text else type(err).__name__
    if "model.onnx: " in line:           # onnxsym's file errors name the file: keep the reason
        line = "%s: %s" % (type(err).__name__, line.split("model.onnx: ", 1)[1])
    return line[:240]


def _alarm(*_):
    raise TimeoutError("over %d s" % TIMEOUT)


def _ort(model):
    """A plain ORT CPU session of `model` (a path or a ModelProto)."""
    import onnxruntime as ort
    ort.set_default_logger_severity(4)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _load_case(folder):
    """(model, opset, feeds, ORT's outputs) of a case ORT runs correctly, or the (opset, reason) it is excluded for."""
    import onnx
    model = onnx.load(os.path.join(folder, "model.onnx"))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    data = os.path.join(folder, "test_data_set_0")
    try:
        inputs, expected = _tensors(data, "input"), _tensors(data, "output")
    except ValueError as err:        # segmented tensors: numpy_helper cannot read them
        return 0, "test data: " + _first_line(err)
    if inputs is None or expected is None:
        return opset, "sequence or optional values"
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(graph_inputs) != len(inputs):
        return opset, "optional inputs left out"
    feeds = dict(zip(graph_inputs, inputs))
    try:
        theirs = _ort(os.path.join(folder, "model.onnx")).run(None, feeds)
    except Exception as err:  # noqa: BLE001 - counted as not run by ORT
        return opset, "ORT: " + _first_line(err)
    if len(theirs) != len(expected) or not all(_close(a, b) for a, b in zip(theirs, expected)):
        return opset, "ORT's numbers differ from the recorded outputs"
    return model, opset, feeds, theirs


def run_case(folder):
    """(case name, opset, outcome, detail)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    name = os.path.basename(folder)
    try:
        model_path = os.path.join(folder, "model.onnx")
        loaded = _load_case(folder)
        if len(loaded) == 2:
            return (name, *loaded[:1], "excluded", loaded[1])
        _, opset, feeds, expected = loaded
        import onnxsym as mx
        try:
            sym, args, auxs = mx.onnx.import_model(model_path, input_shapes={k: v.shape for k, v in feeds.items()})
        except Exception as err:  # noqa: BLE001 - reported
            return name, opset, "import", _first_line(err)
        try:
            arrays = {k: mx.nd.NDArray(np.asarray(v, order="C")) for k, v in feeds.items()}
            exe = sym.bind(mx.cpu(), args={**args, **arrays}, aux_states=auxs)
        except Exception as err:  # noqa: BLE001 - reported
            return name, opset, "bind", _first_line(err)
        try:
            ours = [o.asnumpy() for o in exe.forward()]
        except Exception as err:  # noqa: BLE001 - reported
            return name, opset, "run", _first_line(err)
        if len(ours) != len(expected) or not all(_close(a, b) for a, b in zip(ours, expected)):
            worst = [("shape %s vs %s" % (np.shape(a), np.shape(b))) if np.shape(a) != np.shape(b) else
                     "max abs diff %.3g" % np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
                     if np.asarray(b).dtype.kind in "fciub" else "values differ"
                     for a, b in zip(ours, expected) if not _close(a, b)]
            return name, opset, "wrong", "; ".join(worst[:2])
        return name, opset, "pass", ""
    except TimeoutError as err:
        return name, 0, "run", _first_line(err)
    except Exception as err:  # noqa: BLE001 - the harness itself must not stop
        return name, 0, "run", "harness: " + _first_line(err)
    finally:
        signal.alarm(0)


# Floating-point inputs an op defines as settings, not values: their gradient must be zeros. (op type, input index)
# Resize's roi and scales; the boxes of RoiAlign and MaxRoiPool, which MXNet's ROIAlign / ROIPooling (and
# torchvision's roi_align) do not differentiate either; Dropout's ratio; MelWeightMatrix's band edges.
SETTINGS = {("Resize", 1), ("Resize", 2), ("Upsample", 1), ("RoiAlign", 1), ("MaxRoiPool", 1), ("Dropout", 1),
            ("MelWeightMatrix", 3), ("MelWeightMatrix", 4)}
SAMPLES = 32
BUDGET = 20      # seconds of differences per input, at most


def _schema_attributes(node):
    import onnx
    try:
        return onnx.defs.get_schema(node.op_type, domain=node.domain).attributes
    except Exception:  # noqa: BLE001 - not a standard op
        return {}


def _float64(model, stash=True):
    """A copy of `model` computing in float64: every floating-point value, initializer, constant, Cast target and
    normalization's stash_type."""
    import onnx
    from onnx import TensorProto, numpy_helper
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    model = onnx.ModelProto.FromString(model.SerializeToString())

    def tensor(t):
        if t.data_type in floats:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))

    def graph(g):
        for value in (*g.input, *g.output, *g.value_info):
            if value.type.tensor_type.elem_type in floats:
                value.type.tensor_type.elem_type = TensorProto.DOUBLE
        for t in g.initializer:
            tensor(t)
        for node in g.node:
            if stash and "stash_type" in _schema_attributes(node) and not any(a.name == "stash_type" for a in node.attribute):
                node.attribute.append(onnx.helper.make_attribute("stash_type", TensorProto.DOUBLE))
            for a in node.attribute:
                if a.name in ("to", "dtype", "stash_type") and a.type == onnx.AttributeProto.INT and a.i in floats:
                    a.i = TensorProto.DOUBLE
                if a.type == onnx.AttributeProto.TENSOR:
                    tensor(a.t)
                if a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)
    graph(model.graph)
    return model


def _constants_made_initializers(model, feeds):
    """`model` with its non-floating-point inputs (shapes, pads, axes, indices) as initializers holding the case's
    values, as exported models hold them; the floating-point feeds left."""
    from onnx import numpy_helper
    fixed = {k: v for k, v in feeds.items() if v.dtype.kind not in "fc"}
    kept = [i for i in model.graph.input if i.name not in fixed]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in fixed.items())
    return model, {k: v for k, v in feeds.items() if k not in fixed}


def _check_gradient(name, x, ours, loss, rng, float64, ours_float64, half=False):
    """None, or what is wrong with `ours` (d loss / d x) at a sample of elements, against differences.

    Each element gets one-sided differences at steps h and h/2: where they agree (or their gap halves with the
    step) the function is smooth there and `ours` must match the central difference; where the gap stays, it is
    a kink and any value between the one-sided slopes passes (a subgradient); where they grow as the step shrinks
    (a jump: Sign at 0, a rounding boundary, an output whose shape changes), nothing is checked."""
    flat = x.reshape(-1)
    scale = max(1.0, float(np.max(np.abs(ours))) if ours.size else 1.0)
    # float64: a step of 1e-3 (central differences' error ~1e-7) and 1e-3 relative, which a float32 step inside a
    # float64 kernel (onnx's reference Gelu: its Erf is float32) stays below; real errors are larger
    # float32 differences: Richardson-extrapolated, the outputs' rounding added to the tolerance, 2e-3
    rtol, atol = (2e-3, 1e-4) if not float64 else (1e-3, 1e-5) if ours_float64 else (2e-3, 2e-4)
    if half:        # onnxsym's gradient of a float16 model, itself float16 (the heads rounded too)
        rtol, atol = 2e-2, 2e-3
    atol *= scale
    started = time.perf_counter()
    base = loss(x)[0]
    # fewer elements where one run is slow (onnx's reference 3-D pooling: about a second), to fit the time limit
    samples = max(4, min(SAMPLES, int(BUDGET / (4 * (time.perf_counter() - started) + 1e-9))))
    for i in rng.choice(flat.size, min(flat.size, samples), replace=False):
        # absolute steps (softmax of 10000s varies by units there), relative below 1 (a variance of 1e-3 is near
        # its singularity), widened only where the values are so large that the step would vanish in rounding;
        # an element that fails is tried again with steps 10x larger, once: noise of a float32 step inside a
        # truth kernel shrinks with a larger step, a wrong gradient does not
        size = abs(float(flat[i]))
        h = max(1e-3 * min(1.0, max(size, 1e-3)), 1e-9 * size) if float64 else max(1e-2, 3e-4 * size)
        verdict = None
        for step in (h, 10 * h):
            verdict = _element_verdict(x, flat, i, float(ours.reshape(-1)[i]), base, loss, step, rtol, atol)
            if verdict is None:
                break
        if verdict is not None:
            return "%s[%d]: %s" % (name, i, verdict)
    return None


def _element_verdict(x, flat, i, mine, base, loss, h, rtol, atol):
    """None if `mine` is d loss / d x[i] as far as one-sided differences at steps h and h/2 tell (see
    _check_gradient), else what is wrong."""
    slopes, noise = {}, 0.0
    for step in (h, h / 2):
        for sign in (1, -1):
            moved = flat.copy()
            moved[i] += sign * step
            value, rounding = loss(moved.reshape(x.shape))
            slopes[step, sign] = sign * (value - base) / step
            noise = max(noise, 4 * rounding / step)
    (r1, l1), (r2, l2) = (slopes[h, 1], slopes[h, -1]), (slopes[h / 2, 1], slopes[h / 2, -1])
    if not np.all(np.isfinite([r1, l1, r2, l2])):
        return None
    tol = atol + noise + rtol * max(abs(r1), abs(l1), abs(r2), abs(l2))
    if abs(r2 - r1) > 0.5 * abs(r1) + tol or abs(l2 - l1) > 0.5 * abs(l1) + tol:     # a jump
        return None
    if abs(r2 - l2) <= tol or abs(r2 - l2) < 0.75 * abs(r1 - l1):      # smooth here: Richardson's estimate
        if abs(mine - (4 * (r2 + l2) - (r1 + l1)) / 6) <= tol:
            return None
    elif min(r2, l2) - tol <= mine <= max(r2, l2) + tol:     # a kink: any subgradient
        return None
    return "onnxsym %.6g, one-sided differences %.6g / %.6g (step %.3g)" % (mine, l2, r2, h / 2)


def _precise(session, feeds):
    """Whether `session` computes in float64: some kernels compute in float32 whatever the input (ORT's float64
    Shrink, onnx's reference Erf), and their differences would be float32 noise. Relative changes of 1e-9 and 2e-9
    of the inputs, below float32's resolution, must move most elements of some output, the second twice as far as
    the first (float32 rounding moves them by whole float32 steps, or not at all)."""
    def nudged(scale):
        return session.run(None, {k: v * (1 + scale) + scale * 1e-3 if v.dtype.kind == "f" else v
                                  for k, v in feeds.items()})
    base, once, twice = session.run(None, feeds), nudged(1e-9), nudged(2e-9)
    for a, b, c in zip(base, once, twice):
        a, b, c = (np.asarray(v) for v in (a, b, c))
        if a.dtype.kind != "f" or not a.size:
            continue
        moved = b != a
        if np.mean(moved) < 0.5:
            continue
        first, second = (b - a)[moved], (c - a)[moved]
        if np.median(np.abs(second - 2 * first) / np.abs(first)) < 1e-2:
            return True
    return False


def _float64_runner(model, feeds, expected):
    """Something with run(None, feeds) computing the float64 `model` in float64 with the case's numbers (those of
    ORT on the float32 case): ORT, or where ORT has no (right) float64 kernel for the op, onnx's reference
    implementation (numpy); None if neither does."""
    try:
        session = _ort(model)       # (onnxruntime 1.23's float64 Attention is off by 0.3: checked against the case)
        if all(_close(a, b) for a, b in zip(session.run(None, feeds), expected)) and _precise(session, feeds):
            return session
    except Exception:  # noqa: BLE001 - no float64 kernel
        pass
    try:
        from onnx.reference import ReferenceEvaluator
        session = ReferenceEvaluator(model)
        if all(_close(a, b) for a, b in zip(session.run(None, feeds), expected)) and _precise(session, feeds):
            return session
    except Exception:  # noqa: BLE001 - the reference lacks the op
        pass
    return None


def run_gradient_case(folder):
    """(case name, opset, outcome, detail) of onnxsym's gradients of a single-node case against differences."""
    import zlib
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    name = os.path.basename(folder)
    try:
        loaded = _load_case(folder)
        if len(loaded) == 2:
            return (name, *loaded[:1], "excluded", loaded[1])
        model, opset, feeds, theirs = loaded
        if len(model.graph.node) != 1:
            return name, opset, "excluded", "not a single node"
        node = model.graph.node[0]
        float_inputs = [k for k, v in feeds.items() if v.dtype.kind == "f" and v.size]
        if not float_inputs or not any(o.type.tensor_type.elem_type in (1, 10, 11, 16) for o in model.graph.output):
            return name, opset, "excluded", "no floating-point input and output"
        model, feeds = _constants_made_initializers(model, feeds)
        own_feeds = dict(feeds)         # in the case's dtypes (float16 stays float16)
        float64 = True
        wide_feeds = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in feeds.items()}
        for stash in (True, False):     # normalizations in float64 where a kernel has it, else as they are
            wide = _float64(model, stash)
            session = _float64_runner(wide, wide_feeds, theirs)
            if session is not None:
                break
        if session is not None:
            feeds = wide_feeds
        elif all(v.dtype == np.float32 for v in feeds.values() if v.dtype.kind == "f"):
            wide, session, float64 = model, _ort(model), False
        else:
            return name, opset, "excluded", "no float64 kernel in ORT or onnx's reference, and not float32"
        first, again = session.run(None, feeds), session.run(None, feeds)
        if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again)):
            return name, opset, "excluded", "random outputs"
        if not all(np.all(np.isfinite(o)) for o in first if o.dtype.kind == "f"):
            return name, opset, "excluded", "outputs not finite"
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        heads = [rng.standard_normal(o.shape).astype(o.dtype) if o.dtype.kind == "f" else None for o in first]

        def loss(values):
            """(sum of heads * outputs, the most its rounding can move from the base run's: the outputs that
            changed, times their dtype's resolution, both runs)."""
            outs = session.run(None, {**feeds, **values})
            if any(h is not None and h.shape != o.shape for h, o in zip(heads, outs)):
                return np.nan, 0.0
            value = sum(float(np.sum(h.astype(np.float64) * o)) for h, o in zip(heads, outs) if h is not None)
            rounding = sum(float(np.finfo(o.dtype).eps) *
                           float(np.sum((np.abs(h.astype(np.float64)) * (np.abs(o) + np.abs(b)))[o != b]))
                           for h, o, b in zip(heads, outs, first) if h is not None)
            return value, rounding

        import tempfile
        import onnxsym as mx
        ours_float64 = float64 and type(session).__name__ == "InferenceSession"    # onnxsym: float64 where ORT is
        mine = wide if ours_float64 else model
        my_feeds = feeds if ours_float64 else own_feeds
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            with open(path, "wb") as f:
                f.write(mine.SerializeToString())
            try:
                sym, args, auxs = mx.onnx.import_model(path, input_shapes={k: v.shape for k, v in feeds.items()})
            except Exception as err:  # noqa: BLE001 - reported
                return name, opset, "import", _first_line(err)
        try:
            arrays = {k: mx.nd.NDArray(np.asarray(v, order="C")) for k, v in my_feeds.items()}
            grads = {k: mx.nd.NDArray(np.zeros_like(my_feeds[k])) for k in float_inputs}
            exe = sym.bind(mx.cpu(), args={**args, **arrays}, args_grad=grads, aux_states=auxs,
                           grad_req={k: "write" if k in grads else "null" for k in sym.list_arguments()})
            outs = [o.asnumpy() for o in exe.forward(is_train=True)]
            exe.backward([mx.nd.NDArray(h.astype(o.dtype)) if h is not None else None for h, o in zip(heads, outs)])
            ours = {k: g.asnumpy() for k, g in grads.items()}
        except Exception as err:  # noqa: BLE001 - reported
            return name, opset, "backward", _first_line(err)
        if not all(_close(a, b) for a, b in zip(outs, first)):
            return name, opset, "wrong", "forward differs from ORT's in float%d" % (64 if ours_float64 else 32)
        slots = {k: i for i, k in enumerate(node.input)}
        for k in float_inputs:
            if (node.op_type, slots.get(k)) in SETTINGS:
                if np.any(ours[k]):
                    return name, opset, "wrong", "%s is a setting: its gradient must be zeros" % k
                continue
            wrong = _check_gradient(k, feeds[k], ours[k], lambda v, k=k: loss({k: v}), rng, float64,
                                    ours_float64, ours[k].dtype == np.float16)
            if wrong:
                return name, opset, "wrong", wrong
        return name, opset, "pass", "float64" if ours_float64 else "float64 differences" if float64 else "float32"
    except TimeoutError as err:
        return name, 0, "run", _first_line(err)
    except Exception as err:  # noqa: BLE001 - the harness itself must not stop
        return name, 0, "run", "harness: " + _first_line(err)
    finally:
        signal.alarm(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default=None, help="run only cases whose name contains this")
    parser.add_argument("--gradients", action="store_true", help="check gradients of the single-node cases")
    args = parser.parse_args()
    cases = {}
    for folder in args.folders:
        for case in sorted(glob.glob(os.path.join(folder, "test_*"))):
            if args.only and args.only not in os.path.basename(case):
                continue
            cases.setdefault(os.path.basename(case), case)      # the first folder given wins a name
    results = []
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for done, result in enumerate(pool.map(run_gradient_case if args.gradients else run_case, cases.values(), chunksize=8), start=1):
            results.append(result)
            if done % 200 == 0:
                print("  %d / %d cases" % (done, len(cases)), file=sys.stderr, flush=True)
    counted = [r for r in results if r[2] != "excluded"]
    by_opset = collections.defaultdict(collections.Counter)
    for _, opset, outcome, _ in counted:
        by_opset[opset][outcome] += 1
    passed = sum(1 for r in counted if r[2] == "pass")
    print("cases ORT runs correctly: %d of %d; onnxsym passes %d (%.1f%%), wrong numbers: %d"
          % (len(counted), len(results), passed, 100.0 * passed / max(1, len(counted)),
             sum(1 for r in counted if r[2] == "wrong")))
    for opset in sorted(by_opset):
        c = by_opset[opset]
        print("  opset %2d: %4d / %4d pass  %s" % (opset, c["pass"], sum(c.values()),
                                                  ", ".join("%s %d" % kv for kv in sorted(c.items()) if kv[0] != "pass")))
    kinds = collections.Counter((r[2], r[3].split(" (node")[0][:120]) for r in counted if r[2] != "pass")
    print("failure kinds (most frequent first):")
    for (outcome, detail), count in kinds.most_common(40):
        print("  %4d  %-6s %s" % (count, outcome, detail))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dict(zip(("case", "opset", "outcome", "detail"), r)) for r in results], f, indent=1)


if __name__ == "__main__":
    main()
