"""GluonCV model-zoo detectors, full size, through onnxsym: the one-off check behind the README's zoo figures (the
committed tests use tiny instances of the same classes: tests/test_gluon_exports.py).

    # 1. under MXNet 1.9.1 with gluoncv 0.10.5 (see tests/fixtures/make_gluoncv_fixtures.py for that venv):
    MXNET_MKLDNN_ENABLED=0 /tmp/gcvvenv/bin/python tests/gluon_zoo_check.py export /tmp/zoo [MODEL ...]
    # 2. with onnxsym:
    python tests/gluon_zoo_check.py check /tmp/zoo [MODEL ...]

`export` builds each zoo model with pretrained=False (random weights: He-initialised, small heads and BatchNorm
scales so that scores spread; fixed seed), runs it on a seeded image, writes NAME-symbol.json / NAME-0000.params
(HybridBlock.export) and NAME_io.npz (the image, MXNet's outputs). `check` loads each export with
mx.model.load_checkpoint, binds it and compares the detections with MXNet's as sets (class, score, box), exports it
to .onnx and compares plain ONNX Runtime's detections the same way, and takes one SGD step of a Module on
mean(scores^2), reporting the loss before and after and how many parameters received a gradient.
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# name: input size (SSD, YOLOv3 and CenterNet crop their anchor or offset maps to the input, any size runs)
MODELS = {
    "ssd_300_vgg16_atrous_voc": 300,
    "ssd_512_mobilenet1.0_voc": 256,
    "ssd_512_resnet50_v1_voc": 256,
    "yolo3_mobilenet0.25_voc": 256,
    "yolo3_darknet53_voc": 256,
    "faster_rcnn_resnet50_v1b_voc": 256,
    "center_net_resnet18_v1b_voc": 256,
    "center_net_resnet18_v1b_dcnv2_voc": 256,
}


def export(folder, names):
    import mxnet as mx
    from gluoncv import model_zoo
    sys.path.insert(0, os.path.join(HERE, "fixtures"))
    from make_gluoncv_fixtures import _randomize
    os.makedirs(folder, exist_ok=True)
    for name in names:
        mx.random.seed(0)
        net = model_zoo.get_model(name, pretrained=False, pretrained_base=False)
        image = np.random.RandomState(0).uniform(-1, 1, (1, 3, MODELS[name], MODELS[name])).astype(np.float32)
        _randomize(net, image, head_scale=0.05, gammas=(0.2, 0.6))
        net.hybridize()
        outs = net(mx.nd.array(image))
        net.export(os.path.join(folder, name), epoch=0)
        record = {"in0": image}
        record.update({"out%d" % i: o.asnumpy() for i, o in enumerate(outs)})
        # the dense detections NMS starts from, as MXNet's executor computes them from the exported files
        sym, args, auxs = mx.model.load_checkpoint(os.path.join(folder, name), 0)
        pre_nms = _pre_nms(mx, sym)
        if pre_nms is not None:
            exe = pre_nms.bind(mx.cpu(), {**args, "data": mx.nd.array(image)}, aux_states=auxs)
            record.update({"pre_nms%d" % i: o.asnumpy() for i, o in enumerate(exe.forward())})
        np.savez(os.path.join(folder, name + "_io.npz"), **record)
        print(name, [o.shape for o in outs], flush=True)


def _pre_nms(mx, sym):
    """The inputs of the graph's box_nms nodes as one Symbol (None without NMS), with MXNet or onnxsym as `mx`."""
    import json
    nodes = json.loads(sym.tojson())["nodes"]
    feeds = [nodes[n["inputs"][0][0]]["name"] for n in nodes if n["op"] == "_contrib_box_nms"]
    if not feeds:
        return None
    internals = sym.get_internals()
    outputs = internals.list_outputs()
    picked = []
    for feed in feeds:
        name = feed + "_output" if feed + "_output" in outputs else feed + "_output0"
        picked.append(internals[outputs.index(name)])
    return mx.sym.Group(picked)


def _compare(got, expected):
    """Detections as sets (the tests' comparison); where it fails, again with tied scores allowed to pick different
    boxes: untrained zoo nets give many boxes the same score to float precision, and NMS or topk then keeps any of
    them (MXNet's and ORT's sorts break ties differently)."""
    from test_gluon_exports import _assert_same_detections, _detections
    try:
        _assert_same_detections(got, expected)
        return "%d detections, all MXNet's" % len(_detections(*expected)[0])
    except AssertionError as error:
        strict = str(error).splitlines()[0]
    got_ids, got_scores, got_boxes = _detections(*got)
    ids, scores, boxes = _detections(*expected)
    if len(got_ids) != len(ids):
        return "DIFFERENT: %d detections, MXNet %d" % (len(got_ids), len(ids))
    tied = 0
    for i in range(len(ids)):
        same_score = (got_ids == ids[i]) & np.isclose(got_scores, scores[i], rtol=1e-5, atol=1e-6)
        ties = (ids == ids[i]) & np.isclose(scores, scores[i], rtol=1e-5, atol=1e-6)
        if (same_score & np.isclose(got_boxes, boxes[i], rtol=1e-4, atol=1e-3).all(axis=1)).any():
            continue
        if ties.sum() > 1 or same_score.sum() > 1 or scores[i] == scores.min():
            tied += 1
            continue
        return "DIFFERENT: " + strict
    return "%d detections, all MXNet's but %d whose score ties with another box (%s)" % (len(ids), tied, strict)


def check(folder, names):
    import onnx
    import onnxruntime as ort
    import onnxsym as mx
    sys.path.insert(0, HERE)
    for name in names:
        prefix = os.path.join(folder, name)
        sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
        io = np.load(prefix + "_io.npz")
        image, expected = io["in0"], [io["out%d" % i] for i in range(3)]
        start = time.time()
        exe = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(image)}, aux_states=auxs)
        got = [o.asnumpy() for o in exe.forward()]
        print("%s\n  bind+forward %.1fs: %s" % (name, time.time() - start, _compare(got, expected)), flush=True)
        pre_nms = _pre_nms(mx, sym)
        if pre_nms is not None:
            exe = pre_nms.bind(mx.cpu(), {**args, "data": mx.nd.array(image)}, aux_states=auxs)
            diffs = []
            for i, out in enumerate(exe.forward()):
                got, want = out.asnumpy(), io["pre_nms%d" % i]
                same_nan = bool((np.isnan(got) == np.isnan(want)).all())
                finite = np.isfinite(want)
                scale = 1 + np.abs(want[finite]).max()
                diff = "%.2g" % (np.abs(got[finite] - want[finite]).max() / scale)
                if float(diff) > 1e-4:      # rows in another order (proposals with equal scores)? compare columns
                    cols = [np.sort(a.reshape(-1, a.shape[-1]), axis=0) for a in (got, want)]
                    diff += " in place, %.2g column by column sorted" % (np.nanmax(np.abs(cols[0] - cols[1])) / scale)
                diffs.append(diff + ("" if same_nan else " (NaN elsewhere)"))
            print("  dense detections into each NMS, largest difference relative to their range: %s"
                  % ", ".join(diffs))
        path = mx.onnx.export_model(sym, {**args, **auxs}, [image.shape], in_types=[np.float32],
                                    onnx_file_path=prefix + ".onnx", dynamic=False)
        other = sorted({n.op_type for n in onnx.load(path).graph.node if n.domain not in ("", "ai.onnx")})
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        served = session.run(None, {session.get_inputs()[0].name: image})
        print("  plain ORT on the .onnx (non-standard ops: %s): %s" % (other or "none", _compare(served[:3], expected)))
        loss = mx.sym.MakeLoss(mx.sym.mean(mx.sym.square(sym[1])), name="loss")
        params = {n: v for n, v in args.items() if n in loss.list_arguments()}
        mod = mx.mod.Module(loss, data_names=["data"], label_names=None)
        mod.bind(data_shapes=[("data", image.shape)])
        mod.init_params(arg_params=params, aux_params=auxs)
        mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.001})
        batch = mx.io.DataBatch([mx.nd.array(image)])
        start = time.time()
        mod.forward(batch, is_train=True)
        before = mod.get_outputs()[0].asscalar()
        mod.backward()
        grads = mod._exec.grad_dict
        reached = sum(1 for n in params if np.abs(grads[n].asnumpy()).max() > 0)
        finite = all(np.isfinite(grads[n].asnumpy()).all() for n in params)
        mod.update()
        mod.forward(batch, is_train=False)
        print("  SGD step (%.1fs): loss %.9g -> %.9g; %d of %d parameters with a nonzero gradient, all finite: %s"
              % (time.time() - start, before, mod.get_outputs()[0].asscalar(), reached, len(params), finite),
              flush=True)


if __name__ == "__main__":
    mode, folder, chosen = sys.argv[1], sys.argv[2], sys.argv[3:] or list(MODELS)
    {"export": export, "check": check}[mode](folder, chosen)
