"""MobileNet v1 as in MXNet's example/image-classification/symbols/mobilenet.py (input resolution x resolution,
a multiple of 32; width multiplier alpha in 0.25, 0.5, 0.75, 1)."""
import onnxsym as mx

__all__ = ["get_symbol", "get_symbol_compact", "Conv", "Conv_DPW", "alpha_values"]

alpha_values = [0.25, 0.50, 0.75, 1.0]

# (channel multiple of base, stride) of the depthwise 3x3 + pointwise 1x1 pairs conv_2 ... conv_14.
_BLOCKS = [(1, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2), (16, 1), (16, 1), (16, 1), (16, 1), (16, 1), (16, 2),
           (32, 1)]


def Conv(data, num_filter=1, kernel=(1, 1), stride=(1, 1), pad=(0, 0), num_group=1, name="", suffix=""):
    """Convolution (no bias), BatchNorm (fix_gamma) and ReLU named name+suffix+_conv2d/_batchnorm/_relu."""
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, num_group=num_group, stride=stride,
                              pad=pad, no_bias=True, name="%s%s_conv2d" % (name, suffix))
    bn = mx.sym.BatchNorm(data=conv, name="%s%s_batchnorm" % (name, suffix), fix_gamma=True)
    return mx.sym.Activation(data=bn, act_type="relu", name="%s%s_relu" % (name, suffix))


def Conv_DPW(data, depth=1, stride=(1, 1), name="", idx=0, suffix=""):
    """A depthwise 3x3 Conv (stride `stride`) then a pointwise Conv to depth * stride[0] channels."""
    conv_dw = Conv(data, num_group=depth, num_filter=depth, kernel=(3, 3), pad=(1, 1), stride=stride,
                   name="conv_%d_dw" % idx, suffix=suffix)
    return Conv(conv_dw, num_filter=depth * stride[0], kernel=(1, 1), pad=(0, 0), stride=(1, 1),
                name="conv_%d" % idx, suffix=suffix)


def _check(alpha, resolution):
    if alpha not in alpha_values:
        raise ValueError("Invalid alpha={0}, must be one of {1}".format(alpha, alpha_values))
    if resolution % 32 != 0:
        raise ValueError("resolution must be multiple of 32")


def _head(body, num_classes, resolution):
    pool_size = int(resolution / 32)
    pool = mx.sym.Pooling(data=body, kernel=(pool_size, pool_size), stride=(1, 1), pool_type="avg",
                          name="global_pool")
    flatten = mx.sym.Flatten(data=pool, name="flatten")
    fc = mx.sym.FullyConnected(data=flatten, num_hidden=num_classes, name="fc")
    return mx.sym.SoftmaxOutput(data=fc, name="softmax")


def get_symbol(num_classes, alpha=1, resolution=224, **kwargs):
    """The 28-layer MobileNet: a 3x3/2 Conv then 13 depthwise-separable pairs, average pooling and fc."""
    _check(alpha, resolution)
    base = int(32 * alpha)
    data = mx.sym.Variable(name="data")
    body = Conv(data, num_filter=base, kernel=(3, 3), pad=(1, 1), stride=(2, 2), name="conv_1")
    for idx, (multiple, stride) in enumerate(_BLOCKS, start=2):
        depth = base * multiple
        body = Conv(body, num_group=depth, num_filter=depth, kernel=(3, 3), pad=(1, 1), stride=(stride, stride),
                    name="conv_%d_dw" % idx)
        pointwise = depth * 2 if stride == 2 or idx == 2 else depth
        body = Conv(body, num_filter=pointwise, kernel=(1, 1), pad=(0, 0), stride=(1, 1), name="conv_%d" % idx)
    return _head(body, num_classes, resolution)


def get_symbol_compact(num_classes, alpha=1, resolution=224, **kwargs):
    """The same network (identical layers and names) written with Conv_DPW blocks after conv_2."""
    _check(alpha, resolution)
    base = int(32 * alpha)
    data = mx.sym.Variable(name="data")
    body = Conv(data, num_filter=base, kernel=(3, 3), pad=(1, 1), stride=(2, 2), name="conv_1")
    body = Conv(body, num_group=base, num_filter=base, kernel=(3, 3), pad=(1, 1), stride=(1, 1), name="conv_2_dw")
    body = Conv(body, num_filter=base * 2, kernel=(1, 1), pad=(0, 0), stride=(1, 1), name="conv_2")
    for idx, (multiple, stride) in enumerate(_BLOCKS[1:], start=3):
        body = Conv_DPW(body, depth=base * multiple, stride=(stride, stride), idx=idx)
    return _head(body, num_classes, resolution)
