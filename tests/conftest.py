"""Where onnxruntime-extensions is missing (Python 3.14: no wheel yet), the tests that need custom Python operators
report as skipped, with the reason, instead of failing: onnxsym refuses those operators there with one MXNetError
(runtime/pyops.py), checked by tests/test_runtime_check.py; everything else must pass."""
import importlib.util

import pytest

HAS_EXTENSIONS = importlib.util.find_spec("onnxruntime_extensions") is not None
_REFUSAL = "run inside ONNX Runtime through onnxruntime-extensions, which is not installed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if HAS_EXTENSIONS or not report.failed or call.excinfo is None:
        return
    if _REFUSAL in str(call.excinfo.value) or isinstance(call.excinfo.value, ModuleNotFoundError) and \
            call.excinfo.value.name == "onnxruntime_extensions":
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           "Skipped: needs onnxruntime-extensions (custom Python operators), not installed here")
