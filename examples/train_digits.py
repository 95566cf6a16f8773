"""onnxsym's main job: MXNet 1.x's MLP tutorial, trained with Module.fit on ONNX Runtime.

The seed tutorial's network (fc 128 -> relu -> fc 64 -> relu -> fc 10 -> SoftmaxOutput) learns scikit-learn's 8x8
handwritten digits (1,797 images shipped inside scikit-learn; nothing is downloaded), logging speed and accuracy
like MXNet's Speedometer. The trained model is saved as an MXNet checkpoint (digits-symbol.json +
digits-0010.params, loadable by MXNet 1.9.1 itself), reloaded and used for prediction, then exported to digits.onnx
and served by ONNX Runtime. The three files go to the folder --out (default: digits-model in the current folder),
which is created first: if it cannot be, the job stops before training.

    pip install ".[demo]" && python examples/train_digits.py [--epochs 10] [--out digits-model]
"""
import argparse
import logging
import os
import sys
import tempfile

import numpy as np

import onnxsym as mx


def load_data(seed=0):
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.float32)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = 1500
    return (x[:split], y[:split]), (x[split:], y[split:])


def mlp():
    data = mx.symbol.Variable('data')
    fc1 = mx.symbol.FullyConnected(data, name='fc1', num_hidden=128)
    act1 = mx.symbol.Activation(fc1, name='relu1', act_type="relu")
    fc2 = mx.symbol.FullyConnected(act1, name='fc2', num_hidden=64)
    act2 = mx.symbol.Activation(fc2, name='relu2', act_type="relu")
    fc3 = mx.symbol.FullyConnected(act2, name='fc3', num_hidden=10)
    return mx.symbol.SoftmaxOutput(fc3, name='softmax')


def writable_folder(folder):
    """Creates `folder` (and its parents) and checks a file can be written there; exits with one line if not."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        sys.exit("train_digits.py: cannot write to the output folder %s: %s" % (folder, err.strerror or err))
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--out", default="digits-model", metavar="FOLDER",
                        help="folder for digits-symbol.json, digits-NNNN.params and digits.onnx, created if missing "
                             "(default: digits-model)")
    args = parser.parse_args()
    folder = writable_folder(args.out)     # before training: a bad --out fails in a second, not after the fit
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mx.random.seed(42)

    (x_train, y_train), (x_val, y_val) = load_data()
    train_iter = mx.io.NDArrayIter(x_train, y_train, batch_size=args.batch_size, shuffle=True)
    eval_iter = mx.io.NDArrayIter(x_val, y_val, batch_size=args.batch_size)

    mod = mx.mod.Module(mlp())
    mod.fit(train_iter, eval_data=eval_iter, initializer=mx.init.Xavier(magnitude=2.0),
            optimizer_params={'learning_rate': 0.1, 'momentum': 0.9}, num_epoch=args.epochs,
            batch_end_callback=mx.callback.Speedometer(args.batch_size, 10))
    accuracy = dict(mod.score(eval_iter, 'acc'))['accuracy']
    print("validation accuracy after %d epochs: %.4f" % (args.epochs, accuracy))

    prefix = os.path.join(folder, "digits")
    mod.save_checkpoint(prefix, args.epochs)
    print("saved MXNet checkpoint %s-symbol.json + %s-%04d.params" % (prefix, prefix, args.epochs))

    reloaded = mx.mod.Module.load(prefix, args.epochs)
    reloaded.bind(data_shapes=eval_iter.provide_data, label_shapes=eval_iter.provide_label, for_training=False)
    probabilities = reloaded.predict(eval_iter).asnumpy()
    predicted = probabilities.argmax(axis=1)
    print("reloaded checkpoint predicts %d validation digits, accuracy %.4f (first ten: %s, labels %s)"
          % (len(predicted), (predicted == y_val).mean(), predicted[:10].tolist(), y_val[:10].astype(int).tolist()))

    onnx_path = mx.onnx.export_model(prefix + "-symbol.json", "%s-%04d.params" % (prefix, args.epochs),
                                     [eval_iter.provide_data[0].shape], onnx_file_path=prefix + ".onnx")
    import onnxruntime
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    served = session.run(None, {"data": x_val[:args.batch_size]})[0]
    print("exported %s; ONNX Runtime serves it: largest difference from onnxsym's probabilities %.2e"
          % (onnx_path, np.abs(served - probabilities[:args.batch_size]).max()))


if __name__ == "__main__":
    main()
