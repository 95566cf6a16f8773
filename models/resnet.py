"""ResNet v1/v2 symbols as in MXNet's example/image-classification/symbols/resnet.py (pre-activation v2 by
default): `get_symbol(num_classes, num_layers, image_shape)`; CIFAR-sized inputs (height <= 32) use the 3-stage
CIFAR layout, ImageNet-sized ones the 4-stage one."""
import onnxsym as mx

__all__ = ["get_symbol", "residual_unit", "resnet"]


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, bn_mom=0.9):
    """One pre-activation residual unit (BN-ReLU-Conv twice, or thrice with a bottleneck)."""
    def bn_relu(x, suffix):
        x = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name=name + "_bn" + suffix)
        return mx.sym.Activation(x, act_type="relu", name=name + "_relu" + suffix)

    act1 = bn_relu(data, "1")
    if bottle_neck:
        conv1 = mx.sym.Convolution(act1, num_filter=num_filter // 4, kernel=(1, 1), stride=(1, 1), pad=(0, 0),
                                   no_bias=True, name=name + "_conv1")
        conv2 = mx.sym.Convolution(bn_relu(conv1, "2"), num_filter=num_filter // 4, kernel=(3, 3), stride=stride,
                                   pad=(1, 1), no_bias=True, name=name + "_conv2")
        body = mx.sym.Convolution(bn_relu(conv2, "3"), num_filter=num_filter, kernel=(1, 1), stride=(1, 1),
                                  pad=(0, 0), no_bias=True, name=name + "_conv3")
    else:
        conv1 = mx.sym.Convolution(act1, num_filter=num_filter, kernel=(3, 3), stride=stride, pad=(1, 1),
                                   no_bias=True, name=name + "_conv1")
        body = mx.sym.Convolution(bn_relu(conv1, "2"), num_filter=num_filter, kernel=(3, 3), stride=(1, 1),
                                  pad=(1, 1), no_bias=True, name=name + "_conv2")
    shortcut = data if dim_match else mx.sym.Convolution(act1, num_filter=num_filter, kernel=(1, 1), stride=stride,
                                                         no_bias=True, name=name + "_sc")
    return body + shortcut


def resnet(units, num_stages, filter_list, num_classes, image_shape, bottle_neck=True, bn_mom=0.9):
    data = mx.sym.Variable("data")
    data = mx.sym.BatchNorm(data, fix_gamma=True, eps=2e-5, momentum=bn_mom, name="bn_data")
    height = image_shape[1]
    if height <= 32:
        body = mx.sym.Convolution(data, num_filter=filter_list[0], kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                                  no_bias=True, name="conv0")
    else:
        body = mx.sym.Convolution(data, num_filter=filter_list[0], kernel=(7, 7), stride=(2, 2), pad=(3, 3),
                                  no_bias=True, name="conv0")
        body = mx.sym.BatchNorm(body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn0")
        body = mx.sym.Activation(body, act_type="relu", name="relu0")
        body = mx.sym.Pooling(body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for i in range(num_stages):
        stride = (1, 1) if i == 0 else (2, 2)
        body = residual_unit(body, filter_list[i + 1], stride, False, "stage%d_unit%d" % (i + 1, 1), bottle_neck,
                             bn_mom)
        for j in range(units[i] - 1):
            body = residual_unit(body, filter_list[i + 1], (1, 1), True, "stage%d_unit%d" % (i + 1, j + 2),
                                 bottle_neck, bn_mom)
    body = mx.sym.BatchNorm(body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn1")
    body = mx.sym.Activation(body, act_type="relu", name="relu1")
    pool = mx.sym.Pooling(body, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    fc = mx.sym.FullyConnected(mx.sym.Flatten(pool), num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(fc, name="softmax")


def get_symbol(num_classes, num_layers, image_shape, conv_workspace=256, **kwargs):
    """MXNet's resnet get_symbol: image_shape like "3,224,224" or (3, 224, 224)."""
    if isinstance(image_shape, str):
        image_shape = tuple(int(v) for v in image_shape.split(","))
    height = image_shape[1]
    if height <= 28:
        num_stages = 3
        if (num_layers - 2) % 9 == 0 and num_layers >= 164:
            per_unit, filter_list, bottle_neck = [(num_layers - 2) // 9], [16, 64, 128, 256], True
        elif (num_layers - 2) % 6 == 0 and num_layers < 164:
            per_unit, filter_list, bottle_neck = [(num_layers - 2) // 6], [16, 16, 32, 64], False
        else:
            raise ValueError("no experiments done on num_layers %d, you can do it yourself" % num_layers)
        units = per_unit * num_stages
    else:
        filter_list = [64, 256, 512, 1024, 2048] if num_layers >= 50 else [64, 64, 128, 256, 512]
        bottle_neck = num_layers >= 50
        num_stages = 4
        units = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3],
                 200: [3, 24, 36, 3], 269: [3, 30, 48, 8]}.get(num_layers)
        if units is None:
            raise ValueError("no experiments done on num_layers %d, you can do it yourself" % num_layers)
    return resnet(units, num_stages, filter_list, num_classes, image_shape, bottle_neck)
