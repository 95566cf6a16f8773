"""MXNet 1.x's symbolic RNN API (`mx.rnn`): cells that unroll into Symbol graphs, the bucketing sentence
iterator and RNN checkpoints."""
from . import io, rnn, rnn_cell
from .io import BucketSentenceIter, encode_sentences
from .rnn import do_rnn_checkpoint, load_rnn_checkpoint, rnn_unroll, save_rnn_checkpoint
from .rnn_cell import (BaseConvRNNCell, BaseRNNCell, BidirectionalCell, ConvGRUCell, ConvLSTMCell, ConvRNNCell,
                       DropoutCell, FusedRNNCell, GRUCell, LSTMCell, ModifierCell, RNNCell, RNNParams,
                       ResidualCell, SequentialRNNCell, ZoneoutCell)

__all__ = rnn_cell.__all__ + rnn.__all__ + io.__all__
