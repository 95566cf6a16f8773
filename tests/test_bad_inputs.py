"""The bad-input table (issue 10): every user mistake of tests/fixtures/bad_input_cases.py raises the exception
type MXNet 1.9.1 raises (recorded by make_bad_input_fixtures.py; DEVIATIONS lists where onnxsym answers otherwise
and why) with a one-line message naming the culprit, and inputs MXNet accepts are accepted. Cases that reach ONNX
Runtime run in a subprocess, so that an abort there fails that case instead of killing the test run.
"""
import json
import pathlib
import subprocess
import sys

import pytest

import onnxsym as mx
from tests.fixtures.bad_input_cases import CASES, DEVIATIONS, record

ROOT = pathlib.Path(__file__).parent.parent
RECORDED = json.loads((ROOT / "tests" / "fixtures" / "mxnet" / "bad_input_cases.json").read_text())["cases"]
ISOLATED = sorted(name for name, case in CASES.items() if case.isolate)
IN_PROCESS = sorted(name for name, case in CASES.items() if not case.isolate)

_CHILD = """
import json, sys, warnings
warnings.simplefilter("ignore")
import onnxsym as mx
from tests.fixtures.bad_input_cases import CASES, record
for name in sys.argv[1:]:
    print(json.dumps([name, record(mx, CASES[name].build)]), flush=True)
"""


def _run_isolated(names, child=_CHILD):
    """{name: result} for cases run in child processes; a case that kills its process is recorded as a crash and
    the cases after it run in a new process."""
    results, pending = {}, list(names)
    while pending:
        proc = subprocess.run([sys.executable, "-c", child, *pending], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        for line in proc.stdout.splitlines():
            if line.startswith("["):
                name, result = json.loads(line)
                results[name] = result
        pending = [name for name in pending if name not in results]
        if pending and proc.returncode != 0:
            results[pending.pop(0)] = {"kind": "crash", "returncode": proc.returncode, "stderr": proc.stderr[-2000:]}
        elif pending:
            raise AssertionError("child process skipped %s: %s" % (pending, proc.stderr[-2000:]))
    return results


@pytest.fixture(scope="module")
def isolated_results():
    return _run_isolated(ISOLATED)


def _expected(name):
    """('ok', None) or ('error', exception type name) that onnxsym must give."""
    if name in DEVIATIONS:
        return "error", DEVIATIONS[name][0]
    recorded = RECORDED[name]
    return recorded["kind"], recorded.get("type")


def _check(name, got):
    case = CASES[name]
    kind, type_name = _expected(name)
    assert (kind == "ok") == (case.culprit is None), "the case's culprit disagrees with MXNet's record %s" % (
        RECORDED[name],)
    if kind == "ok":
        assert got == {"kind": "ok"}, "MXNet accepts this input, onnxsym gave %s" % (got,)
        return
    assert got["kind"] == "error", "MXNet raises %s, onnxsym gave %s" % (type_name, got)
    # MXNet raises RuntimeError where onnxsym raises MXNetError (itself a RuntimeError, as MXNet's)
    assert type_name in got["bases"], "MXNet raises %s, onnxsym %s: %s" % (type_name, got["type"], got["message"])
    message = got["message"].strip()
    assert "\n" not in message, "the error is not one line: %r" % message
    assert case.culprit in message, "the error does not name %r: %s" % (case.culprit, message)


@pytest.mark.parametrize("name", IN_PROCESS)
def test_bad_input(name):
    _check(name, record(mx, CASES[name].build))


@pytest.mark.parametrize("name", ISOLATED)
def test_bad_input_in_subprocess(name, isolated_results):
    _check(name, isolated_results[name])


def test_table_matches_the_recording():
    assert sorted(RECORDED) == sorted(CASES)
    assert len(CASES) >= 60
    assert not any(result["kind"] == "crash" for result in RECORDED.values())


@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_deviations_are_real(name):
    """Each listed deviation still differs from what MXNet was recorded doing (no stale entries)."""
    recorded = RECORDED[name]
    assert recorded["kind"] == "ok" or recorded["type"] != DEVIATIONS[name][0], recorded


def test_isolation_survives_a_crash():
    """A case that aborts its process is reported as a crash, and the cases after it still run."""
    child = ("import json, os, sys\n"
             "for name in sys.argv[1:]:\n"
             "    if name == 'b':\n"
             "        os.abort()\n"
             "    print(json.dumps([name, {'kind': 'ok'}]), flush=True)\n")
    results = _run_isolated(["a", "b", "c"], child)
    assert results["a"] == results["c"] == {"kind": "ok"}
    assert results["b"]["kind"] == "crash"
