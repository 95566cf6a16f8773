"""Deviations from MXNet 1.9.1 on purpose (DEVIATIONS.md): onnxsym gives the exact value, and the fixture recorded
from MXNet 1.9.1 itself (fixtures/make_deviation_fixtures.py) shows that MXNet does not, so the list stays true."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx

from .fixtures.deviation_cases import CASES

with open(os.path.join(os.path.dirname(__file__), "fixtures", "mxnet", "deviation_cases.json")) as _handle:
    RECORDED = json.load(_handle)["cases"]
with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "DEVIATIONS.md")) as _handle:
    DOC = _handle.read()


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnxsym_gives_the_exact_value_where_mxnet_does_not(name):
    got = CASES[name](mx)
    np.testing.assert_allclose(got["grad"], got["exact"], rtol=1e-5, atol=1e-6)
    mxnet = RECORDED[name]
    np.testing.assert_allclose(mxnet["exact"], got["exact"], rtol=1e-5, atol=1e-6)   # the same question
    assert not np.allclose(mxnet["grad"], mxnet["exact"], rtol=1e-3, atol=1e-4), "MXNet agrees now: update the doc"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_tested_deviation_is_documented(name):
    assert "`%s`" % name in DOC


def test_every_bad_input_deviation_is_documented():
    from .fixtures.bad_input_cases import DEVIATIONS
    for name, (exception, _) in DEVIATIONS.items():
        assert "| `%s` |" % name in DOC and "`%s`" % exception in DOC, name
