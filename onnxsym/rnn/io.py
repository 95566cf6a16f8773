"""Sentence data for RNNs (MXNet 1.x's `mxnet.rnn.io`): `encode_sentences` (words to integer ids) and
`BucketSentenceIter` (batches of sentences padded to bucket lengths, for BucketingModule)."""
import bisect
import random

import numpy as np

from .. import ndarray
from ..base import MXNetError
from ..module.io import DataBatch, DataDesc, DataIter

__all__ = ["encode_sentences", "BucketSentenceIter"]


class _InvalidValue(MXNetError, ValueError):
    """A bad argument, reported as MXNet's ValueError."""


class _UnknownToken(MXNetError, AssertionError):
    """A word outside a given vocabulary with no unknown_token: MXNet asserts (AssertionError)."""


def encode_sentences(sentences, vocab=None, invalid_label=-1, invalid_key="\n", start_label=0, unknown_token=None):
    """Each sentence (a list of words) as a list of integer ids.

    Parameters
    ----------
    sentences : list of list of str
    vocab : dict of str to int, optional
        Ids to use; when None, a new vocabulary {invalid_key: invalid_label} grows with every new word.
    invalid_label : int, default -1
        Id never given to a word (the padding label).
    invalid_key : str, default '\\n'
    start_label : int, default 0
        First id of new words.
    unknown_token : str, optional
        With a given vocab, words outside it map to this token (added with the next id if new); without one
        they are an error.

    Returns
    -------
    (list of list of int, dict of str to int)
    """
    idx = start_label
    new_vocab = vocab is None
    if new_vocab:
        vocab = {invalid_key: invalid_label}
    result = []
    for sentence in sentences:
        coded = []
        for word in sentence:
            if word not in vocab:
                if not (new_vocab or unknown_token):
                    raise _UnknownToken("Unknown token %s" % word)
                if idx == invalid_label:
                    idx += 1
                if unknown_token:
                    word = unknown_token
                vocab[word] = idx
                idx += 1
            coded.append(vocab[word])
        result.append(coded)
    return result, vocab


class BucketSentenceIter(DataIter):
    """Batches of encoded sentences, each padded with `invalid_label` to the shortest bucket that holds it; the
    label is the data shifted left by one step. Sentences longer than every bucket are dropped (with a warning
    on stdout, as MXNet prints). reset() reshuffles with Python's `random` and numpy's global generator.

    Parameters
    ----------
    sentences : list of list of int
    batch_size : int
    buckets : list of int, optional
        Bucket lengths; default: every sentence length that occurs at least batch_size times.
    invalid_label : int, default -1
    data_name : str, default 'data'
    label_name : str, default 'softmax_label'
    dtype : str, default 'float32'
    layout : {'NT', 'TN'}, default 'NT'
    """

    def __init__(self, sentences, batch_size, buckets=None, invalid_label=-1, data_name="data",
                 label_name="softmax_label", dtype="float32", layout="NT"):
        super().__init__()
        if not isinstance(layout, str) or layout.find("N") not in (0, 1):
            raise _InvalidValue("Invalid layout %s: Must by NT (batch major) or TN (time major)" % (layout,))
        if not buckets:
            buckets = [i for i, j in enumerate(np.bincount([len(s) for s in sentences])) if j >= batch_size]
        buckets.sort()

        ndiscard = 0
        self.data = [[] for _ in buckets]
        valid_buckets = dict.fromkeys(range(len(buckets)), 0)
        for sentence in sentences:
            buck = bisect.bisect_left(buckets, len(sentence))
            valid_buckets[buck] = 1
            if buck == len(buckets):
                ndiscard += 1
                continue
            buff = np.full((buckets[buck],), invalid_label, dtype=dtype)
            buff[:len(sentence)] = sentence
            self.data[buck].append(buff)
        buckets = [j for i, j in enumerate(buckets) if valid_buckets[i] == 1]
        self.data = [np.asarray(i, dtype=dtype) for i in self.data if i]
        print("WARNING: discarded %d sentences longer than the largest bucket." % ndiscard)
        if not buckets:
            raise _InvalidValue("BucketSentenceIter: no bucket holds any sentence (%d sentences, batch_size %d, "
                                "buckets %s)" % (len(sentences), batch_size, buckets))

        self.batch_size = batch_size
        self.buckets = buckets
        self.data_name = data_name
        self.label_name = label_name
        self.dtype = dtype
        self.invalid_label = invalid_label
        self.nddata = []
        self.ndlabel = []
        self.major_axis = layout.find("N")
        self.layout = layout
        self.default_bucket_key = max(buckets)
        shape = ((batch_size, self.default_bucket_key) if self.major_axis == 0
                 else (self.default_bucket_key, batch_size))
        self.provide_data = [DataDesc(name=self.data_name, shape=shape, layout=self.layout)]
        self.provide_label = [DataDesc(name=self.label_name, shape=shape, layout=self.layout)]

        self.idx = []
        for i, buck in enumerate(self.data):
            self.idx.extend([(i, j) for j in range(0, len(buck) - batch_size + 1, batch_size)])
        self.curr_idx = 0
        self.reset()

    def reset(self):
        """Start a new epoch: shuffle the batch order and each bucket's sentences."""
        self.curr_idx = 0
        random.shuffle(self.idx)
        for buck in self.data:
            np.random.shuffle(buck)
        self.nddata = []
        self.ndlabel = []
        for buck in self.data:
            label = np.empty_like(buck)
            label[:, :-1] = buck[:, 1:]
            label[:, -1] = self.invalid_label
            self.nddata.append(ndarray.array(buck, dtype=self.dtype))
            self.ndlabel.append(ndarray.array(label, dtype=self.dtype))

    def next(self):
        """The next batch (bucket_key = its bucket length); StopIteration at the end of the epoch."""
        if self.curr_idx == len(self.idx):
            raise StopIteration
        i, j = self.idx[self.curr_idx]
        self.curr_idx += 1
        data = self.nddata[i][j:j + self.batch_size]
        label = self.ndlabel[i][j:j + self.batch_size]
        if self.major_axis == 1:
            data, label = data.T, label.T
        return DataBatch([data], [label], pad=0, bucket_key=self.buckets[i],
                         provide_data=[DataDesc(name=self.data_name, shape=data.shape, layout=self.layout)],
                         provide_label=[DataDesc(name=self.label_name, shape=label.shape, layout=self.layout)])
