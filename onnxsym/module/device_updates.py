"""Optimizer updates on the device, for arrays on a GPU: MXNet's sgd_update / sgd_mom_update and adam_update as
small ONNX graphs run where the weights are, so that weights, gradients and optimizer states stay on the device
through Module.fit (runtime/device.py). The new weight and state are written into scratch device buffers that then
change places with the arrays' own (device.swap): no copy, no host transfer. Other optimizers, multi-precision
float16 and arrays on different devices use the host path (the arrays come to the host first)."""
import numpy as np
import onnx
from onnx import helper

from ..ops.params import float_param
from ..runtime.device import DeviceCopy, device_of, home_copy, swap
from ..runtime.ndarray import DeviceNDArray, host_buffer
from ..runtime.ort import ort, run_error, session_options

__all__ = ["on_device", "sgd", "adam"]

_SESSIONS = {}        # (kind, dtype, rank, variant, device) -> session


def on_device(*arrays):
    """The device all of `arrays` (NDArrays or None) live on, or None when the host path applies."""
    devices = {device_of(a.context) if isinstance(a, DeviceNDArray) else None for a in arrays if a is not None}
    if len(devices) != 1:
        return None
    device = devices.pop()
    if device is None or any(a is not None and host_buffer(a).dtype not in (np.float32, np.float64)
                             for a in arrays):
        return None
    return device


def _session(kind, dtype, rank, variant, device, build):
    key = (kind, dtype.str, rank, variant, device)
    session = _SESSIONS.get(key)
    if session is None:
        elem = helper.np_dtype_to_tensor_dtype(dtype)
        dims = ["d%d" % i for i in range(rank)]
        nodes, tensors, scalars, outputs = build()
        graph = helper.make_graph(
            [helper.make_node(op, ins, outs, **attrs) for op, ins, outs, attrs in nodes], kind,
            [helper.make_tensor_value_info(n, elem, dims) for n in tensors] +
            [helper.make_tensor_value_info(n, elem, []) for n in scalars],
            [helper.make_tensor_value_info(n, elem, dims) for n in outputs])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.checker.check_model(model)
        providers = ["CPUExecutionProvider"] if device[0] == "cpu" else \
            [("CUDAExecutionProvider", {"device_id": device[1]}), "CPUExecutionProvider"]
        session = _SESSIONS[key] = ort.InferenceSession(model.SerializeToString(), session_options(),
                                                        providers=providers)
    return session


def _scratch(home):
    """The device buffer an update of `home` writes into (kept with it: they change places at each update)."""
    if home.scratch is None:
        home.scratch = DeviceCopy(np.zeros_like(home.host), home.device)
    return home.scratch


def _run(session, device, tensors, scalars, updated):
    """Run an update: `tensors` {input name: NDArray}, `scalars` {name: float}, `updated` [(output name,
    NDArray)]: each updated array's device buffer changes places with the scratch buffer written."""
    io = session.io_binding()
    for name, array in tensors.items():
        copy = home_copy(host_buffer(array), device)
        copy.refresh()
        io.bind_ortvalue_input(name, copy.value)
    for name, value in scalars.items():     # (MXNet's operator parameters are float32, cast to the weight's dtype)
        io.bind_cpu_input(name, np.asarray(float_param(value, host_buffer(tensors["w"]).dtype)))
    pairs = []
    for name, array in updated:
        home = home_copy(host_buffer(array), device)
        scratch = _scratch(home)
        io.bind_ortvalue_output(name, scratch.value)
        pairs.append((home, scratch))
    try:
        session.run_with_iobinding(io)
    except Exception as err:
        raise run_error(err) from None
    for home, scratch in pairs:
        swap(home, scratch)


def _clip_variant(opt):
    return bool(opt.clip_gradient) and opt.clip_gradient >= 0


def sgd(opt, device, weight, grad, mom, lr, wd, momentum, kernel="multi"):
    """multi_sgd(_mom)_update as optimizer.sgd_kernel computes it on the host, in MXNet's order: mom = momentum*mom -
    lr*wd*w - lr*rescale*g (or - lr*clip(rescale*g)), w += mom; without momentum w -= lr*rescale*g + lr*wd*w.
    `kernel` as optimizer._sgd_kernel's: "single" without momentum is sgd_update's (1 - lr*wd)*w - step,
    "preloaded" takes lr*wd as a float32 product (preloaded_multi_sgd's float arrays; computed here)."""
    clip = _clip_variant(opt)
    dtype = host_buffer(weight).dtype
    single, preloaded = kernel == "single" and mom is None, kernel == "preloaded"
    rates = ["rescale", "lr"] + (["clip"] if clip else []) + (["lrwd"] if preloaded else ["wd"]) + \
        (["one"] if single else ["momentum"] if mom is not None else [])

    def build():
        if clip:
            nodes = [("Mul", ["g", "rescale"], ["scaled"], {}), ("Neg", ["clip"], ["low"], {}),
                     ("Clip", ["scaled", "low", "clip"], ["clipped"], {}), ("Mul", ["clipped", "lr"], ["step"], {})]
        else:
            nodes = [("Mul", ["lr", "rescale"], ["rate"], {}), ("Mul", ["g", "rate"], ["step"], {})]
        nodes += [] if preloaded else [("Mul", ["lr", "wd"], ["lrwd"], {})]
        if single:
            nodes += [("Sub", ["one", "lrwd"], ["keep"], {}), ("Mul", ["keep", "w"], ["kept"], {}),
                      ("Sub", ["kept", "step"], ["w_new"], {})]
            return nodes, ["w", "g"], rates, ["w_new"]
        nodes += [("Mul", ["w", "lrwd"], ["decay"], {})]
        if mom is None:
            nodes += [("Add", ["step", "decay"], ["total"], {}), ("Sub", ["w", "total"], ["w_new"], {})]
            return nodes, ["w", "g"], rates, ["w_new"]
        nodes += [("Mul", ["m", "momentum"], ["carried"], {}), ("Sub", ["carried", "decay"], ["m1"], {}),
                  ("Sub", ["m1", "step"], ["m_new"], {}), ("Add", ["w", "m_new"], ["w_new"], {})]
        return nodes, ["w", "g", "m"], rates, ["w_new", "m_new"]

    session = _session("sgd", dtype, weight.ndim, (mom is not None, clip, single, preloaded), device, build)
    values = {"rescale": opt.rescale_grad, "lr": lr, "wd": wd, "clip": opt.clip_gradient, "one": 1.0,
              "momentum": momentum, "lrwd": np.float32(lr) * np.float32(wd)}  # (float32: exact through _run's cast)
    tensors, updated = {"w": weight, "g": grad}, [("w_new", weight)]
    if mom is not None:
        tensors["m"] = mom
        updated.append(("m_new", mom))
    _run(session, device, tensors, {name: values[name] for name in rates}, updated)


def adam(opt, device, weight, grad, mean, var, lr, wd):
    """adam_update with `lr` already bias-corrected, in AdamUpdateKernel's order (as optimizer.Adam on the host):
    g = clip(grad*rescale_grad + w*wd), mean = b1*mean + (1-b1)*g, var = b2*var + ((1-b2)*g)*g,
    w -= (lr*mean)/(sqrt(var) + epsilon), with 1-b1 and 1-b2 subtracted in the weight's dtype."""
    clip = _clip_variant(opt)
    dtype = host_buffer(weight).dtype

    def build():
        nodes = [("Mul", ["g", "rescale"], ["scaled"], {}), ("Mul", ["w", "wd"], ["decay"], {}),
                 ("Add", ["scaled", "decay"], ["g1"], {})]
        g = "g1"
        if clip:
            nodes += [("Neg", ["clip"], ["low"], {}), ("Clip", ["g1", "low", "clip"], ["clipped"], {})]
            g = "clipped"
        nodes += [("Sub", ["one", "beta1"], ["one_minus_beta1"], {}),
                  ("Sub", ["one", "beta2"], ["one_minus_beta2"], {}),
                  ("Mul", ["beta1", "mean"], ["mk"], {}), ("Mul", ["one_minus_beta1", g], ["mt"], {}),
                  ("Add", ["mk", "mt"], ["mean_new"], {}),
                  ("Mul", ["beta2", "var"], ["vk"], {}), ("Mul", ["one_minus_beta2", g], ["vg"], {}),
                  ("Mul", ["vg", g], ["vt"], {}), ("Add", ["vk", "vt"], ["var_new"], {}),
                  ("Sqrt", ["var_new"], ["root"], {}), ("Add", ["root", "epsilon"], ["denominator"], {}),
                  ("Mul", ["lr", "mean_new"], ["scaled_mean"], {}),
                  ("Div", ["scaled_mean", "denominator"], ["step"], {}), ("Sub", ["w", "step"], ["w_new"], {})]
        scalars = ["rescale", "wd", "beta1", "beta2", "one", "epsilon", "lr"]
        return nodes, ["w", "g", "mean", "var"], scalars + (["clip"] if clip else []), ["w_new", "mean_new",
                                                                                         "var_new"]

    session = _session("adam", dtype, weight.ndim, clip, device, build)
    scalars = {"rescale": opt.rescale_grad, "wd": wd, "beta1": opt.beta1, "beta2": opt.beta2, "one": 1.0,
               "epsilon": opt.epsilon, "lr": lr}
    if clip:
        scalars["clip"] = opt.clip_gradient
    _run(session, device, {"w": weight, "g": grad, "mean": mean, "var": var}, scalars,
         [("w_new", weight), ("mean_new", mean), ("var_new", var)])

