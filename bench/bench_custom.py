"""Custom-op overhead: a Python identity op (mx.operator) on 1M floats inside the ORT graph, against ORT's own
Identity plus one numpy copy, both through Executor.forward in the same process.

    python bench/bench_custom.py
"""

import numpy as np

import onnxsym as mx
from _common import per_call


class Identity(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0])

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], out_grad[0])


@mx.operator.register("bench_identity")
class IdentityProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, shapes, dtypes):
        return Identity()


def main():
    x = mx.sym.Variable("x")
    data = np.random.RandomState(0).rand(1000, 1000).astype(np.float32)
    custom = mx.sym.Custom(x, op_type="bench_identity").simple_bind(mx.cpu(), grad_req="null", x=data.shape)
    builtin = mx.sym.identity(x).simple_bind(mx.cpu(), grad_req="null", x=data.shape)
    for exe in (custom, builtin):
        exe.arg_dict["x"][:] = data
        exe.forward()
    np.testing.assert_array_equal(custom.outputs[0].asnumpy(), data)
    copy_target = np.empty_like(data)
    t_custom = per_call(custom.forward, 50, 7, min)
    t_builtin = per_call(builtin.forward, 50, 7, min)
    t_copy = per_call(lambda: np.copyto(copy_target, data), 50, 7, min)
    budget = 2 * (t_builtin + t_copy)
    print("custom identity (1M floats)   %8.3f ms" % (t_custom * 1e3))
    print("ORT Identity                  %8.3f ms" % (t_builtin * 1e3))
    print("numpy copy                    %8.3f ms" % (t_copy * 1e3))
    print("custom / (Identity + copy)    %8.2fx   (goal <= 2x)" % (t_custom / (t_builtin + t_copy)))


if __name__ == "__main__":
    main()
