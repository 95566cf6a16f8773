"""MobileNetV2 as in MXNet's example/image-classification/symbols/mobilenetv2.py (global average pooling, so any
input of at least 32x32 works; width multiplier `multiplier`)."""
import onnxsym as mx

__all__ = ["get_symbol", "MobileNetV2", "mobilenet_unit", "inverted_residual_unit", "inverted_residual_blocks",
           "MNETV2_CONFIGS_MAP"]

MNETV2_CONFIGS_MAP = {
    (224, 224): {
        "firstconv_filter_num": 32,
        # expansion t, output channels c, repeats n, first stride s
        "bottleneck_params_list": [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                   (6, 160, 3, 2), (6, 320, 1, 1)],
        "filter_num_before_gp": 1280,
    }
}


def relu6(data, prefix):
    """min(max(x, 0), 6) as MXNet's clip named prefix-relu6."""
    return mx.sym.clip(data, a_min=0, a_max=6, name="%s-relu6" % prefix)


def shortcut(data_in, data_residual, prefix):
    """The residual sum named prefix-shortcut."""
    return mx.sym.elemwise_add(data_in, data_residual, name="%s-shortcut" % prefix)


def mobilenet_unit(data, num_filter=1, kernel=(1, 1), stride=(1, 1), pad=(0, 0), num_group=1, if_act=True,
                   prefix=""):
    """Convolution (no bias) and BatchNorm, then relu6 when if_act."""
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, num_group=num_group, stride=stride,
                              pad=pad, no_bias=True, name="%s-conv2d" % prefix)
    bn = mx.sym.BatchNorm(data=conv, name="%s-batchnorm" % prefix, fix_gamma=False, use_global_stats=False,
                          eps=1e-5)
    return relu6(bn, prefix) if if_act else bn


def inverted_residual_unit(data, num_in_filter, num_filter, ifshortcut, stride, kernel, pad, expansion_factor,
                           prefix):
    """1x1 expansion, depthwise convolution, linear 1x1 projection (+ the input when ifshortcut)."""
    num_expfilter = int(round(num_in_filter * expansion_factor))
    body = mobilenet_unit(data=data, num_filter=num_expfilter, kernel=(1, 1), stride=(1, 1), pad=(0, 0),
                          num_group=1, if_act=True, prefix="%s-exp" % prefix)
    body = mobilenet_unit(data=body, num_filter=num_expfilter, stride=stride, kernel=kernel, pad=pad,
                          num_group=num_expfilter, if_act=True, prefix="%s-depthwise" % prefix)
    body = mobilenet_unit(data=body, num_filter=num_filter, kernel=(1, 1), stride=(1, 1), pad=(0, 0), num_group=1,
                          if_act=False, prefix="%s-linear" % prefix)
    return shortcut(data_in=data, data_residual=body, prefix=prefix) if ifshortcut else body


def inverted_residual_blocks(data, in_c, t, c, n, s, prefix):
    """n inverted residual units: the first with stride s and no shortcut, the rest with identity shortcuts."""
    body = inverted_residual_unit(data=data, num_in_filter=in_c, num_filter=c, ifshortcut=False, stride=(s, s),
                                  kernel=(3, 3), pad=(1, 1), expansion_factor=t, prefix="%s-block0" % prefix)
    for i in range(1, n):
        body = inverted_residual_unit(data=body, num_in_filter=c, num_filter=c, ifshortcut=True, stride=(1, 1),
                                      kernel=(3, 3), pad=(1, 1), expansion_factor=t,
                                      prefix="%s-block%d" % (prefix, i))
    return body


class MobileNetV2:
    """Builder of the network for a (width, height) configuration and a width multiplier."""

    def __init__(self, data_wh, multiplier, **kargs):
        self.data_wh = data_wh
        self.multiplier = multiplier
        self.config_map = dict(MNETV2_CONFIGS_MAP.get(self.data_wh, MNETV2_CONFIGS_MAP[(224, 224)]))

    def build_network(self, class_num=1000, **configs):
        """The classification network with a SoftmaxOutput head named 'softmax'."""
        self.config_map.update(configs)
        data = mx.sym.Variable("data")
        first_c = int(round(self.config_map["firstconv_filter_num"] * self.multiplier))
        body = mobilenet_unit(data=data, num_filter=first_c, kernel=(3, 3), stride=(2, 2), pad=(1, 1), if_act=True,
                              prefix="first-3x3-conv")
        in_c = first_c
        for i, (t, c, n, s) in enumerate(self.config_map["bottleneck_params_list"]):
            out_c = int(round(c * self.multiplier))
            body = inverted_residual_blocks(data=body, in_c=in_c, t=t, c=out_c, n=n, s=s, prefix="seq-%d" % i)
            in_c = out_c
        last_c = int(1280 * self.multiplier) if self.multiplier > 1.0 else 1280
        body = mobilenet_unit(data=body, num_filter=last_c, kernel=(1, 1), stride=(1, 1), pad=(0, 0), if_act=True,
                              prefix="last-1x1-conv")
        pool_size = int(self.data_wh[0] / 32)
        pool = mx.sym.Pooling(data=body, kernel=(pool_size, pool_size), stride=(1, 1), pool_type="avg",
                              name="global_pool", global_pool=True)
        flatten = mx.sym.Flatten(data=pool, name="flatten")
        fc = mx.sym.FullyConnected(data=flatten, num_hidden=class_num, name="fc")
        return mx.sym.SoftmaxOutput(data=fc, name="softmax")

    def __call__(self, class_num=1000, layer_out=None, **configs):
        """The network, or the internal output(s) named by layer_out (a name or a list of names)."""
        sym = self.build_network(class_num=class_num, **configs)
        if layer_out is None:
            return sym
        internals = sym.get_internals()
        if isinstance(layer_out, (list, tuple)):
            return [internals[name.strip() + "_output"] for name in layer_out]
        return internals[layer_out.strip() + "_output"]


def get_symbol(num_classes=1000, multiplier=1.0, **kwargs):
    """MXNet's mobilenetv2 get_symbol (the 224x224 configuration; global pooling accepts other sizes)."""
    return MobileNetV2((224, 224), multiplier=multiplier)(class_num=num_classes, layer_out=None)
