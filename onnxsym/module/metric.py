"""Online evaluation metrics (MXNet 1.9.1's `mx.metric`), computed with numpy on NDArray or numpy inputs.

Every metric keeps a local pair (`sum_metric`, `num_inst`), cleared by `reset_local()` between log intervals,
and a global pair (`global_sum_metric`, `global_num_inst`) cleared only by `reset()`::

    >>> acc = create('acc')
    >>> acc.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> acc.get()
    ('accuracy', 0.6666666666666666)

Numbers follow MXNet 1.9.1 exactly, quirks included (each is marked "MXNet 1.9.1:" where it happens).
"""
import json
import math
import warnings
from collections import OrderedDict

import numpy

from ..base import MXNetError
from ..runtime.ndarray import NDArray

__all__ = ["EvalMetric", "CompositeEvalMetric", "Accuracy", "TopKAccuracy", "F1", "MCC", "Perplexity", "MAE",
           "MSE", "RMSE", "CrossEntropy", "NegativeLogLikelihood", "PearsonCorrelation", "PCC", "Loss", "Torch",
           "Caffe", "CustomMetric", "check_label_shapes", "create", "register", "alias", "np"]

_ARRAY_TYPES = (NDArray, numpy.ndarray)


def _numpy(array):
    """The values of an NDArray (copied) or of anything numpy accepts."""
    return array.asnumpy() if isinstance(array, NDArray) else numpy.asarray(array)


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """Check that labels and preds agree in length (or in shape when `shape`); with `wrap`, a single array
    becomes a one-element list. Raises ValueError naming both."""
    label_shape, pred_shape = (labels.shape, preds.shape) if shape else (len(labels), len(preds))
    if label_shape != pred_shape:
        raise ValueError("Shape of labels {} does not match shape of predictions {}".format(label_shape, pred_shape))
    if wrap:
        labels = [labels] if isinstance(labels, _ARRAY_TYPES) else labels
        preds = [preds] if isinstance(preds, _ARRAY_TYPES) else preds
    return labels, preds


class EvalMetric:
    """Base class of all evaluation metrics: accumulates (sum_metric, num_inst), locally and globally.

    Parameters
    ----------
    name : str
        Name of this metric instance for display.
    output_names, label_names : list of str, or None
        Names of the predictions / labels `update_dict` uses; None takes all of them, in order.
    """

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return "EvalMetric: {}".format(dict(self.get_name_value()))

    def get_config(self):
        """The constructor arguments, such that `create(**config)` rebuilds this metric."""
        config = self._kwargs.copy()
        config.update({"metric": self.__class__.__name__, "name": self.name,
                       "output_names": self.output_names, "label_names": self.label_names})
        return config

    def update_dict(self, label, pred):
        """Update with name -> array dicts, picking `label_names` / `output_names` (all values when None)."""
        pred = [pred[name] for name in self.output_names] if self.output_names is not None else list(pred.values())
        label = [label[name] for name in self.label_names] if self.label_names is not None \
            else list(label.values())
        self.update(label, pred)

    def update(self, labels, preds):
        """Accumulate one batch: `labels` and `preds` are lists of arrays."""
        raise NotImplementedError()

    def reset(self):
        """Clear the local and the global statistics."""
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self):
        """Clear the local statistics only."""
        self.num_inst = 0
        self.sum_metric = 0.0

    def get(self):
        """(name, value) since the last reset_local(); value is nan before any instance."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.sum_metric / self.num_inst)

    def get_global(self):
        """(name, value) since the last reset()."""
        if not self._has_global_stats:
            return self.get()
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.global_sum_metric / self.global_num_inst)

    def get_name_value(self):
        """get() as a list of (name, value) pairs."""
        return _zip_pairs(*self.get())

    def get_global_name_value(self):
        """get_global() as a list of (name, value) pairs."""
        if not self._has_global_stats:
            return self.get_name_value()
        return _zip_pairs(*self.get_global())

    def _add(self, value, count):
        """Add to both the local and the global statistics."""
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count


def _zip_pairs(name, value):
    return list(zip(name if isinstance(name, list) else [name], value if isinstance(value, list) else [value]))


_REGISTRY = {}


def register(klass, name=None):
    """Register an EvalMetric subclass for `create()` under `name` (default: the class name), lower-cased."""
    if not issubclass(klass, EvalMetric):
        raise AssertionError("Can only register subclass of EvalMetric")
    name = (klass.__name__ if name is None else name).lower()
    if name in _REGISTRY:
        warnings.warn("New metric %s.%s registered with name %s is overriding existing metric %s.%s" % (
            klass.__module__, klass.__name__, name, _REGISTRY[name].__module__, _REGISTRY[name].__name__),
            UserWarning, stacklevel=2)
    _REGISTRY[name] = klass
    return klass


def alias(*aliases):
    """Class decorator registering a metric under each of `aliases` as well."""
    def decorate(klass):
        for name in aliases:
            register(klass, name)
        return klass
    return decorate


def _create_registered(*args, **kwargs):
    """Build from a registered name, an instance, a config dict, or a JSON '["name", {kwargs}]' / '{config}'."""
    if args:
        metric, args = args[0], args[1:]
    else:
        metric = kwargs.pop("metric")
    if isinstance(metric, EvalMetric):
        if args or kwargs:
            raise AssertionError("metric is already an instance. Additional arguments are invalid")
        return metric
    if isinstance(metric, dict):
        return _create_registered(**metric)
    if not isinstance(metric, str):
        raise AssertionError("metric must be of string type")
    if metric.startswith("[") or metric.startswith("{"):
        if args or kwargs:
            raise AssertionError("a JSON metric spec takes no further arguments")
        spec = json.loads(metric)
        return _create_registered(spec[0], **spec[1]) if metric.startswith("[") else _create_registered(**spec)
    name = metric.lower()
    if name not in _REGISTRY:
        raise AssertionError("%s is not registered. Please register with metric.register first" % name)
    return _REGISTRY[name](*args, **kwargs)


def create(metric, *args, **kwargs):
    """Create a metric from a registered name, an EvalMetric, a list (-> CompositeEvalMetric) or a
    feval(label, pred) callable (-> CustomMetric); extra arguments go to the constructor.

    >>> create('top_k_accuracy', top_k=5).name
    'top_k_accuracy_5'
    >>> create(['acc', 'ce']).get()
    (['accuracy', 'cross-entropy'], [nan, nan])
    """
    if callable(metric):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    return _create_registered(metric, *args, **kwargs)


@register
@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; get() returns ([names], [values]).

    >>> m = CompositeEvalMetric(['acc', 'f1'])
    >>> m.get()
    (['accuracy', 'f1'], [nan, nan])
    """

    def __init__(self, metrics=None, name="composite", output_names=None, label_names=None):
        self.metrics = []
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric):
        """Append a child metric (anything `create` accepts)."""
        self.metrics.append(create(metric))

    def get_metric(self, index):
        """The child metric at `index`."""
        # MXNet 1.9.1 returns (not raises) this ValueError; raising it makes the mistake visible.
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError("Metric index {} is out of range 0 and {}".format(index, len(self.metrics))) from None

    def update_dict(self, labels, preds):
        """Filter by this metric's label/output names, then let each child pick its own."""
        if self.label_names is not None:
            labels = OrderedDict([i for i in labels.items() if i[0] in self.label_names])
        if self.output_names is not None:
            preds = OrderedDict([i for i in preds.items() if i[0] in self.output_names])
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds):
        """Update every child with the same batch."""
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self):
        """Reset every child."""
        for metric in self.metrics:
            metric.reset()

    def reset_local(self):
        """Reset every child's local statistics."""
        for metric in self.metrics:
            metric.reset_local()

    def get(self):
        """([names], [values]) of all children."""
        return self._collect(lambda metric: metric.get())

    def get_global(self):
        """([names], [global values]) of all children."""
        return self._collect(lambda metric: metric.get_global())

    def _collect(self, read):
        names, values = [], []
        for metric in self.metrics:
            name, value = read(metric)
            names.extend([name] if isinstance(name, str) else name)
            values.extend([value] if isinstance(value, (int, float, numpy.generic)) else value)
        return (names, values)

    def get_config(self):
        config = super().get_config()
        config.update({"metrics": [m.get_config() for m in self.metrics]})
        return config


########################
# Classification metrics
########################


@register
@alias("acc")
class Accuracy(EvalMetric):
    """Fraction of samples whose predicted class (argmax over `axis`, unless the prediction already has the
    label's shape) equals the label.

    >>> m = Accuracy()
    >>> m.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> m.get()
    ('accuracy', 0.6666666666666666)
    """

    def __init__(self, axis=1, name="accuracy", output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _numpy(label), _numpy(pred)
            if pred.shape != label.shape:
                pred = pred.argmax(axis=self.axis)
            label, pred = label.astype("int32").ravel(), pred.astype("int32").ravel()
            check_label_shapes(label, pred)
            self._add(int((pred == label).sum()), len(pred))


@register
@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the `top_k` highest-scored classes; named 'top_k_accuracy_<k>'.

    >>> m = TopKAccuracy(top_k=2)
    >>> m.update([mx.nd.array([2, 0])], [mx.nd.array([[0.1, 0.5, 0.4], [0.2, 0.3, 0.5]])])
    >>> m.get()
    ('top_k_accuracy_2', 0.5)
    """

    def __init__(self, top_k=1, name="top_k_accuracy", output_names=None, label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if not self.top_k > 1:
            raise AssertionError("Please use Accuracy if top_k is no more than 1")
        self.name += "_%d" % self.top_k

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred = _numpy(pred)
            if pred.ndim > 2:
                raise AssertionError("Predictions should be no more than 2 dims")
            # The last top_k positions of an argpartition hold the top_k classes (MXNet uses the same call).
            ranked = numpy.argpartition(pred.astype("float32"), -self.top_k)
            label = _numpy(label).astype("int32")
            check_label_shapes(label, ranked)
            if ranked.ndim == 1:
                # MXNet 1.9.1: a 1-D prediction adds its hits to the local sum only.
                self.sum_metric += int((ranked == label.ravel()).sum())
            else:
                columns = ranked[:, ranked.shape[1] - min(ranked.shape[1], self.top_k):]
                hits = int((columns == label.reshape(-1, 1)).sum())
                self.sum_metric += hits
                self.global_sum_metric += hits
            self.num_inst += ranked.shape[0]
            self.global_num_inst += ranked.shape[0]


class _BinaryClassificationMetrics:
    """True/false positive/negative counts of binary predictions, locally and globally."""

    _COUNTS = ("true_positives", "false_negatives", "false_positives", "true_negatives")

    def __init__(self):
        self.reset_stats()

    def update_binary_stats(self, label, pred):
        """Count one (label, pred) pair; the predicted class is argmax over axis 1."""
        pred = _numpy(pred)
        label = _numpy(label).astype("int32")
        pred_label = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError("%s currently only supports binary classification." % self.__class__.__name__)
        pred_true, label_true = pred_label == 1, label == 1
        pred_false, label_false = ~pred_true, ~label_true
        counts = {"true_positives": (pred_true & label_true).sum(), "false_positives": (pred_true & label_false).sum(),
                  "false_negatives": (pred_false & label_true).sum(),
                  "true_negatives": (pred_false & label_false).sum()}
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + int(value))
            setattr(self, "global_" + key, getattr(self, "global_" + key) + int(value))

    def _counts(self, use_global):
        prefix = "global_" if use_global else ""
        return [float(getattr(self, prefix + key)) for key in self._COUNTS]

    def _fscore(self, use_global):
        true_pos, false_neg, false_pos, _ = self._counts(use_global)
        precision = true_pos / (true_pos + false_pos) if true_pos + false_pos > 0 else 0.
        recall = true_pos / (true_pos + false_neg) if true_pos + false_neg > 0 else 0.
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.

    @property
    def fscore(self):
        return self._fscore(False)

    @property
    def global_fscore(self):
        return self._fscore(True)

    def matthewscc(self, use_global=False):
        """Matthews correlation coefficient; zero factors of the denominator count as 1."""
        true_pos, false_neg, false_pos, true_neg = self._counts(use_global)
        if not true_pos + false_neg + false_pos + true_neg:
            return 0.
        denom = 1.
        for term in (true_pos + false_pos, true_pos + false_neg, true_neg + false_pos, true_neg + false_neg):
            denom *= term if term != 0. else 1.
        return ((true_pos * true_neg) - (false_pos * false_neg)) / math.sqrt(denom)

    @property
    def total_examples(self):
        return sum(getattr(self, key) for key in self._COUNTS)

    @property
    def global_total_examples(self):
        return sum(getattr(self, "global_" + key) for key in self._COUNTS)

    def local_reset_stats(self):
        for key in self._COUNTS:
            setattr(self, key, 0)

    def reset_stats(self):
        for key in self._COUNTS:
            setattr(self, key, 0)
            setattr(self, "global_" + key, 0)


def _binary_update(metric, stats, average, score, labels, preds):
    """F1 / MCC update: 'macro' averages score() per update, anything else ('micro') scores all counts at once."""
    labels, preds = check_label_shapes(labels, preds, True)
    for label, pred in zip(labels, preds):
        stats.update_binary_stats(label, pred)
    if average == "macro":
        metric.sum_metric += score(False)
        metric.global_sum_metric += score(True)
        metric.num_inst += 1
        metric.global_num_inst += 1
        stats.reset_stats()
    else:
        metric.sum_metric = score(False) * stats.total_examples
        metric.global_sum_metric = score(True) * stats.global_total_examples
        metric.num_inst = stats.total_examples
        metric.global_num_inst = stats.global_total_examples


@register
class F1(EvalMetric):
    """F1 score (harmonic mean of precision and recall) of a binary classifier; class 1 is positive.

    >>> m = F1()
    >>> m.update([mx.nd.array([0., 1., 1.])], [mx.nd.array([[0.3, 0.7], [0., 1.], [0.4, 0.6]])])
    >>> m.get()
    ('f1', 0.8)
    """

    def __init__(self, name="f1", output_names=None, label_names=None, average="macro"):
        self.average = average
        self.metrics = _BinaryClassificationMetrics()
        super().__init__(name=name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        _binary_update(self, self.metrics, self.average,
                       lambda use_global: self.metrics.global_fscore if use_global else self.metrics.fscore,
                       labels, preds)

    def reset(self):
        super().reset()
        self.metrics.reset_stats()

    def reset_local(self):
        super().reset_local()
        self.metrics.local_reset_stats()


@register
class MCC(EvalMetric):
    """Matthews correlation coefficient of a binary classifier (zero denominator factors count as 1).

    >>> m = MCC()
    >>> m.update([mx.nd.array([0, 1, 1, 0])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6], [0.9, 0.1]])])
    >>> m.get()
    ('mcc', 0.5773502691896258)
    """

    def __init__(self, name="mcc", output_names=None, label_names=None, average="macro"):
        self._average = average
        self._metrics = _BinaryClassificationMetrics()
        super().__init__(name=name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        _binary_update(self, self._metrics, self._average, self._metrics.matthewscc, labels, preds)

    def reset(self):
        super().reset()
        self._metrics.reset_stats()

    def reset_local(self):
        super().reset_local()
        self._metrics.local_reset_stats()


@register
class Perplexity(EvalMetric):
    """exp(mean negative log-probability of the label class); labels equal to `ignore_label` are skipped.

    >>> m = Perplexity(ignore_label=None)
    >>> m.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> m.get()
    ('perplexity', 1.7710976285155853)
    """

    def __init__(self, ignore_label, axis=-1, name="perplexity", output_names=None, label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds):
        if len(labels) != len(preds):
            raise AssertionError("Shape of labels {} does not match shape of predictions {}".format(
                len(labels), len(preds)))
        loss, num = 0., 0
        for label, pred in zip(labels, preds):
            label, pred = _numpy(label), _numpy(pred)
            if label.size != pred.size / pred.shape[-1]:
                raise AssertionError("shape mismatch: %s vs. %s" % (label.shape, pred.shape))
            label = label.reshape((label.size,))
            prob = self._pick(pred, label)
            if self.ignore_label is not None:
                ignore = (label == self.ignore_label).astype(prob.dtype)
                num -= float(ignore.sum())
                prob = prob * (1 - ignore) + ignore
            loss -= float(numpy.log(numpy.maximum(1e-10, prob)).sum())
            num += prob.size
        self._add(loss, num)

    def _pick(self, pred, label):
        """MXNet's pick(pred, label, axis): the index array has pred's shape less `axis`, indices are clipped."""
        axis = self.axis % pred.ndim
        rest = pred.shape[:axis] + pred.shape[axis + 1:]
        if (rest or (1,)) != label.shape:
            raise MXNetError("Shape inconsistent, Provided = [%d], inferred shape=[%s]: Perplexity picks along "
                             "axis %d, so the label needs one value per remaining position" % (
                                 label.size, ",".join(str(d) for d in rest), self.axis))
        index = numpy.clip(label.astype("int32"), 0, pred.shape[axis] - 1).reshape(rest + (1,))
        return numpy.take_along_axis(pred, numpy.moveaxis(index, -1, axis), axis).reshape(label.shape)

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))

    def get_global(self):
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.global_sum_metric / self.global_num_inst))


####################
# Regression metrics
####################


def _regression_update(metric, labels, preds, error):
    """One value per (label, pred) pair: error(label, pred) with 1-D arrays as (N, 1) columns."""
    labels, preds = check_label_shapes(labels, preds, True)
    for label, pred in zip(labels, preds):
        label, pred = _numpy(label), _numpy(pred)
        label = label.reshape(label.shape[0], 1) if label.ndim == 1 else label
        pred = pred.reshape(pred.shape[0], 1) if pred.ndim == 1 else pred
        metric._add(float(error(label, pred)), 1)


@register
class MAE(EvalMetric):
    """Mean absolute error, averaged over the (label, pred) pairs updated.

    >>> m = MAE()
    >>> m.update([mx.nd.array([3, -0.5, 2, 7])], [mx.nd.array([2.5, 0.0, 2, 8])])
    >>> m.get()
    ('mae', 0.5)
    """

    def __init__(self, name="mae", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        _regression_update(self, labels, preds, lambda label, pred: numpy.abs(label - pred).mean())


@register
class MSE(EvalMetric):
    """Mean squared error, averaged over the (label, pred) pairs updated.

    >>> m = MSE()
    >>> m.update([mx.nd.array([3, -0.5, 2, 7])], [mx.nd.array([2.5, 0.0, 2, 8])])
    >>> m.get()
    ('mse', 0.375)
    """

    def __init__(self, name="mse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        _regression_update(self, labels, preds, lambda label, pred: ((label - pred) ** 2.0).mean())


@register
class RMSE(EvalMetric):
    """Root mean squared error, averaged over the (label, pred) pairs updated.

    >>> m = RMSE()
    >>> m.update([mx.nd.array([3, -0.5, 2, 7])], [mx.nd.array([2.5, 0.0, 2, 8])])
    >>> m.get()
    ('rmse', 0.6123724579811096)
    """

    def __init__(self, name="rmse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        _regression_update(self, labels, preds, lambda label, pred: numpy.sqrt(((label - pred) ** 2.0).mean()))


def _log_likelihood_update(metric, labels, preds, message):
    """Sum of -log(p[label] + eps) over samples; `message` says what a sample-count mismatch shows."""
    labels, preds = check_label_shapes(labels, preds, True)
    for label, pred in zip(labels, preds):
        label, pred = _numpy(label).ravel(), _numpy(pred)
        count = pred.shape[0]
        if label.shape[0] != count:
            raise AssertionError(message(label.shape[0], count))
        prob = pred[numpy.arange(count, dtype=numpy.int64), numpy.int64(label)]
        metric._add(float((-numpy.log(prob + metric.eps)).sum()), count)


@register
@alias("ce")
class CrossEntropy(EvalMetric):
    """Mean over samples of -log(p[label] + eps), p being the predicted class probabilities.

    >>> m = CrossEntropy()
    >>> m.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> m.get()
    ('cross-entropy', 0.5715994834899902)
    """

    def __init__(self, eps=1e-12, name="cross-entropy", output_names=None, label_names=None):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        _log_likelihood_update(self, labels, preds, lambda n_label, n_pred: "%d labels for %d predictions" % (
            n_label, n_pred))


@register
@alias("nll_loss")
class NegativeLogLikelihood(EvalMetric):
    """Mean over samples of -log(p[label] + eps); the same numbers as CrossEntropy, named 'nll-loss'.

    >>> m = NegativeLogLikelihood()
    >>> m.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> m.get()
    ('nll-loss', 0.5715994834899902)
    """

    def __init__(self, eps=1e-12, name="nll-loss", output_names=None, label_names=None):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        _log_likelihood_update(self, labels, preds, lambda n_label, n_pred: str((n_label, n_pred)))


@register
@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of labels and predictions: 'macro' averages it per pair, 'micro' over all values.

    >>> m = PearsonCorrelation()
    >>> m.update([mx.nd.array([[1, 0], [0, 1], [0, 1]])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
    >>> m.get()
    ('pearsonr', 0.4216370454401618)
    """

    def __init__(self, name="pearsonr", output_names=None, label_names=None, average="macro"):
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        if self.average == "micro":
            self.reset_micro()

    def reset_micro(self):
        """Clear the running means, sums of squared deviations and co-moment of the 'micro' average."""
        self._sse_p = self._mean_p = self._sse_l = self._mean_l = 0
        self._pred_nums = self._label_nums = self._conv = 0

    def reset(self):
        super().reset()
        if self.average == "micro":
            self.reset_micro()

    @staticmethod
    def update_variance(new_values, *aggregate):
        """Welford's update of (count, mean, M2) with a batch of values."""
        count, mean, m_2 = aggregate
        count += len(new_values)
        delta = new_values - mean
        mean += numpy.sum(delta / count)
        m_2 += numpy.sum(delta * (new_values - mean))
        return count, mean, m_2

    def update_cov(self, label, pred):
        """Add a batch to the co-moment (label mean already updated, prediction mean not yet)."""
        self._conv = self._conv + numpy.sum((label - self._mean_l) * (pred - self._mean_p))

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            check_label_shapes(label, pred, False, True)
            label = _numpy(label).ravel().astype(numpy.float64)
            pred = _numpy(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._add(float(numpy.corrcoef(pred, label)[0, 1]), 1)
            else:
                # MXNet 1.9.1: the 'micro' average never adds to global_sum_metric, so get_global() reads 0.
                self.num_inst += 1
                self.global_num_inst += 1
                self._label_nums, self._mean_l, self._sse_l = self.update_variance(
                    label, self._label_nums, self._mean_l, self._sse_l)
                self.update_cov(label, pred)
                self._pred_nums, self._mean_p, self._sse_p = self.update_variance(
                    pred, self._pred_nums, self._mean_p, self._sse_p)

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        if self.average == "macro":
            return (self.name, self.sum_metric / self.num_inst)
        n = self._label_nums
        return (self.name, float(self._conv / ((n - 1) * numpy.sqrt(self._sse_p / (n - 1))
                                               * numpy.sqrt(self._sse_l / (n - 1)))))


@register
class PCC(EvalMetric):
    """Multiclass Matthews correlation (Pearson correlation of the K x K confusion matrix), K grown as needed.

    >>> m = PCC()
    >>> m.update([mx.nd.array([0, 1, 1, 0])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6], [0.9, 0.1]])])
    >>> m.get()
    ('pcc', 0.5773502691896258)
    """

    def __init__(self, name="pcc", output_names=None, label_names=None, has_global_stats=True):
        self.k = 2
        super().__init__(name=name, output_names=output_names, label_names=label_names,
                         has_global_stats=has_global_stats)

    def _grow(self, inc):
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)), "constant", constant_values=0)
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)), "constant", constant_values=0)
        self.k += inc

    @staticmethod
    def _calc_mcc(cmat):
        n = cmat.sum()
        x, y = cmat.sum(axis=1), cmat.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        cov_xy = numpy.sum(cmat.diagonal() * n - x * y)
        return float(cov_xy / (cov_xx * cov_yy) ** 0.5)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _numpy(label).astype("int32"), _numpy(pred)
            pred = pred.argmax(axis=1) if pred.shape != label.shape else pred.astype("int32")
            n = max(pred.max(), label.max())
            if n >= self.k:
                self._grow(int(n) + 1 - self.k)
            pairs = min(len(pred), len(label))   # MXNet zips the two
            batch = numpy.zeros((self.k, self.k))
            numpy.add.at(batch, (pred[:pairs], label[:pairs]), 1)
            self.lcm += batch
            self.gcm += batch
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self):
        return self._calc_mcc(self.lcm) * self.num_inst

    @property
    def global_sum_metric(self):
        return self._calc_mcc(self.gcm) * self.global_num_inst

    def reset(self):
        self.global_num_inst = 0.
        self.gcm = numpy.zeros((self.k, self.k))
        self.reset_local()

    def reset_local(self):
        self.num_inst = 0.
        self.lcm = numpy.zeros((self.k, self.k))


@register
class Loss(EvalMetric):
    """Mean of the prediction values themselves (for outputs that are already losses); labels are ignored.

    >>> m = Loss()
    >>> m.update(None, [mx.nd.array([1., 2., 3.])])
    >>> m.get()
    ('loss', 2.0)
    """

    def __init__(self, name="loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, _, preds):
        preds = [preds] if isinstance(preds, _ARRAY_TYPES) else preds
        for pred in preds:
            pred = _numpy(pred)
            self._add(float(pred.sum()), pred.size)


@register
class Torch(Loss):
    """Loss metric named 'torch' (for Torch criterion outputs)."""

    def __init__(self, name="torch", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class Caffe(Loss):
    """Loss metric named 'caffe' (for Caffe loss outputs)."""

    def __init__(self, name="caffe", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class CustomMetric(EvalMetric):
    """A metric from feval(label, pred) on numpy arrays, returning a value or a (sum_metric, num_inst) tuple.

    Parameters
    ----------
    feval : callable(label, pred)
    name : str, optional
        Defaults to feval's name ('custom(<lambda>)' for a lambda).
    allow_extra_outputs : bool
        Accept more predictions than labels (e.g. RNN states), pairing them in order.

    >>> m = CustomMetric(lambda label, pred: float((label == pred).sum()))
    >>> m.name
    'custom(<lambda>)'
    """

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None, label_names=None):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = "custom(%s)" % name
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs, output_names=output_names,
                         label_names=label_names, has_global_stats=True)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds):
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels):
            reval = self._feval(_numpy(label), _numpy(pred))
            if isinstance(reval, tuple):
                sum_metric, num_inst = reval
                self._add(sum_metric, num_inst)
            else:
                self._add(reval, 1)

    def get_config(self):
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(numpy_feval, name=None, allow_extra_outputs=False):
    """A CustomMetric from a function of numpy (label, pred) returning a float.

    >>> def mean_abs(label, pred):
    ...     return numpy.mean(numpy.abs(label - pred))
    >>> np(mean_abs).name
    'mean_abs'
    """
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)
