"""Make the files the README's `onnxsym` command-line examples read, in the current folder.

    python examples/make_cli_files.py

writes resnet-18-symbol.json + resnet-18-0000.params (MXNet's ResNet-18 for 224x224 images from the model zoo,
`onnxsym.models.resnet`, with Xavier-initialized random weights: an untrained checkpoint in MXNet's format, as
`mx.model.save_checkpoint` writes it) and x.npy (one seeded float32 image batch of shape (1, 3, 224, 224)).
"""
import argparse
import os

import numpy as np

import onnxsym as mx
from onnxsym.models import resnet

PREFIX = "resnet-18"
IMAGE_SHAPE = (3, 224, 224)


def random_checkpoint(seed):
    """ResNet-18's symbol with Xavier-initialized arguments and BatchNorm's default moving statistics."""
    net = resnet.get_symbol(num_classes=1000, num_layers=18, image_shape=IMAGE_SHAPE)
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (1,) + IMAGE_SHAPE)], for_training=False)
    mx.random.seed(seed)
    mod.init_params(initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    arg_params, aux_params = mod.get_params()
    return net, arg_params, aux_params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of x.npy (0)")
    args = parser.parse_args()
    net, arg_params, aux_params = random_checkpoint(args.seed)
    mx.model.save_checkpoint(PREFIX, 0, net, arg_params, aux_params)
    x = np.random.RandomState(args.seed).uniform(-1, 1, (1,) + IMAGE_SHAPE).astype(np.float32)
    np.save("x.npy", x)
    count = sum(int(np.prod(array.shape)) for array in list(arg_params.values()) + list(aux_params.values()))
    print("wrote %s-symbol.json + %s-0000.params (ResNet-18, %d random parameters) and x.npy %s in %s"
          % (PREFIX, PREFIX, count, x.shape, os.getcwd()))


if __name__ == "__main__":
    main()
