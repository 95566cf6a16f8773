"""ONNX's backend node tests through onnxsym: import_model -> bind -> forward, against the recorded outputs.

    python tests/onnx_conformance.py NODE_DIR [NODE_DIR ...] [--jobs 2] [--json results.json] [--only SUBSTRING]

NODE_DIR: an `onnx/backend/test/data/node` folder of an onnx checkout (not committed here), e.g. from the onnx
repository at tag v1.16.2 (opsets <= 21) and at 6be0677 (the last commit before that folder was removed, newer
opsets): `git archive v1.16.2 onnx/backend/test/data/node | tar -x -C /tmp/v1.16.2`. Each case folder holds
model.onnx and test_data_set_0/{input,output}_*.pb.

Only cases plain ONNX Runtime itself runs correctly count (the same tolerance: rtol 1e-3, atol 1e-5 as onnx's
backend runner, exact for integers and NaN positions); a case is then `pass`, `wrong` (onnxsym ran and its numbers
differ: the worst outcome), or failed at `import`, `bind` or `run` (the first line of the error kept). Prints the
pass count per opset and the failure kinds, most frequent first.
"""
import argparse
import collections
import concurrent.futures
import glob
import json
import os
import signal
import sys

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
        if not tensor.name and not tensor.dims and not tensor.raw_data and tensor.data_type == 0:
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


def run_case(folder):
    """(case name, opset, outcome, detail)."""
    import onnx
    import onnxruntime as ort
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    name = os.path.basename(folder)
    try:
        model_path = os.path.join(folder, "model.onnx")
        model = onnx.load(model_path)
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        data = os.path.join(folder, "test_data_set_0")
        try:
            inputs, expected = _tensors(data, "input"), _tensors(data, "output")
        except ValueError as err:        # segmented tensors: numpy_helper cannot read them
            return name, 0, "excluded", "test data: " + _first_line(err)
        if inputs is None or expected is None:
            return name, opset, "excluded", "sequence or optional values"
        graph_inputs = [i.name for i in model.graph.input
                        if i.name not in {t.name for t in model.graph.initializer}]
        if len(graph_inputs) != len(inputs):
            return name, opset, "excluded", "optional inputs left out"
        feeds = dict(zip(graph_inputs, inputs))
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
            theirs = session.run(None, feeds)
        except Exception as err:  # noqa: BLE001 - counted as not run by ORT
            return name, opset, "excluded", "ORT: " + _first_line(err)
        if len(theirs) != len(expected) or not all(_close(a, b) for a, b in zip(theirs, expected)):
            return name, opset, "excluded", "ORT's numbers differ from the recorded outputs"
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default=None, help="run only cases whose name contains this")
    args = parser.parse_args()
    cases = {}
    for folder in args.folders:
        for case in sorted(glob.glob(os.path.join(folder, "test_*"))):
            if args.only and args.only not in os.path.basename(case):
                continue
            cases.setdefault(os.path.basename(case), case)      # the first folder given wins a name
    results = []
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for done, result in enumerate(pool.map(run_case, cases.values(), chunksize=8), start=1):
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
