"""MXNet's dynamic loss scaler for AMP (python/mxnet/contrib/amp/loss_scaler.py)."""
import logging

import numpy as np

__all__ = ["LossScaler"]


class LossScaler:
    """Dynamic loss scaler for AMP: the scale starts at 2**16, halves after a step whose gradients overflow and
    doubles (up to 2**24) after 2000 steps without one.

    Properties
    ----------
    loss_scale : float
        The current loss scale
    """

    def __init__(self):
        self._loss_scale = 2. ** 16
        self._next_loss_scale = self._loss_scale
        self._max_loss_scale = 2. ** 24
        self._scale_seq_len = 2000
        self._unskipped = 0

    @property
    def loss_scale(self):
        return self._loss_scale

    def has_overflow(self, params):
        """Whether a gradient of `params` (objects with a `_grad` list of NDArrays, or NDArrays) is not finite;
        updates the scale for the next step."""
        grads = [p._grad[0] if hasattr(p, "_grad") else p for p in params]
        has_overflow = not all(np.isfinite(g.asnumpy()).all() for g in grads if g is not None)
        self._loss_scale = self._next_loss_scale
        if has_overflow:
            self._next_loss_scale = self._loss_scale / 2.
            self._unskipped = 0
            logging.info("AMP: decreasing loss scale to %f", self._next_loss_scale)
        else:
            self._unskipped += 1
        if self._unskipped == self._scale_seq_len:
            self._unskipped = 0
            self._next_loss_scale = min(self._max_loss_scale, self._loss_scale * 2.)
            logging.info("AMP: increasing loss scale to %f", self._next_loss_scale)
        return has_overflow
