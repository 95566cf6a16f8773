"""Inception with batch normalization as in MXNet's example/image-classification/symbols/inception-bn.py.

Images of height <= 28 get the small CIFAR-style network of simple and downsampling factories (input 28x28);
larger ones the ImageNet network (input 224x224: its 7x7 average pooling needs a 7x7 map).
"""
import onnxsym as mx

from .resnet import parse_image_shape

__all__ = ["get_symbol", "ConvFactory", "InceptionFactoryA", "InceptionFactoryB", "DownsampleFactory",
           "SimpleFactory"]

EPS = 1e-10 + 1e-5
BN_MOM = 0.9
FIX_GAMMA = False


def ConvFactory(data, num_filter, kernel, stride=(1, 1), pad=(0, 0), name=None, suffix="", attr=None):
    """Convolution, BatchNorm and ReLU named conv_/bn_/relu_ + name + suffix."""
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, stride=stride, pad=pad,
                              name="conv_%s%s" % (name, suffix))
    bn = mx.sym.BatchNorm(data=conv, fix_gamma=FIX_GAMMA, eps=EPS, momentum=BN_MOM, name="bn_%s%s" % (name, suffix))
    return mx.sym.Activation(data=bn, act_type="relu", name="relu_%s%s" % (name, suffix), attr=attr or {})


def InceptionFactoryA(data, num_1x1, num_3x3red, num_3x3, num_d3x3red, num_d3x3, pool, proj, name):
    """1x1, 3x3, double 3x3 and pooled-projection branches concatenated along channels."""
    c1x1 = ConvFactory(data=data, num_filter=num_1x1, kernel=(1, 1), name="%s_1x1" % name)
    c3x3r = ConvFactory(data=data, num_filter=num_3x3red, kernel=(1, 1), name="%s_3x3" % name, suffix="_reduce")
    c3x3 = ConvFactory(data=c3x3r, num_filter=num_3x3, kernel=(3, 3), pad=(1, 1), name="%s_3x3" % name)
    cd3x3r = ConvFactory(data=data, num_filter=num_d3x3red, kernel=(1, 1), name="%s_double_3x3" % name,
                         suffix="_reduce")
    cd3x3 = ConvFactory(data=cd3x3r, num_filter=num_d3x3, kernel=(3, 3), pad=(1, 1), name="%s_double_3x3_0" % name)
    cd3x3 = ConvFactory(data=cd3x3, num_filter=num_d3x3, kernel=(3, 3), pad=(1, 1), name="%s_double_3x3_1" % name)
    pooling = mx.sym.Pooling(data=data, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type=pool,
                             name="%s_pool_%s_pool" % (pool, name))
    cproj = ConvFactory(data=pooling, num_filter=proj, kernel=(1, 1), name="%s_proj" % name)
    return mx.sym.Concat(*[c1x1, c3x3, cd3x3, cproj], name="ch_concat_%s_chconcat" % name)


def InceptionFactoryB(data, num_3x3red, num_3x3, num_d3x3red, num_d3x3, name):
    """Stride-2 reduction: 3x3 and double 3x3 branches beside 3x3/2 max pooling, concatenated."""
    c3x3r = ConvFactory(data=data, num_filter=num_3x3red, kernel=(1, 1), name="%s_3x3" % name, suffix="_reduce")
    c3x3 = ConvFactory(data=c3x3r, num_filter=num_3x3, kernel=(3, 3), pad=(1, 1), stride=(2, 2),
                       name="%s_3x3" % name)
    cd3x3r = ConvFactory(data=data, num_filter=num_d3x3red, kernel=(1, 1), name="%s_double_3x3" % name,
                         suffix="_reduce")
    cd3x3 = ConvFactory(data=cd3x3r, num_filter=num_d3x3, kernel=(3, 3), pad=(1, 1), stride=(1, 1),
                        name="%s_double_3x3_0" % name)
    cd3x3 = ConvFactory(data=cd3x3, num_filter=num_d3x3, kernel=(3, 3), pad=(1, 1), stride=(2, 2),
                        name="%s_double_3x3_1" % name)
    pooling = mx.sym.Pooling(data=data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                             name="max_pool_%s_pool" % name)
    return mx.sym.Concat(*[c3x3, cd3x3, pooling], name="ch_concat_%s_chconcat" % name)


def DownsampleFactory(data, ch_3x3, name, attr):
    """A 3x3/2 convolution beside 3x3/2 max pooling, concatenated."""
    conv = ConvFactory(data=data, name=name + "_conv", kernel=(3, 3), stride=(2, 2), num_filter=ch_3x3, pad=(1, 1),
                       attr=attr)
    pool = mx.sym.Pooling(data=data, name=name + "_pool", kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                          attr=attr)
    return mx.sym.Concat(*[conv, pool], name=name + "_ch_concat")


def SimpleFactory(data, ch_1x1, ch_3x3, name, attr):
    """1x1 and 3x3 convolution branches concatenated."""
    conv1x1 = ConvFactory(data=data, name=name + "_1x1", kernel=(1, 1), pad=(0, 0), num_filter=ch_1x1, attr=attr)
    conv3x3 = ConvFactory(data=data, name=name + "_3x3", kernel=(3, 3), pad=(1, 1), num_filter=ch_3x3, attr=attr)
    return mx.sym.Concat(*[conv1x1, conv3x3], name=name + "_ch_concat")


def get_symbol(num_classes, image_shape, **kwargs):
    """MXNet's inception-bn get_symbol; image_shape like "3,224,224" (a tuple works too)."""
    height = parse_image_shape(image_shape)[1]
    attr = {}
    data = mx.sym.Variable(name="data")
    if height <= 28:
        conv1 = ConvFactory(data=data, kernel=(3, 3), pad=(1, 1), name="1", num_filter=96, attr=attr)
        body = conv1
        for name, ch_1x1, ch_3x3 in [("in3a", 32, 32), ("in3b", 32, 48), ("in3c", None, 80), ("in4a", 112, 48),
                                     ("in4b", 96, 64), ("in4c", 80, 80), ("in4d", 48, 96), ("in4e", None, 96),
                                     ("in5a", 176, 160), ("in5b", 176, 160)]:
            if ch_1x1 is None:
                body = DownsampleFactory(body, ch_3x3, name, attr)
            else:
                body = SimpleFactory(body, ch_1x1, ch_3x3, name, attr)
        pool = mx.sym.Pooling(data=body, pool_type="avg", kernel=(7, 7), name="global_pool", attr=attr)
    else:
        conv1 = ConvFactory(data=data, num_filter=64, kernel=(7, 7), stride=(2, 2), pad=(3, 3), name="1")
        pool1 = mx.sym.Pooling(data=conv1, kernel=(3, 3), stride=(2, 2), name="pool_1", pool_type="max")
        conv2red = ConvFactory(data=pool1, num_filter=64, kernel=(1, 1), stride=(1, 1), name="2_red")
        conv2 = ConvFactory(data=conv2red, num_filter=192, kernel=(3, 3), stride=(1, 1), pad=(1, 1), name="2")
        body = mx.sym.Pooling(data=conv2, kernel=(3, 3), stride=(2, 2), name="pool_2", pool_type="max")
        body = InceptionFactoryA(body, 64, 64, 64, 64, 96, "avg", 32, "3a")
        body = InceptionFactoryA(body, 64, 64, 96, 64, 96, "avg", 64, "3b")
        body = InceptionFactoryB(body, 128, 160, 64, 96, "3c")
        body = InceptionFactoryA(body, 224, 64, 96, 96, 128, "avg", 128, "4a")
        body = InceptionFactoryA(body, 192, 96, 128, 96, 128, "avg", 128, "4b")
        body = InceptionFactoryA(body, 160, 128, 160, 128, 160, "avg", 128, "4c")
        body = InceptionFactoryA(body, 96, 128, 192, 160, 192, "avg", 128, "4d")
        body = InceptionFactoryB(body, 128, 192, 192, 256, "4e")
        body = InceptionFactoryA(body, 352, 192, 320, 160, 224, "avg", 128, "5a")
        body = InceptionFactoryA(body, 352, 192, 320, 192, 224, "max", 128, "5b")
        pool = mx.sym.Pooling(data=body, kernel=(7, 7), stride=(1, 1), name="global_pool", pool_type="avg")
    fc1 = mx.sym.FullyConnected(data=mx.sym.Flatten(data=pool), num_hidden=num_classes)
    return mx.sym.SoftmaxOutput(data=fc1, name="softmax")
