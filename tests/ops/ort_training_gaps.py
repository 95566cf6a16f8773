"""Ops the legacy cross-check backend (ONNXSYM_AUTOGRAD=ort-training, onnxruntime-training 1.19.2's gradient
builders) cannot differentiate: their lowerings use ONNX ops it has no gradient builder or float64 gradient
kernel for. onnxsym's own gradients (the default backend) differentiate them and are checked in these suites;
under the cross-check backend they are skipped, saying why."""
import pytest

from onnxsym.autograd.training import backend

_NO_FLOOR = "no gradient builder for Floor (the bilinear sampling grid)"
_SCATTER = "no gradient builder for ScatterND"
ORT_TRAINING_GAPS = {
    "BilinearSampler": _NO_FLOOR, "GridGenerator": _NO_FLOOR, "SpatialTransformer": _NO_FLOOR,
    "Correlation": "no gradient builders for its padded window sums",
    "CTCLoss": "no gradient builders for the log-space recursion's ops",
    "_linalg_det": "no gradient builder for Det / com.microsoft Inverse",
    "_linalg_slogdet": "no gradient builder for Det / com.microsoft Inverse",
    "_linalg_inverse": "no gradient builder for com.microsoft Inverse",
    "_linalg_potri": "no gradient builder for com.microsoft Inverse",
    "_linalg_trsm": "no gradient builder for com.microsoft Inverse",
    "_linalg_gelqf": "its factorization's Loop has no gradient builder",
    "_slice_assign": _SCATTER, "_slice_assign_scalar": _SCATTER, "_contrib_index_copy": _SCATTER,
    "fill_element_0index": _SCATTER,
    "_contrib_interleaved_matmul_selfatt_qk": "no float64 FusedMatMul gradient kernel",
    "_contrib_interleaved_matmul_selfatt_valatt": "no float64 FusedMatMul gradient kernel",
    "_contrib_interleaved_matmul_encdec_qk": "no float64 FusedMatMul gradient kernel",
    "_contrib_interleaved_matmul_encdec_valatt": "no float64 FusedMatMul gradient kernel",
}


def skip_ort_training_gap(op_name):
    if backend() == "ort-training" and op_name in ORT_TRAINING_GAPS:
        pytest.skip("onnxruntime-training cannot differentiate %s: %s" % (op_name, ORT_TRAINING_GAPS[op_name]))
