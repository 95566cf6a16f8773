"""ResNeXt as in MXNet's example/image-classification/symbols/resnext.py: ResNet v1 units whose 3x3 convolution
is grouped (num_group, default 32) over num_filter/2 bottleneck channels. Unit counts as in models.resnet, but
here images up to 32 pixels high (not 28) get the 3-stage CIFAR layout."""
import onnxsym as mx

from .resnet import cifar_units, imagenet_units, parse_image_shape

__all__ = ["get_symbol", "residual_unit", "resnext"]


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, num_group=32, bn_mom=0.9,
                  workspace=256):
    """One aggregated-transform unit: Conv-BN-ReLU stack (grouped 3x3 in the bottleneck), + shortcut, ReLU."""
    def conv_bn(x, index, filters, kernel, conv_stride, pad, **groups):
        x = mx.sym.Convolution(data=x, num_filter=filters, kernel=kernel, stride=conv_stride, pad=pad,
                               no_bias=True, workspace=workspace, name="%s_conv%d" % (name, index), **groups)
        return mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="%s_bn%d" % (name, index))

    def relu(x, suffix):
        return mx.sym.Activation(data=x, act_type="relu", name=name + suffix)

    if bottle_neck:
        width = int(num_filter * 0.5)
        body = relu(conv_bn(data, 1, width, (1, 1), (1, 1), (0, 0)), "_relu1")
        body = relu(conv_bn(body, 2, width, (3, 3), stride, (1, 1), num_group=num_group), "_relu2")
        body = conv_bn(body, 3, num_filter, (1, 1), (1, 1), (0, 0))
    else:
        body = relu(conv_bn(data, 1, num_filter, (3, 3), stride, (1, 1)), "_relu1")
        body = conv_bn(body, 2, num_filter, (3, 3), (1, 1), (1, 1))
    if dim_match:
        shortcut = data
    else:
        shortcut_conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(1, 1), stride=stride,
                                           no_bias=True, workspace=workspace, name=name + "_sc")
        shortcut = mx.sym.BatchNorm(data=shortcut_conv, fix_gamma=False, eps=2e-5, momentum=bn_mom,
                                    name=name + "_sc_bn")
    return relu(body + shortcut, "_relu")


def resnext(units, num_stages, filter_list, num_classes, num_group, image_shape, bottle_neck=True, bn_mom=0.9,
            workspace=256, dtype="float32"):
    """The whole ResNeXt network for the given stage layout."""
    if len(units) != num_stages:
        raise ValueError("resnext: %d unit counts for %d stages" % (len(units), num_stages))
    data = mx.sym.Variable(name="data")
    if dtype == "float32":
        data = mx.sym.identity(data=data, name="id")
    elif dtype == "float16":
        data = mx.sym.Cast(data=data, dtype="float16")
    data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=2e-5, momentum=bn_mom, name="bn_data")
    height = parse_image_shape(image_shape)[1]
    if height <= 32:            # CIFAR-sized: 3x3 stem, no pooling
        body = mx.sym.Convolution(data=data, num_filter=filter_list[0], kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                                  no_bias=True, name="conv0", workspace=workspace)
    else:
        body = mx.sym.Convolution(data=data, num_filter=filter_list[0], kernel=(7, 7), stride=(2, 2), pad=(3, 3),
                                  no_bias=True, name="conv0", workspace=workspace)
        body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn0")
        body = mx.sym.Activation(data=body, act_type="relu", name="relu0")
        body = mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for i in range(num_stages):
        stride = (1, 1) if i == 0 else (2, 2)
        body = residual_unit(body, filter_list[i + 1], stride, False, "stage%d_unit%d" % (i + 1, 1), bottle_neck,
                             num_group, bn_mom, workspace)
        for j in range(units[i] - 1):
            body = residual_unit(body, filter_list[i + 1], (1, 1), True, "stage%d_unit%d" % (i + 1, j + 2),
                                 bottle_neck, num_group, bn_mom, workspace)
    pool1 = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    fc1 = mx.sym.FullyConnected(data=mx.sym.Flatten(data=pool1), num_hidden=num_classes, name="fc1")
    if dtype == "float16":
        fc1 = mx.sym.Cast(data=fc1, dtype="float32")
    return mx.sym.SoftmaxOutput(data=fc1, name="softmax")


def get_symbol(num_classes, num_layers, image_shape, num_group=32, conv_workspace=256, dtype="float32", **kwargs):
    """MXNet's resnext get_symbol; image_shape like "3,224,224" (a tuple works too)."""
    image_shape = parse_image_shape(image_shape)
    if image_shape[1] <= 32:
        units, filter_list, bottle_neck = cifar_units(num_layers)
    else:
        units, filter_list, bottle_neck = imagenet_units(num_layers)
    return resnext(units, len(units), filter_list, num_classes, num_group, image_shape, bottle_neck,
                   workspace=conv_workspace, dtype=dtype)
