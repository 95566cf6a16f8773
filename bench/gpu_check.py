"""The GPU check: every op test case forward and backward on mx.gpu(0) against mx.cpu(), then ResNet-50 images/s.

    python bench/gpu_check.py [--ops-only | --resnet-only] [--repeat 5]        (bench/gpu_check.sh runs it)

1. Op registry: each case of tests/ops (the op families' CASES, up to 2 per op) bound on both devices with the same
   inputs: forward(is_train=True), backward() with a fixed head gradient; the max relative error per op of the
   outputs and of every gradient (|gpu - cpu| / max(1, |cpu|)), worst first, and the ops that fail on the GPU.
2. ResNet-50 (v1, 224x224): inference at batch 64 and a training step at batch 32, images/s through onnxsym
   (a bound Executor; forward / forward(is_train=True) + backward()) and through raw ONNX Runtime on the same graphs
   (the exported inference .onnx, the fused gradient graph) with IOBinding and device-resident inputs.
Prints one line per figure; exit status 1 if an op disagrees by more than 1e-3 or fails on the GPU only.
Under ONNXSYM_GPU_EMULATION=1 it runs on the CPU as a smoke test of the script itself (figures meaningless):
    ONNXSYM_GPU_EMULATION=1 python bench/gpu_check.py --max-cases 40 --batches 2,2 --image 64 --repeat 1
"""
import argparse
import os
import sys
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import onnxsym as mx  # noqa: E402
from _common import fused_training_session, per_call  # noqa: E402
from onnxsym.runtime.device import device_of  # noqa: E402
from onnxsym.runtime.ort import ort, providers_for  # noqa: E402

TOLERANCE = 1e-3
RANDOM = {"Dropout"}        # its masks differ between devices: run for errors, values not compared


def _op_cases():
    from onnxsym.ops.registry import all_ops
    from tests.ops import test_gradients
    cases = []
    for name in sorted(all_ops()):
        picked = test_gradients.GRADIENT_CASES.get(name) or test_gradients.CASES.get(name, [])
        cases += [(name, case) for case in picked[:2]]
    return cases


def _run(case, ctx, arrays):
    sym = case.symbol()
    args = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype, ctx=ctx) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype, ctx=ctx) for n in sym.list_auxiliary_states()}
    floats = [n for n in sym.list_arguments() if np.issubdtype(arrays[n].dtype, np.floating)
              and n not in case.int_inputs]
    grads = {n: mx.nd.zeros(arrays[n].shape, ctx=ctx, dtype=arrays[n].dtype) for n in floats}
    exe = sym.bind(ctx, args=args, args_grad=grads, grad_req={n: ("write" if n in grads else "null")
                                                                for n in sym.list_arguments()}, aux_states=aux)
    outputs = [o.asnumpy() for o in exe.forward(is_train=True)]
    heads = [mx.nd.array(np.random.RandomState(i).uniform(0.1, 1.1, o.shape), dtype=o.dtype, ctx=ctx)
             if np.issubdtype(o.dtype, np.floating) else None for i, o in enumerate(outputs)]
    try:
        exe.backward([h for h in heads if h is not None] if any(h is not None for h in heads) else None)
        gradients = {n: g.asnumpy() for n, g in grads.items()}
    except mx.MXNetError as err:
        if "not differentiable" in str(err) or "no gradient" in str(err):
            gradients = {}
        else:
            raise
    return outputs, gradients


def _relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return np.inf
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return np.inf
    if not finite.any():
        return 0.0
    return float((np.abs(a - b)[finite] / np.maximum(1.0, np.abs(b)[finite])).max())


def check_ops(max_cases=None):
    worst, failures = {}, []
    cases = _op_cases()[:max_cases]
    print("== op registry on gpu(0) vs cpu(0): %d cases" % len(cases), flush=True)
    for position, (name, case) in enumerate(cases):
        sym = case.symbol()
        arrays = case.inputs(sym)
        try:
            cpu = _run(case, mx.cpu(), arrays)
        except Exception:  # noqa: BLE001 - a case the CPU cannot run either says nothing about the GPU
            continue
        try:
            gpu = _run(case, mx.gpu(0), arrays)
        except Exception as err:  # noqa: BLE001 - reported
            failures.append((name, str(case), "".join(traceback.format_exception_only(type(err), err)).strip()))
            continue
        if name in RANDOM:
            continue
        errors = [_relative(g, c) for g, c in zip(gpu[0], cpu[0])]
        errors += [_relative(gpu[1][n], cpu[1][n]) for n in cpu[1] if n in gpu[1]]
        worst[name] = max([worst.get(name, 0.0)] + errors)
        if (position + 1) % 100 == 0:
            print("  %d / %d cases" % (position + 1, len(cases)), flush=True)
    ranked = sorted(worst.items(), key=lambda kv: -kv[1])
    print("ops checked: %d; max relative error over all: %.3g" % (len(worst), ranked[0][1] if ranked else 0))
    for name, error in ranked[:15]:
        print("  %-32s %.3g" % (name, error))
    for name, case, message in failures:
        print("  FAILED on gpu only: %s (%s): %s" % (name, case, message.splitlines()[-1][:200]))
    bad = [n for n, e in ranked if e > TOLERANCE]
    print("ops above %.0e: %s" % (TOLERANCE, ", ".join(bad) or "none"))
    return not bad and not failures


def _images_per_second(fn, batch, repeat):
    fn()
    fn()
    return batch / per_call(fn, 1, repeat)


def check_resnet(repeat, batches=(64, 32), image=224):
    from onnxsym.models import resnet
    sym = resnet.get_symbol(num_classes=1000, num_layers=50, image_shape=(3, 224, 224))
    rng = np.random.RandomState(0)
    print("== ResNet-50 %dx%d on gpu(0) (onnxruntime %s, %s)" % (image, image, ort.__version__, ort.get_device()),
          flush=True)
    for batch, training in zip(batches, (False, True)):
        exe = sym.simple_bind(mx.gpu(0), data=(batch, 3, image, image),
                              grad_req="write" if training else "null")
        for name, arr in exe.arg_dict.items():
            arr[:] = rng.randint(0, 1000, arr.shape) if name == "softmax_label" else \
                rng.uniform(-0.05, 0.05, arr.shape)
        for name, arr in exe.aux_dict.items():
            arr[:] = 1.0 if name.endswith("var") else 0.0
        if training:
            def step():
                exe.forward(is_train=True)
                exe.backward()
                exe.grad_dict["fc1_weight"].asnumpy()
            ours = _images_per_second(step, batch, repeat)
            model, session = fused_training_session(exe, [n for n in exe.arg_dict if n not in ("data",
                                                                                                "softmax_label")])
        else:
            def step():
                exe.forward()
                exe.outputs[0].asnumpy()
            ours = _images_per_second(step, batch, repeat)
            path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "resnet50_gpu_check.onnx")
            mx.onnx.export_model(sym, {**{k: v for k, v in exe.arg_dict.items() if k not in ("data",
                                                                                              "softmax_label")},
                                       **exe.aux_dict}, [(batch, 3, image, image)], np.float32, path)
            session = ort.InferenceSession(path, providers=providers_for(mx.gpu(0)))
        raw = _raw_ort(session, exe, batch, repeat)
        print("%s batch %d: onnxsym %.1f images/s, raw ORT %.1f images/s (ratio %.2f)"
              % ("training step" if training else "inference", batch, ours, raw, ours / raw), flush=True)


def _raw_ort(session, exe, batch, repeat):
    """images/s of `session` with every input an OrtValue already on the GPU, outputs left on the GPU."""
    io = session.io_binding()
    memory = device_of(mx.gpu(0))
    values = {**exe.arg_dict, **exe.aux_dict}
    keep = []
    for node in session.get_inputs():
        name = node.name[:-len("/Identity")] if node.name.endswith("/Identity") else node.name
        value = ort.OrtValue.ortvalue_from_numpy(values[name].asnumpy(), *memory)
        keep.append(value)
        io.bind_ortvalue_input(node.name, value)
    for node in session.get_outputs():
        io.bind_output(node.name, *memory)

    def step():
        session.run_with_iobinding(io)
        io.synchronize_outputs()
    return _images_per_second(step, batch, repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops-only", action="store_true")
    parser.add_argument("--resnet-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", default="64,32", help="ResNet-50 inference and training batch sizes")
    parser.add_argument("--image", type=int, default=224, help="ResNet-50 image size")
    parser.add_argument("--max-cases", type=int, default=None, help="check only the first N op cases")
    args = parser.parse_args()
    if mx.num_gpus() == 0:
        print("no CUDA device: mx.num_gpus() is 0 (onnxruntime %s, providers %s)"
              % (ort.__version__, ort.get_available_providers()))
        return 2
    ok = True
    if not args.resnet_only:
        ok = check_ops(args.max_cases)
    if not args.ops_only:
        check_resnet(args.repeat, [int(b) for b in args.batches.split(",")], args.image)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
