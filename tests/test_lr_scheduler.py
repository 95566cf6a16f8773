"""mx.lr_scheduler against the lr sequences and log messages MXNet 1.9.1 produced (tests/fixtures/mxnet)."""
import json
import logging
import os

import pytest

from onnxsym.module import lr_scheduler

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet", "init_lr_scheduler.json")
with open(FIXTURE) as _handle:
    CASES = json.load(_handle)["cases"]


def _case_id(case):
    return "%s(%s)@%s" % (case["cls"], ",".join("%s=%s" % kv for kv in sorted(case["kwargs"].items())),
                          "-".join(map(str, case["updates"][:4])))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_schedule_matches_mxnet(case, caplog):
    scheduler = getattr(lr_scheduler, case["cls"])(**case["kwargs"])
    caplog.set_level(logging.INFO)
    for num_update, expected_lr, expected_logs in zip(case["updates"], case["lrs"], case["logs"]):
        caplog.clear()
        lr = scheduler(num_update)
        assert lr == pytest.approx(expected_lr, rel=1e-12, abs=1e-15), num_update
        assert [r.getMessage() for r in caplog.records] == expected_logs, num_update
    assert scheduler.base_lr == pytest.approx(case["final_base_lr"], rel=1e-12)


def test_fixture_covers_every_scheduler_and_warmup_mode():
    classes = {case["cls"] for case in CASES}
    assert classes == {"FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler"}
    for cls in classes:
        modes = {case["kwargs"].get("warmup_mode", "linear") for case in CASES
                 if case["cls"] == cls and case["kwargs"].get("warmup_steps", 0)}
        assert modes == {"linear", "constant"}, cls


def test_defaults_are_mxnets():
    base = lr_scheduler.LRScheduler()
    assert (base.base_lr, base.warmup_steps, base.warmup_begin_lr, base.warmup_mode) == (0.01, 0, 0, "linear")
    factor = lr_scheduler.FactorScheduler(5)
    assert (factor.factor, factor.stop_factor_lr, factor.base_lr, factor.count) == (1, 1e-8, 0.01, 0)
    poly = lr_scheduler.PolyScheduler(10)
    assert (poly.power, poly.final_lr, poly.max_steps) == (2, 0, 10)
    cosine = lr_scheduler.CosineScheduler(10, warmup_steps=4)
    assert (cosine.base_lr, cosine.final_lr, cosine.max_steps) == (0.01, 0, 6)
    with pytest.raises(NotImplementedError):
        base(1)


@pytest.mark.parametrize("build, error, words", [
    (lambda: lr_scheduler.LRScheduler(base_lr=0.1, warmup_begin_lr=0.2), ValueError, "warmup_begin_lr"),
    (lambda: lr_scheduler.LRScheduler(warmup_steps=-1), ValueError, "Warmup steps"),
    (lambda: lr_scheduler.LRScheduler(warmup_mode="cosine"), ValueError, "linear and constant"),
    (lambda: lr_scheduler.LRScheduler(warmup_steps=2.0), AssertionError, "warmup_steps"),
    (lambda: lr_scheduler.FactorScheduler(0), ValueError, "step"),
    (lambda: lr_scheduler.FactorScheduler(2, factor=1.5), ValueError, "Factor"),
    (lambda: lr_scheduler.MultiFactorScheduler([3, 3]), ValueError, "increasing"),
    (lambda: lr_scheduler.MultiFactorScheduler([0, 3]), ValueError, "step"),
    (lambda: lr_scheduler.MultiFactorScheduler((3, 5)), AssertionError, "list"),
    (lambda: lr_scheduler.MultiFactorScheduler([3], factor=2), ValueError, "Factor"),
    (lambda: lr_scheduler.PolyScheduler(0), ValueError, "strictly positive"),
    (lambda: lr_scheduler.PolyScheduler(10.0), AssertionError, "max_update"),
    (lambda: lr_scheduler.CosineScheduler(0), ValueError, "strictly positive"),
])
def test_bad_arguments_raise_mxnets_errors(build, error, words):
    with pytest.raises(error, match=words):
        build()
