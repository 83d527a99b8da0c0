"""HistGradientBoosting{Classifier,Regressor} as ONNX that computes in float64, as scikit-learn does.

skl2onnx's own converter builds float32 `TreeEnsemble*` nodes (and, with skl2onnx 1.20 and
onnx 1.23, fails to build them at all). scikit-learn's histogram trees compare the float64 input with float64
thresholds (no float32 rounding, unlike its other trees), send NaN to the side the split
learned, and sum float64 leaf values onto a baseline. This converter writes that as one
ai.onnx.ml 5 `TreeEnsemble` (double in, double out) plus the loss's inverse link: identity or
exp for a regressor, sigmoid (binary) or softmax (multiclass) for a classifier, whose label is
the class of the largest probability (the first one on a tie), as `predict` takes it.

Categorical splits (bitsets) are not converted: such a model keeps the scikit-learn runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper

_ML = "ai.onnx.ml"
_BRANCH_LEQ = 0
_SUM = 1


def hist_gradient_boosting_converters() -> dict[type, Any]:
    """skl2onnx custom converters for scikit-learn's histogram gradient boosting."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return {HistGradientBoostingClassifier: convert, HistGradientBoostingRegressor: convert}


def tree_nodes(model: Any) -> list[np.ndarray]:
    """Each tree's node array, iteration by iteration and output by output within one."""
    return [predictor.nodes for iteration in model._predictors for predictor in iteration]


def _check_convertible(model: Any) -> None:
    categorical = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None or (
        categorical is not None and np.any(categorical)
    ):
        raise NotImplementedError("HistGradientBoosting with categorical features is not converted")


def ensemble_attributes(model: Any) -> dict[str, Any]:
    """The TreeEnsemble attributes of every tree of a fitted HistGradientBoosting model."""
    _check_convertible(model)
    per_iteration = int(model.n_trees_per_iteration_)
    features: list[int] = []
    splits: list[float] = []
    tracks: list[int] = []
    true_ids: list[int] = []
    true_leafs: list[int] = []
    false_ids: list[int] = []
    false_leafs: list[int] = []
    roots: list[int] = []
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []
    for t, nodes in enumerate(tree_nodes(model)):
        is_leaf = nodes["is_leaf"].astype(bool)
        # Each node's index among this tree's branches (or leaves), offset past earlier trees'.
        branch = np.cumsum(~is_leaf) - 1 + len(features)
        leaf = np.cumsum(is_leaf) - 1 + len(leaf_weights)
        inner = np.flatnonzero(~is_leaf)
        leaves = np.flatnonzero(is_leaf)
        if len(inner) == 0:  # a one-leaf tree: one branch whose both sides are that leaf
            roots.append(len(features))
            features.append(0)
            splits.append(0.0)
            tracks.append(0)
            true_ids.append(int(leaf[0]))
            false_ids.append(int(leaf[0]))
            true_leafs.append(1)
            false_leafs.append(1)
        else:
            roots.append(int(branch[0]))
            left, right = nodes["left"][inner], nodes["right"][inner]
            features.extend(nodes["feature_idx"][inner].tolist())
            splits.extend(nodes["num_threshold"][inner].tolist())
            tracks.extend(nodes["missing_go_to_left"][inner].astype(int).tolist())
            for children, ids, leafs in (
                (left, true_ids, true_leafs),
                (right, false_ids, false_leafs),
            ):
                child_is_leaf = is_leaf[children]
                ids.extend(np.where(child_is_leaf, leaf[children], branch[children]).tolist())
                leafs.extend(child_is_leaf.astype(int).tolist())
        leaf_targets.extend([t % per_iteration] * len(leaves))
        leaf_weights.extend(nodes["value"][leaves].tolist())
    return {
        "aggregate_function": _SUM,
        "post_transform": 0,
        "n_targets": per_iteration,
        "tree_roots": roots,
        "nodes_featureids": features,
        "nodes_modes": numpy_helper.from_array(np.full(len(features), _BRANCH_LEQ, np.uint8)),
        "nodes_splits": numpy_helper.from_array(np.array(splits, np.float64)),
        "nodes_truenodeids": true_ids,
        "nodes_trueleafs": true_leafs,
        "nodes_falsenodeids": false_ids,
        "nodes_falseleafs": false_leafs,
        "nodes_missing_value_tracks_true": tracks,
        "leaf_targetids": leaf_targets,
        "leaf_weights": numpy_helper.from_array(np.array(leaf_weights, np.float64)),
    }


def convert(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter: raw scores from the trees, then the loss's inverse link."""
    model = operator.raw_operator
    attrs = ensemble_attributes(model)
    name = scope.get_unique_variable_name
    source = operator.inputs[0].full_name
    if operator.inputs[0].type.to_onnx_type().tensor_type.elem_type != TensorProto.DOUBLE:
        as_double = name("hgb_double")
        container.add_node("Cast", [source], [as_double], to=TensorProto.DOUBLE)
        source = as_double
    trees, raw, base = name("hgb_trees"), name("hgb_raw"), name("hgb_baseline")
    # skl2onnx accepts ai.onnx.ml up to 3 only: `convert.build` declares 5 for the whole graph
    # once it sees a TreeEnsemble node.
    container.add_node(
        "TreeEnsemble", [source], [trees], op_domain=_ML, op_version=3, name=name("hgb"), **attrs
    )
    baseline = np.asarray(model._baseline_prediction, np.float64).reshape(1, -1)
    container.add_initializer(base, TensorProto.DOUBLE, list(baseline.shape), baseline.ravel())
    container.add_node("Add", [trees, base], [raw])
    link = type(model._loss.link).__name__
    if not hasattr(model, "classes_"):
        _regressor_output(container, link, raw, operator.outputs[0].full_name)
        return
    _classifier_outputs(scope, container, model, link, raw, operator)


def _regressor_output(container: Any, link: str, raw: str, out: str) -> None:
    if link == "IdentityLink":
        container.add_node("Identity", [raw], [out])
    elif link == "LogLink":
        container.add_node("Exp", [raw], [out])
    else:
        raise NotImplementedError(f"HistGradientBoostingRegressor with {link} is not converted")


def _classifier_outputs(
    scope: Any, container: Any, model: Any, link: str, raw: str, operator: Any
) -> None:
    name = scope.get_unique_variable_name
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    classes = np.asarray(model.classes_)
    if link == "LogitLink" and len(classes) == 2:
        positive, one, negative = name("hgb_p1"), name("hgb_one"), name("hgb_p0")
        container.add_node("Sigmoid", [raw], [positive])
        container.add_initializer(one, TensorProto.DOUBLE, [], [1.0])
        container.add_node("Sub", [one, positive], [negative])
        container.add_node("Concat", [negative, positive], [proba], axis=1)
    elif link == "MultinomialLogit":
        container.add_node("Softmax", [raw], [proba], axis=1)
    else:
        raise NotImplementedError(f"HistGradientBoostingClassifier with {link} is not converted")
    index, table = name("hgb_index"), name("hgb_classes")
    container.add_node("ArgMax", [proba], [index], axis=1, keepdims=0)
    if np.issubdtype(classes.dtype, np.integer):
        container.add_initializer(table, TensorProto.INT64, [len(classes)], classes.tolist())
    else:
        container.add_initializer(
            table, TensorProto.STRING, [len(classes)], [str(c) for c in classes]
        )
    container.add_node("Gather", [table, index], [label], axis=0)
