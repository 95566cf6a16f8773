"""AlexNet as in MXNet's example/image-classification/symbols/alexnet.py (input about 224x224, at least 67x67)."""
import onnxsym as mx

__all__ = ["get_symbol"]


def get_symbol(num_classes, dtype="float32", **kwargs):
    """Five convolutions with LRN and max pooling, then three fully connected layers with dropout."""
    data = mx.sym.Variable(name="data")
    if dtype == "float16":
        data = mx.sym.Cast(data=data, dtype="float16")
    body = data
    stages = [  # (name, convolution attributes, LRN after ReLU, max pooling after that)
        ("conv1", dict(kernel=(11, 11), stride=(4, 4), num_filter=96), True, True),
        ("conv2", dict(kernel=(5, 5), pad=(2, 2), num_filter=256), True, True),
        ("conv3", dict(kernel=(3, 3), pad=(1, 1), num_filter=384), False, False),
        ("conv4", dict(kernel=(3, 3), pad=(1, 1), num_filter=384), False, False),
        ("conv5", dict(kernel=(3, 3), pad=(1, 1), num_filter=256), False, True),
    ]
    for name, conv, lrn, pool in stages:
        body = mx.sym.Convolution(name=name, data=body, **conv)
        body = mx.sym.Activation(data=body, act_type="relu")
        if lrn:
            body = mx.sym.LRN(data=body, alpha=0.0001, beta=0.75, knorm=2, nsize=5)
        if pool:
            body = mx.sym.Pooling(data=body, pool_type="max", kernel=(3, 3), stride=(2, 2))
    body = mx.sym.Flatten(data=body)
    for name in ("fc1", "fc2"):
        body = mx.sym.FullyConnected(name=name, data=body, num_hidden=4096)
        body = mx.sym.Activation(data=body, act_type="relu")
        body = mx.sym.Dropout(data=body, p=0.5)
    fc3 = mx.sym.FullyConnected(name="fc3", data=body, num_hidden=num_classes)
    if dtype == "float16":
        fc3 = mx.sym.Cast(data=fc3, dtype="float32")
    return mx.sym.SoftmaxOutput(data=fc3, name="softmax")
