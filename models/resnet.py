"""Pre-activation ResNet (v2) as in MXNet's example/image-classification/symbols/resnet.py.

`get_symbol(num_classes, num_layers, image_shape)`: images of height <= 28 get the 3-stage CIFAR layout
(num_layers = 6n+2 basic or 9n+2 >= 164 bottleneck), larger ones the 4-stage ImageNet layout (18 ... 269 layers),
whose stem is a 3x3 convolution for heights up to 32 and a 7x7/2 convolution with max pooling above.
"""
import onnxsym as mx

__all__ = ["get_symbol", "residual_unit", "resnet", "parse_image_shape", "imagenet_units", "cifar_units"]

IMAGENET_UNITS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3],
                  200: [3, 24, 36, 3], 269: [3, 30, 48, 8]}


def parse_image_shape(image_shape):
    """MXNet's "3,224,224" string (or a tuple) as a tuple of ints."""
    if isinstance(image_shape, str):
        return tuple(int(v) for v in image_shape.split(","))
    return tuple(int(v) for v in image_shape)


def cifar_units(num_layers):
    """(units, filter_list, bottle_neck) of the 3-stage layout for 28x28-or-smaller images."""
    if (num_layers - 2) % 9 == 0 and num_layers >= 164:
        return [(num_layers - 2) // 9] * 3, [16, 64, 128, 256], True
    if (num_layers - 2) % 6 == 0 and num_layers < 164:
        return [(num_layers - 2) // 6] * 3, [16, 16, 32, 64], False
    raise ValueError("no experiments done on num_layers {}, you can do it yourself".format(num_layers))


def imagenet_units(num_layers):
    """(units, filter_list, bottle_neck) of the 4-stage layout."""
    if num_layers not in IMAGENET_UNITS:
        raise ValueError("no experiments done on num_layers {}, you can do it yourself".format(num_layers))
    if num_layers >= 50:
        return IMAGENET_UNITS[num_layers], [64, 256, 512, 1024, 2048], True
    return IMAGENET_UNITS[num_layers], [64, 64, 128, 256, 512], False


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, bn_mom=0.9, workspace=256):
    """One pre-activation unit: BN-ReLU-Conv twice (thrice with a bottleneck of num_filter/4) plus the shortcut."""
    def bn_relu(x, index):
        x = mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="%s_bn%d" % (name, index))
        return mx.sym.Activation(data=x, act_type="relu", name="%s_relu%d" % (name, index))

    def conv(x, index, filters, kernel, conv_stride, pad):
        return mx.sym.Convolution(data=x, num_filter=filters, kernel=kernel, stride=conv_stride, pad=pad,
                                  no_bias=True, workspace=workspace, name="%s_conv%d" % (name, index))

    act1 = bn_relu(data, 1)
    if bottle_neck:
        body = conv(act1, 1, int(num_filter * 0.25), (1, 1), (1, 1), (0, 0))
        body = conv(bn_relu(body, 2), 2, int(num_filter * 0.25), (3, 3), stride, (1, 1))
        body = conv(bn_relu(body, 3), 3, num_filter, (1, 1), (1, 1), (0, 0))
    else:
        body = conv(act1, 1, num_filter, (3, 3), stride, (1, 1))
        body = conv(bn_relu(body, 2), 2, num_filter, (3, 3), (1, 1), (1, 1))
    if dim_match:
        shortcut = data
    else:
        shortcut = mx.sym.Convolution(data=act1, num_filter=num_filter, kernel=(1, 1), stride=stride, no_bias=True,
                                      workspace=workspace, name=name + "_sc")
    return body + shortcut


def stage_layout(num_layers, image_shape, cifar_height=28):
    """(units, filter_list, bottle_neck): the CIFAR layout up to `cifar_height` pixels high, else ImageNet's."""
    if parse_image_shape(image_shape)[1] <= cifar_height:
        return cifar_units(num_layers)
    return imagenet_units(num_layers)


def input_data(dtype):
    """The data variable as MXNet's ResNet family feeds it: through identity `id` (float32) or a Cast (float16)."""
    data = mx.sym.Variable(name="data")
    if dtype == "float32":
        return mx.sym.identity(data=data, name="id")
    if dtype == "float16":
        return mx.sym.Cast(data=data, dtype="float16")
    return data


def stem(data, num_filter, image_shape, bn_mom, workspace, cifar_bn=False):
    """conv0: 3x3 for CIFAR-sized inputs (height <= 32; then BN bn0 when cifar_bn), else 7x7/2, BN, ReLU, max pool."""
    conv = lambda kernel, stride, pad: mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel,
                                                          stride=stride, pad=pad, no_bias=True, name="conv0",
                                                          workspace=workspace)
    bn0 = lambda x: mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn0")
    if parse_image_shape(image_shape)[1] <= 32:
        body = conv((3, 3), (1, 1), (1, 1))
        return bn0(body) if cifar_bn else body
    body = mx.sym.Activation(data=bn0(conv((7, 7), (2, 2), (3, 3))), act_type="relu", name="relu0")
    return mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")


def stages(body, units, filter_list, unit):
    """units[i] residual units per stage (stride 2 entering every stage but the first), named stage<i>_unit<j>;
    unit(data, num_filter, stride, dim_match, name) builds one."""
    for i, count in enumerate(units):
        body = unit(body, filter_list[i + 1], (1, 1) if i == 0 else (2, 2), False, "stage%d_unit1" % (i + 1))
        for j in range(count - 1):
            body = unit(body, filter_list[i + 1], (1, 1), True, "stage%d_unit%d" % (i + 1, j + 2))
    return body


def classifier(body, num_classes, dtype):
    """Global average pool1, fc1 (cast back to float32 for float16 nets), SoftmaxOutput `softmax`."""
    pool1 = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    fc1 = mx.sym.FullyConnected(data=mx.sym.Flatten(data=pool1), num_hidden=num_classes, name="fc1")
    if dtype == "float16":
        fc1 = mx.sym.Cast(data=fc1, dtype="float32")
    return mx.sym.SoftmaxOutput(data=fc1, name="softmax")


def resnet(units, num_stages, filter_list, num_classes, image_shape, bottle_neck=True, bn_mom=0.9, workspace=256,
           dtype="float32"):
    """The whole pre-activation network for the given stage layout."""
    if len(units) != num_stages:
        raise ValueError("resnet: %d unit counts for %d stages" % (len(units), num_stages))
    data = mx.sym.BatchNorm(data=input_data(dtype), fix_gamma=True, eps=2e-5, momentum=bn_mom, name="bn_data")
    body = stem(data, filter_list[0], image_shape, bn_mom, workspace)
    body = stages(body, units, filter_list, lambda x, filters, stride, dim_match, name: residual_unit(
        x, filters, stride, dim_match, name, bottle_neck, bn_mom, workspace))
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn1")
    body = mx.sym.Activation(data=body, act_type="relu", name="relu1")
    return classifier(body, num_classes, dtype)


def get_symbol(num_classes, num_layers, image_shape, conv_workspace=256, dtype="float32", **kwargs):
    """MXNet's resnet get_symbol; image_shape like "3,224,224" (a tuple works too)."""
    units, filter_list, bottle_neck = stage_layout(num_layers, image_shape)
    return resnet(units, len(units), filter_list, num_classes, image_shape, bottle_neck, workspace=conv_workspace,
                  dtype=dtype)
