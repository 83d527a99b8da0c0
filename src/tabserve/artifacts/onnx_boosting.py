"""Gradient boosting as ONNX that computes in float64 from end to end, as scikit-learn does.

One ai.onnx.ml 5 `TreeEnsemble` (double in, double out) sums every tree's float64 leaf value,
the constant start (baseline) is added, then the loss's inverse link: sigmoid (binary) or
softmax (multiclass) for a classifier; identity or exp for a histogram regressor. The label
is taken as each model's `predict` takes it. Two model families, one graph:

- HistGradientBoosting{Classifier,Regressor}: the trees compare the float64 input with float64
  thresholds and send NaN to the side each split learned; the label is the class of the largest
  probability (the first one on a tie). skl2onnx's own converter builds float32 nodes (and,
  with skl2onnx 1.20 and onnx 1.23, fails to build them at all). Categorical (bitset) splits
  are not converted: such a model keeps the scikit-learn runtime.
- GradientBoostingClassifier (the lecture's model): its trees compare float32(x), so the input
  is rounded to float32 and back first; the label is `raw >= 0` (binary) or the argmax of the
  raw scores, never of the probabilities. skl2onnx's TreeEnsembleClassifier answers float
  probabilities (~1e-7 from scikit-learn's); this graph answers scikit-learn's to ~1e-16 and
  runs ~5% faster. A model whose start is not a constant (a user's `init` estimator) goes to
  skl2onnx's converter instead.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from onnx import TensorProto

from tabserve.artifacts.onnx_graph import BRANCH_LEQ, ML, EnsembleNodes

# The inverse links of classifier losses: log loss (binary, multiclass) and exponential loss.
_CLASSIFIER_LINKS = ("LogitLink", "MultinomialLogit", "HalfLogitLink")


class Tree(NamedTuple):
    """One tree as parallel per-node arrays (children are node indices, -1 for none)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray  # bool
    value: np.ndarray  # float64 leaf values, learning rate applied
    missing_left: np.ndarray  # 0/1: where NaN goes


def boosting_converters(fallbacks: dict[type, Any]) -> dict[type, Any]:
    """skl2onnx custom converters; `fallbacks` convert what these cannot (GB with a custom init)."""
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    fallback = fallbacks.get(GradientBoostingClassifier)

    def gradient_boosting(scope: Any, operator: Any, container: Any) -> None:
        if fallback is not None and not _own_gradient_boosting(operator.raw_operator):
            fallback(scope, operator, container)
            return
        _convert(scope, operator, container, gradient_boosting_trees(operator.raw_operator))

    def hist_gradient_boosting(scope: Any, operator: Any, container: Any) -> None:
        _convert(scope, operator, container, hist_gradient_boosting_trees(operator.raw_operator))

    return {
        GradientBoostingClassifier: gradient_boosting,
        HistGradientBoostingClassifier: hist_gradient_boosting,
        HistGradientBoostingRegressor: hist_gradient_boosting,
    }


def tree_nodes(model: Any) -> list[np.ndarray]:
    """A HistGradientBoosting model's node arrays, iteration by iteration, output by output."""
    return [predictor.nodes for iteration in model._predictors for predictor in iteration]


def hist_gradient_boosting_trees(model: Any) -> list[Tree]:
    """A fitted HistGradientBoosting model's trees; NotImplementedError for categorical splits."""
    categorical = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None or (
        categorical is not None and np.any(categorical)
    ):
        raise NotImplementedError("HistGradientBoosting with categorical features is not converted")
    return [
        Tree(
            feature=nodes["feature_idx"],
            threshold=nodes["num_threshold"],
            left=nodes["left"].astype(np.int64),
            right=nodes["right"].astype(np.int64),
            is_leaf=nodes["is_leaf"].astype(bool),
            value=nodes["value"],  # shrinkage is already applied
            missing_left=nodes["missing_go_to_left"].astype(np.int64),
        )
        for nodes in tree_nodes(model)
    ]


def _own_gradient_boosting(model: Any) -> bool:
    """Whether this module converts the GradientBoostingClassifier: a constant start, log loss."""
    from sklearn.dummy import DummyClassifier

    init = model.init_
    constant = (isinstance(init, str) and init == "zero") or (
        isinstance(init, DummyClassifier) and init.strategy == "prior"
    )
    return constant and type(model._loss.link).__name__ in _CLASSIFIER_LINKS


def gradient_boosting_trees(model: Any) -> list[Tree]:
    """A fitted GradientBoostingClassifier's trees, stage by stage, class by class."""
    trees = []
    for stage in model.estimators_:
        for estimator in stage:
            tree = estimator.tree_
            leaf = tree.children_left == -1
            trees.append(
                Tree(
                    feature=tree.feature,
                    threshold=tree.threshold,
                    left=tree.children_left,
                    right=tree.children_right,
                    is_leaf=leaf,
                    # predict_stages adds learning_rate * value: the same float64 product.
                    value=model.learning_rate * tree.value[:, 0, 0],
                    missing_left=getattr(tree, "missing_go_to_left", np.zeros(len(leaf))).astype(
                        np.int64
                    ),
                )
            )
    return trees


def ensemble_attributes(trees: list[Tree], n_targets: int) -> dict[str, Any]:
    """TreeEnsemble attributes for trees whose k-th of every `n_targets` adds to target k."""
    nodes = EnsembleNodes()
    for t, tree in enumerate(trees):
        is_leaf = tree.is_leaf
        # Each node's index among the branches (or leaves), past the earlier trees' ones.
        branch = np.cumsum(~is_leaf) - 1 + len(nodes.features)
        leaf = np.cumsum(is_leaf) - 1 + len(nodes.leaf_weights)
        inner = np.flatnonzero(~is_leaf)
        leaves = np.flatnonzero(is_leaf)
        if len(inner) == 0:
            nodes.one_leaf_tree(int(leaf[0]))
        else:
            nodes.roots.append(int(branch[0]))
            nodes.features.extend(tree.feature[inner].tolist())
            nodes.modes.extend([BRANCH_LEQ] * len(inner))
            nodes.splits.extend(tree.threshold[inner].tolist())
            nodes.tracks.extend(tree.missing_left[inner].tolist())
            for children, ids, leafs in (
                (tree.left[inner], nodes.true_ids, nodes.true_leafs),
                (tree.right[inner], nodes.false_ids, nodes.false_leafs),
            ):
                child_is_leaf = is_leaf[children]
                ids.extend(np.where(child_is_leaf, leaf[children], branch[children]).tolist())
                leafs.extend(child_is_leaf.astype(int).tolist())
        nodes.leaf_targets.extend([t % n_targets] * len(leaves))
        nodes.leaf_weights.extend(tree.value[leaves].tolist())
    return nodes.attributes(n_targets)


def is_histogram(model: object) -> bool:
    """Whether the model is a HistGradientBoosting one (its trees compare float64 X)."""
    return hasattr(model, "_predictors")


def _baseline(model: Any, n_features: int) -> np.ndarray:
    if is_histogram(model):
        return np.asarray(model._baseline_prediction, np.float64).reshape(1, -1)
    # GradientBoosting with a constant start: its raw prediction for any row (a model fitted
    # on a DataFrame warns that this row has no column names).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(model._raw_predict_init(np.zeros((1, n_features))), np.float64)


def _convert(scope: Any, operator: Any, container: Any, trees: list[Tree]) -> None:
    """Raw scores from the trees plus the baseline, then the model's outputs."""
    model = operator.raw_operator
    name = scope.get_unique_variable_name
    histogram = is_histogram(model)
    per_iteration = int(model.n_trees_per_iteration_)
    attrs = ensemble_attributes(trees, per_iteration)
    source = operator.inputs[0].full_name
    steps = [TensorProto.DOUBLE] if histogram else [TensorProto.FLOAT, TensorProto.DOUBLE]
    for to in steps:  # float64, through float32 first for trees that compare float32(x)
        cast = name("boosting_input")
        container.add_node("Cast", [source], [cast], to=to)
        source = cast
    trees_out, raw, base = name("boosting_trees"), name("boosting_raw"), name("boosting_start")
    # skl2onnx accepts ai.onnx.ml up to 3 only: `convert.build` declares 5 for the whole graph
    # once it sees a TreeEnsemble node.
    container.add_node(
        "TreeEnsemble", [source], [trees_out], op_domain=ML, op_version=3, name=name("boosting"),
        **attrs,
    )  # fmt: skip
    baseline = _baseline(model, int(model.n_features_in_))
    container.add_initializer(base, TensorProto.DOUBLE, list(baseline.shape), baseline.ravel())
    container.add_node("Add", [trees_out, base], [raw])
    link = type(model._loss.link).__name__
    if not hasattr(model, "classes_"):
        _regressor_output(container, link, raw, operator.outputs[0].full_name)
        return
    _classifier_outputs(scope, container, model, link, raw, operator, histogram)


def _regressor_output(container: Any, link: str, raw: str, out: str) -> None:
    if link == "IdentityLink":
        container.add_node("Identity", [raw], [out])
    elif link == "LogLink":
        container.add_node("Exp", [raw], [out])
    else:
        raise NotImplementedError(f"HistGradientBoostingRegressor with {link} is not converted")


def _classifier_outputs(
    scope: Any, container: Any, model: Any, link: str, raw: str, operator: Any, histogram: bool
) -> None:
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    classes = np.asarray(model.classes_)
    binary = len(classes) == 2
    _probabilities(scope, container, link, binary, raw, proba)
    index = _label_index(scope, container, binary, raw, proba, histogram)
    table = scope.get_unique_variable_name("boosting_classes")
    if np.issubdtype(classes.dtype, np.integer):
        container.add_initializer(table, TensorProto.INT64, [len(classes)], classes.tolist())
    else:
        container.add_initializer(
            table, TensorProto.STRING, [len(classes)], [str(c) for c in classes]
        )
    container.add_node("Gather", [table, index], [label], axis=0)


def _probabilities(
    scope: Any, container: Any, link: str, binary: bool, raw: str, proba: str
) -> None:
    """The loss's predict_proba: [1 - p, p] with p = expit(raw) (or expit(2 raw)), or softmax."""
    name = scope.get_unique_variable_name
    if link == "MultinomialLogit":
        container.add_node("Softmax", [raw], [proba], axis=1)
        return
    if link not in ("LogitLink", "HalfLogitLink") or not binary:
        raise NotImplementedError(f"a boosting classifier with {link} is not converted")
    logit = raw
    if link == "HalfLogitLink":  # the exponential loss: p = expit(2 raw)
        two, logit = name("boosting_two"), name("boosting_logit")
        container.add_initializer(two, TensorProto.DOUBLE, [], [2.0])
        container.add_node("Mul", [raw, two], [logit])
    positive, one, negative = name("boosting_p1"), name("boosting_one"), name("boosting_p0")
    container.add_node("Sigmoid", [logit], [positive])
    container.add_initializer(one, TensorProto.DOUBLE, [], [1.0])
    container.add_node("Sub", [one, positive], [negative])
    container.add_node("Concat", [negative, positive], [proba], axis=1)


def _label_index(
    scope: Any, container: Any, binary: bool, raw: str, proba: str, histogram: bool
) -> str:
    """Each row's class index, by the model's own `predict` rule."""
    name = scope.get_unique_variable_name
    index: str = name("boosting_index")
    if histogram:  # HistGradientBoostingClassifier.predict: argmax of the probabilities
        container.add_node("ArgMax", [proba], [index], axis=1, keepdims=0)
    elif not binary:  # GradientBoostingClassifier.predict: argmax of the raw scores
        container.add_node("ArgMax", [raw], [index], axis=1, keepdims=0)
    else:  # GradientBoostingClassifier.predict, binary: class 1 where raw >= 0
        zero, at_least = name("boosting_zero"), name("boosting_nonnegative")
        container.add_initializer(zero, TensorProto.DOUBLE, [], [0.0])
        container.add_node("GreaterOrEqual", [raw, zero], [at_least])
        flat, shape = name("boosting_flat"), name("boosting_shape")
        container.add_node("Cast", [at_least], [flat], to=TensorProto.INT64)
        container.add_initializer(shape, TensorProto.INT64, [1], [-1])
        container.add_node("Reshape", [flat, shape], [index])
    return index
