"""Mutation fuzzing of the model-file loaders (`mx.sym.load_json`, `mx.sym.load`, `mx.nd.load`,
`mx.model.load_checkpoint`), shared by tests/test_loader_fuzz.py (hypothesis, a few hundred cases in a subprocess)
and a long campaign run by hand, not in CI::

    python -m tests.fuzz_loaders campaign --cases 9000       # from the repository root

Seeds are small valid files written by MXNet (tests/fixtures/mxnet, tests/fixtures/legacy) and by onnxsym's own
writers. A mutated file must load, or raise one MXNetError that names the file: any other exception, a crash, a
hang or an allocation far beyond the file's size is a defect. The workers cap their address space (1 GiB above
what the imports use) so a memory bomb fails as a MemoryError instead of swapping the machine.
"""
import argparse
import copy
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
LOADERS = ("load_json", "sym.load", "nd.load", "load_checkpoint")
MEMORY_HEADROOM = 1 << 30

# ----- seeds -----
JSON_FIXTURES = ["legacy/save_000800.json", "mxnet/checkpoint_mlp-symbol.json", "mxnet/gluon_net-symbol.json"]
PARAMS_FIXTURES = ["params_checkpoint", "params_dict_dtypes", "params_legacy", "params_list", "params_single",
                   "params_v1", "params_v3", "params_empty", "checkpoint_mlp-0003", "gluon_net-0000"]


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def json_seeds():
    """MXNet-written and legacy symbol files, and onnxsym's JSON of a graph with a split, concat and BatchNorm."""
    import onnxsym as mx
    seeds = [_read(os.path.join(FIXTURES, name)) for name in JSON_FIXTURES]
    parts = mx.sym.SliceChannel(mx.sym.Variable("data"), num_outputs=2, name="split")
    net = mx.sym.Concat(parts[0], mx.sym.BatchNorm(parts[1], name="bn"), dim=1, name="cat")
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=3, name="fc"), name="softmax")
    return seeds + [net.tojson().encode("utf-8")]


def params_seeds():
    """MXNet-written `.params` files (V1, V2, V3, legacy, list, dict, empty) and onnxsym's own bytes."""
    import numpy as np
    import onnxsym as mx
    from onnxsym.ndarray import serialization
    seeds = [_read(os.path.join(FIXTURES, "mxnet", name + ".params")) for name in PARAMS_FIXTURES]
    arrays = {"arg:w": mx.nd.array(np.arange(6).reshape(2, 3)),
              "aux:m": mx.nd.array(np.arange(3, dtype=np.int64), dtype="int64"),
              "arg:h": mx.nd.array(np.ones((1, 1, 2)), dtype="float16")}
    return seeds + [serialization.dumps(arrays)]


def checkpoint_seed():
    """(symbol JSON, params) of the MXNet-written checkpoint fixture."""
    return (_read(os.path.join(FIXTURES, "mxnet", "checkpoint_mlp-symbol.json")),
            _read(os.path.join(FIXTURES, "mxnet", "checkpoint_mlp-0003.params")))


# ----- mutations -----
INTERESTING_INTS = [0, 1, -1, 2, 3, 12, 32, 33, 255, 0x112, 0x7FFFFFFF, -0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 40,
                    (1 << 63) - 1, -(1 << 63), 0xF993FAC8, 0xF993FAC9, 0xF993FACA]
JSON_TOKENS = [b"-1", b"0", b"1", b"2", b"4294967296", b"1e400", b"0.5", b"99999999999999999999999", b"NaN",
               b"Infinity", b"true", b"null", b'"0"', b'""', b"[]", b"{}", b"[[", b"]", b"}", b'"', b",", b":",
               b"\xff", b"\xc3", b"\\u0000", b'"null"', b'"Concat"', b'"SliceChannel"', b'"(1000000000, 3)"',
               b'"1000000000"', b"[" * 3000, b"{\"a\":" * 3000]
JSON_VALUES = [-1, 0, 1, 2, 7, 1 << 32, 1 << 70, 0.5, True, None, "", "0", "-1", "x", "null", "Concat", "SliceChannel",
               "1000000000", "(1000000000, 1000000000)", "(-1, 3)", "True", [], {}, [0], [0, 0], [0, 0, 0],
               [99, 0, 0], [0, 9, 0], [[0, 0, 0]], {"op": "null"}, {"op": "null", "name": "x"},
               {"num_outputs": "1000000000"}, {"num_args": "1000000000"}, {"mxnet_version": ["int", 800]}]
_JSON_TOKEN = re.compile(rb'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*"|true|false|null')
_ARRAY_MAGIC = re.compile(re.escape(b"\xc9\xfa\x93\xf9") + b"|" + re.escape(b"\xc8\xfa\x93\xf9") + b"|"
                          + re.escape(b"\xca\xfa\x93\xf9"))


def _put_int(data, pos, value, width):
    data[pos:pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def mutate_bytes(data, rng, tokens=()):
    """1 to 3 byte-level edits: replace, insert a token, delete, truncate, write an interesting integer, copy."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind, pos = rng.randrange(6), rng.randint(0, len(data))
        if kind == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif kind == 1 and tokens:
            data[pos:pos] = rng.choice(tokens)
        elif kind == 2:
            del data[pos:pos + rng.randint(1, 16)]
        elif kind == 3:
            del data[pos:]
        elif kind == 4:
            _put_int(data, pos, rng.choice(INTERESTING_INTS), rng.choice((4, 8)))
        elif kind == 5:
            start = rng.randint(0, len(data))
            data[pos:pos] = data[start:start + rng.randint(1, 64)]
    return bytes(data)


def mutate_params_fields(data, rng):
    """Interesting integers written over the header or an array's fields (stype, ndim, dims, context, dtype)."""
    data = bytearray(data)
    magics = [m.start() for m in _ARRAY_MAGIC.finditer(data)]
    for _ in range(rng.randint(1, 3)):
        if magics and rng.random() < 0.8:
            pos = rng.choice(magics) + rng.choice((0, 4, 8, 12, 16, 20, 24, 28, 32))
        else:
            pos = rng.choice((0, 8, 16, len(data) - 8, len(data) - 16))
        _put_int(data, max(pos, 0), rng.choice(INTERESTING_INTS), rng.choice((4, 8)))
    return bytes(data)


def mutate_json_tokens(data, rng):
    """1 to 3 JSON tokens (numbers, strings, literals) replaced by edge-case tokens."""
    for _ in range(rng.randint(1, 3)):
        matches = list(_JSON_TOKEN.finditer(data))
        if not matches:
            break
        match = rng.choice(matches)
        data = data[:match.start()] + rng.choice(JSON_TOKENS) + data[match.end():]
    return data


def _slots(value, out):
    """Every (container, key) under `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append((value, key))
        _slots(child, out)
    return out


def mutate_json_tree(data, rng):
    """1 to 3 edits of the parsed graph: replace a value, delete it, graft a copy of another one, duplicate it."""
    try:
        graph = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng, JSON_TOKENS)
    for _ in range(rng.randint(1, 3)):
        slots = _slots(graph, [])
        if not slots:
            break
        parent, key = rng.choice(slots)
        action = rng.randrange(4)
        if action == 0:
            parent[key] = copy.deepcopy(rng.choice(JSON_VALUES))
        elif action == 1:
            del parent[key]
        elif action == 2:
            other, other_key = rng.choice(slots)
            parent[key] = copy.deepcopy(other[other_key])
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return json.dumps(graph).encode("utf-8")


def mutate(kind, data, rng):
    """A mutated copy of one seed file: JSON (`kind` 'json') or .params bytes."""
    if kind == "json":
        strategy = rng.randrange(3)
        if strategy == 0:
            return mutate_json_tree(data, rng)
        return mutate_json_tokens(data, rng) if strategy == 1 else mutate_bytes(data, rng, JSON_TOKENS)
    return mutate_params_fields(data, rng) if rng.random() < 0.4 else mutate_bytes(data, rng)


# ----- running one case -----
class Defect(AssertionError):
    """A loader outcome other than success or an MXNetError naming the file."""


def _write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


class Case:
    """One loader and its seeds; `run(rng)` mutates a seed, loads it and says 'ok' or 'error' (else Defect)."""

    def __init__(self, loader, workdir):
        self.loader, self.workdir = loader, workdir
        if loader == "load_checkpoint":
            self.seeds = [checkpoint_seed()]
        else:
            self.seeds = json_seeds() if loader in ("load_json", "sym.load") else params_seeds()
        self.run(_Unchanged(), mutated=False)    # warm-up: the seeds load, and every import is done


    def make(self, rng, mutated=True):
        """(what to load, the label its errors must name, the mutated bytes)."""
        seed = rng.choice(self.seeds)
        change = mutate if mutated else (lambda kind, data, rng: data)
        if self.loader == "load_json":
            data = change("json", seed, rng)
            return data, "the JSON string", data
        if self.loader == "sym.load":
            path = os.path.join(self.workdir, "net-symbol.json")
            data = change("json", seed, rng)
            _write(path, data)
            return path, path, data
        if self.loader == "nd.load":
            path = os.path.join(self.workdir, "net-0000.params")
            data = change("params", seed, rng)
            _write(path, data)
            return path, path, data
        prefix = os.path.join(self.workdir, "ckpt")
        symbol, params = seed
        which = rng.randrange(2)
        data = change("json", symbol, rng) if which == 0 else change("params", params, rng)
        files = {0: prefix + "-symbol.json", 1: prefix + "-0003.params"}
        _write(files[0], data if which == 0 else symbol)
        _write(files[1], data if which == 1 else params)
        return prefix, files[which], data

    def load(self, target):
        import onnxsym as mx
        if self.loader == "load_json":
            sym = mx.sym.load_json(target)
        elif self.loader == "sym.load":
            sym = mx.sym.load(target)
        elif self.loader == "nd.load":
            return mx.nd.load(target)
        else:
            sym = mx.model.load_checkpoint(target, 3)[0]
        # what a loaded file is used for first: describing the model
        return sym.list_arguments(), sym.list_outputs(), sym.list_auxiliary_states(), sym.tojson()

    def run(self, rng, mutated=True):
        import onnxsym as mx
        target, label, data = self.make(rng, mutated)
        try:
            self.load(target)
        except mx.MXNetError as err:
            if label not in str(err):
                raise Defect("%s: the MXNetError does not name %s: %s\ninput: %r"
                             % (self.loader, label, str(err)[:500], data[:2000])) from err
            return "error"
        except Exception as err:  # noqa: BLE001 - any other type is the defect this fuzzing looks for
            raise Defect("%s raised %s: %s\ninput: %r\n%s" % (self.loader, type(err).__name__, str(err)[:500],
                                                              data[:2000], traceback.format_exc())) from err
        return "ok"


class _Unchanged(random.Random):
    """A Random whose `choice` is the first seed: the warm-up loads one unmutated file."""

    def choice(self, seq):
        return seq[0]


def limit_memory():
    """Cap the address space at what the process uses now plus MEMORY_HEADROOM."""
    with open("/proc/self/statm") as handle:
        used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + MEMORY_HEADROOM
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


# ----- hypothesis (tests/test_loader_fuzz.py runs this in a subprocess) -----
def run_hypothesis(loader, examples, deadline_ms):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    with tempfile.TemporaryDirectory() as workdir:
        case = Case(loader, workdir)
        limit_memory()

        @settings(max_examples=examples, deadline=deadline_ms, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.randoms(use_true_random=False))
        def fuzz(rng):
            case.run(rng)

        fuzz()
    print("%s: %d examples, only MXNetErrors naming the file" % (loader, examples))


# ----- the long campaign -----
def _alarm(signum, frame):
    raise TimeoutError("hang")


def run_batch(loader, seed, start, count, hang_s):
    """Worker: cases start..start+count-1 of one loader; prints one JSON line of results."""
    with tempfile.TemporaryDirectory() as workdir:
        case = Case(loader, workdir)
        limit_memory()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        signal.signal(signal.SIGALRM, _alarm)
        outcomes = {"ok": 0, "error": 0, "defect": 0, "hang": 0}
        defects, slowest = [], 0.0
        for index in range(start, start + count):
            rng = random.Random("%s-%d-%d" % (loader, seed, index))
            began = time.perf_counter()
            signal.alarm(hang_s)
            try:
                outcomes[case.run(rng)] += 1
            except Defect as err:
                outcomes["defect"] += 1
                defects.append({"case": index, "what": str(err)[:3000]})
            except TimeoutError:
                outcomes["hang"] += 1
                defects.append({"case": index, "what": "no answer in %d s" % hang_s})
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.perf_counter() - began)
        rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"loader": loader, "start": start, "count": count, "outcomes": outcomes,
                      "defects": defects, "slowest_s": slowest, "rss_start_kib": rss_start,
                      "rss_end_kib": rss_end}))


def campaign(cases, batch, seed, hang_s):
    """Every loader gets `cases` cases, `batch` per worker process; a worker that dies is a crash."""
    totals = {loader: {"ok": 0, "error": 0, "defect": 0, "hang": 0, "crash": 0} for loader in LOADERS}
    defects, growth, slowest = [], 0, 0.0
    began = time.time()
    for loader in LOADERS:
        for start in range(0, cases, batch):
            count = min(batch, cases - start)
            argv = [sys.executable, "-m", "tests.fuzz_loaders", "batch", loader, str(seed), str(start), str(count),
                    str(hang_s)]
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                totals[loader]["crash"] += 1
                defects.append({"loader": loader, "batch": start, "what": "worker exit %d: %s"
                                % (result.returncode, result.stderr[-2000:])})
                continue
            report = json.loads(result.stdout.strip().splitlines()[-1])
            for defect in report["defects"]:
                if defect["what"].startswith("no answer"):      # alone in a fresh worker: a real hang?
                    argv[5:7] = [str(defect["case"]), "1"]
                    began_case = time.time()
                    again = subprocess.run(argv, capture_output=True, text=True)
                    defect["rerun_alone"] = "%s in %.1f s" % (again.stdout.strip()[-200:], time.time() - began_case)
            for key, value in report["outcomes"].items():
                totals[loader][key] += value
            defects += [dict(d, loader=loader) for d in report["defects"]]
            growth = max(growth, report["rss_end_kib"] - report["rss_start_kib"])
            slowest = max(slowest, report["slowest_s"])
    kinds = {}
    for defect in defects:      # 'unnamed source', an exception type, 'hang' or 'worker exit'
        match = re.match(r"\S+ raised (\w+)", defect["what"])
        kind = match.group(1) if match else "unnamed source" if "does not name" in defect["what"] else \
            defect["what"].split(":")[0][:30]
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = {"cases_per_loader": cases, "seed": seed, "totals": totals, "defect_kinds": kinds,
               "slowest_case_s": round(slowest, 3),
               "max_rss_growth_in_a_batch_kib": growth, "wall_s": round(time.time() - began, 1),
               "defects": defects[:50], "defect_count": len(defects)}
    print(json.dumps(summary, indent=1))
    return 1 if defects else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hyp = sub.add_parser("hypothesis")
    hyp.add_argument("loader", choices=LOADERS)
    hyp.add_argument("--examples", type=int, default=200)
    hyp.add_argument("--deadline-ms", type=int, default=5000)
    bat = sub.add_parser("batch")
    for name, kind in (("loader", str), ("seed", int), ("start", int), ("count", int), ("hang_s", int)):
        bat.add_argument(name, type=kind)
    cam = sub.add_parser("campaign")
    cam.add_argument("--cases", type=int, default=9000, help="cases per loader")
    cam.add_argument("--batch", type=int, default=500)
    cam.add_argument("--seed", type=int, default=0)
    cam.add_argument("--hang-s", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "hypothesis":
        run_hypothesis(args.loader, args.examples, args.deadline_ms)
    elif args.command == "batch":
        run_batch(args.loader, args.seed, args.start, args.count, args.hang_s)
    else:
        sys.exit(campaign(args.cases, args.batch, args.seed, args.hang_s))


if __name__ == "__main__":
    main()
