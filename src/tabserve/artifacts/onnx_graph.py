"""Graph surgery on skl2onnx's float64 output, so the ONNX model computes what scikit-learn does.

Used by `convert.build`; each function edits an `onnx.GraphProto` in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import GraphProto, NodeProto, TensorProto, helper, numpy_helper

from tabserve.runtime.onnx import MISSING_CATEGORY, NUMERIC_INPUT, feature_input

LABEL_OUTPUT = "label"
PROBA_OUTPUT = "probabilities"
VALUE_OUTPUT = "variable"
ML = "ai.onnx.ml"
ML_DOUBLE_TREES = 5  # ai.onnx.ml's TreeEnsemble: double in, double out (ONNX Runtime >= 1.18)
_TREE_FLOAT_OUTPUT = {"TreeEnsembleClassifier": 1, "TreeEnsembleRegressor": 0}
# ai.onnx.ml 5's TreeEnsemble encodes modes and aggregates as numbers.
_MODES = {b"BRANCH_LEQ": 0, b"BRANCH_LT": 1, b"BRANCH_GTE": 2, b"BRANCH_GT": 3}
_AGGREGATES = {b"AVERAGE": 0, b"SUM": 1, b"MIN": 2, b"MAX": 3}
BRANCH_LEQ = _MODES[b"BRANCH_LEQ"]
SUM = _AGGREGATES[b"SUM"]


@dataclass
class EnsembleNodes:
    """A TreeEnsemble's branch and leaf arrays, filled tree by tree (children index branches or
    leaves, as the matching `*_leafs` entry says)."""

    roots: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)  # 1: a missing value goes the true way
    true_ids: list[int] = field(default_factory=list)
    true_leafs: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leafs: list[int] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def one_leaf_tree(self, leaf: int) -> None:
        """A tree that is a single leaf: TreeEnsemble needs a branch whose both sides are it."""
        self.roots.append(len(self.features))
        self.features.append(0)
        self.modes.append(BRANCH_LEQ)
        self.splits.append(0.0)
        self.tracks.append(0)
        self.true_ids.append(leaf)
        self.false_ids.append(leaf)
        self.true_leafs.append(1)
        self.false_leafs.append(1)

    def attributes(self, n_targets: int, aggregate: int = SUM) -> dict[str, Any]:
        """The TreeEnsemble node's attributes (double splits and weights, no post transform)."""
        return {
            "aggregate_function": aggregate,
            "post_transform": 0,
            "n_targets": n_targets,
            "tree_roots": self.roots,
            "nodes_featureids": self.features,
            "nodes_modes": numpy_helper.from_array(np.array(self.modes, np.uint8)),
            "nodes_splits": numpy_helper.from_array(np.array(self.splits, np.float64)),
            "nodes_truenodeids": self.true_ids,
            "nodes_trueleafs": self.true_leafs,
            "nodes_falsenodeids": self.false_ids,
            "nodes_falseleafs": self.false_leafs,
            "nodes_missing_value_tracks_true": self.tracks,
            "leaf_targetids": self.leaf_targets,
            "leaf_weights": numpy_helper.from_array(np.array(self.leaf_weights, np.float64)),
        }


def _is_missing_marker(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer as Where(missing, statistics, X): float64 statistics, "" = missing string."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables

    op = operator.raw_operator
    if getattr(op, "add_indicator", False):
        raise NotImplementedError("SimpleImputer(add_indicator=True) is not converted")
    stats = np.asarray(op.statistics_)
    x = concatenate_variables(scope, operator.inputs, container)
    out = operator.outputs[0].full_name
    input_type = operator.inputs[0].type
    fill = scope.get_unique_variable_name("fill")
    mask = scope.get_unique_variable_name("missing")
    if isinstance(input_type, StringTensorType):
        marker = (
            MISSING_CATEGORY if _is_missing_marker(op.missing_values) else str(op.missing_values)
        )
        container.add_initializer(fill, TensorProto.STRING, [len(stats)], [str(s) for s in stats])
        flag = scope.get_unique_variable_name("flag")
        # ONNX Equal has no string form before opset 19: LabelEncoder maps the marker to 1.
        container.add_node(
            "LabelEncoder", [x], [flag], op_domain=ML, op_version=2,
            keys_strings=[marker], values_int64s=[1], default_int64=0,
        )  # fmt: skip
        container.add_node("Cast", [flag], [mask], to=TensorProto.BOOL)
    elif isinstance(input_type, DoubleTensorType | FloatTensorType):
        numbers = stats.astype(np.float64)
        if np.isnan(numbers).any():
            # scikit-learn drops an all-missing column; the graph would keep it.
            raise NotImplementedError("SimpleImputer with an all-missing column is not converted")
        double = isinstance(input_type, DoubleTensorType)
        kind = TensorProto.DOUBLE if double else TensorProto.FLOAT
        container.add_initializer(fill, kind, [len(numbers)], numbers.tolist())
        if _is_missing_marker(op.missing_values):
            container.add_node("IsNaN", [x], [mask])
        else:
            marker_name = scope.get_unique_variable_name("marker")
            container.add_initializer(marker_name, kind, [], [float(op.missing_values)])
            container.add_node("Equal", [x, marker_name], [mask])
    else:
        raise NotImplementedError(f"SimpleImputer on {type(input_type).__name__} is not converted")
    container.add_node("Where", [mask, fill, x], [out])


_DOUBLE_ATTRIBUTES = ("nodes_values", "target_weights", "class_weights", "base_values")


class _DoubleTreeContainer:
    """skl2onnx's container, but float64 tree attributes are kept as double `*_as_tensor`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add_node(self, op_type: str, *args: Any, **attrs: Any) -> Any:
        if op_type in _TREE_FLOAT_OUTPUT:
            for key in _DOUBLE_ATTRIBUTES:
                value = attrs.get(key)
                if isinstance(value, np.ndarray) and value.dtype == np.float64 and value.size:
                    attrs[f"{key}_as_tensor"] = numpy_helper.from_array(value.ravel())
                    del attrs[key]
        return self._inner.add_node(op_type, *args, **attrs)


def double_tree_converters() -> dict[type, Any]:
    """Converters for tree models that keep thresholds and leaf values in float64."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    out: dict[type, Any] = {}
    for cls, alias in sklearn_operator_name_map.items():
        if cls.__module__.startswith(
            ("sklearn.ensemble._forest", "sklearn.ensemble._gb", "sklearn.tree")
        ):
            registered = get_converter(alias)

            def convert(scope: Any, operator: Any, container: Any, _r: Any = registered) -> None:
                _r(scope, operator, _DoubleTreeContainer(container))

            out[cls] = convert
    return out


def uses_double_trees(graph: GraphProto) -> bool:
    """Whether the graph has ai.onnx.ml 5 `TreeEnsemble` nodes: it must then import ai.onnx.ml 5,
    where the older tree ops are gone."""
    return any(n.domain == ML and n.op_type == "TreeEnsemble" for n in graph.node)


def fix_tree_ensembles(graph: GraphProto) -> None:
    """Feed each older tree ensemble float32-rounded float64 input and give double output.

    Regressors become ai.onnx.ml 5 `TreeEnsemble` nodes, which sum leaf values in double and
    output double, so a predicted value is scikit-learn's to the last bits (the older
    TreeEnsembleRegressor sums in double but outputs float: ~6e-8 relative). A
    classifier's tree op (or a regressor this cannot rewrite) keeps its float output, cast to
    double: its probabilities are within 1e-6 and its labels exact.
    """
    regressors = [n for n in graph.node if n.domain == ML and n.op_type == "TreeEnsembleRegressor"]
    others = [n for n in graph.node if n.domain == ML and n.op_type == "TreeEnsembleClassifier"]
    rewritten = {id(n): _tree_ensemble(n) for n in regressors} if regressors and not others else {}
    if any(value is None for value in rewritten.values()):
        rewritten = {}
    nodes = []
    for k, node in enumerate(graph.node):
        if node.domain != ML or node.op_type not in _TREE_FLOAT_OUTPUT:
            nodes.append(node)
            continue
        source = node.input[0]
        as_float, as_double = f"{source}_tabserve_f32_{k}", f"{source}_tabserve_f64_{k}"
        # scikit-learn casts X to float32 before its trees compare: round the same way.
        nodes.append(helper.make_node("Cast", [source], [as_float], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Cast", [as_float], [as_double], to=TensorProto.DOUBLE))
        node.input[0] = as_double
        plan = rewritten.get(id(node))
        if plan is not None:
            nodes.extend(_double_regressor(graph, plan, as_double, node.output[0], k))
            continue
        index = _TREE_FLOAT_OUTPUT[node.op_type]
        output = node.output[index]
        node.output[index] = f"{output}_tabserve_float_{k}"
        nodes.append(node)
        nodes.append(
            helper.make_node("Cast", [node.output[index]], [output], to=TensorProto.DOUBLE)
        )
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_value_info(graph)


TreePlan = tuple[dict[str, Any], np.ndarray | None]  # TreeEnsemble's attributes, base values


def _double_regressor(
    graph: GraphProto, plan: TreePlan, source: str, output: str, index: int
) -> list[NodeProto]:
    """The TreeEnsemble node (and the Add of the base values) that replace one regressor."""
    attrs, base_values = plan
    summed = f"{output}_tabserve_trees_{index}" if base_values is not None else output
    ensemble = helper.make_node("TreeEnsemble", [source], [summed], domain=ML, **attrs)
    if base_values is None:
        return [ensemble]
    name = f"{output}_tabserve_base_{index}"
    graph.initializer.append(numpy_helper.from_array(base_values, name))
    return [ensemble, helper.make_node("Add", [summed, name], [output])]


def _tree_ensemble(node: NodeProto) -> TreePlan | None:
    """A TreeEnsembleRegressor's trees as TreeEnsemble attributes, or None if they can't be.

    None for what TreeEnsemble encodes differently: a leaf with several targets, a post
    transform, branch modes other than <, <=, >, >=, or float (not double) thresholds.
    """
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("post_transform", b"NONE") != b"NONE" or "nodes_values_as_tensor" not in attrs:
        return None
    aggregate = _AGGREGATES.get(attrs.get("aggregate_function", b"SUM"))
    if aggregate is None or "target_weights_as_tensor" not in attrs:
        return None
    trees, ids = list(attrs["nodes_treeids"]), list(attrs["nodes_nodeids"])
    modes = list(attrs["nodes_modes"])
    splits = numpy_helper.to_array(attrs["nodes_values_as_tensor"]).astype(np.float64)
    weights = numpy_helper.to_array(attrs["target_weights_as_tensor"]).astype(np.float64)
    tracks = list(attrs.get("nodes_missing_value_tracks_true", [0] * len(ids)))
    at = {(t, i): k for k, (t, i) in enumerate(zip(trees, ids, strict=True))}
    leaf_of: dict[int, int] = {}  # node position -> leaf index
    leaf_target: list[int] = []
    leaf_weight: list[float] = []
    for k, mode in enumerate(modes):
        if mode == b"LEAF":
            leaf_of[k] = len(leaf_target)
            leaf_target.append(0)
            leaf_weight.append(0.0)
        elif mode not in _MODES:
            return None
    seen: set[int] = set()
    for t, i, target, weight in zip(
        attrs["target_treeids"], attrs["target_nodeids"], attrs["target_ids"], weights, strict=True
    ):
        pos = at.get((t, i))
        if pos is None or pos not in leaf_of or pos in seen:
            return None  # a target on a branch, or a leaf with several targets
        seen.add(pos)
        leaf_target[leaf_of[pos]] = int(target)
        leaf_weight[leaf_of[pos]] = float(weight)
    branch_of = {k: b for b, k in enumerate(k for k in range(len(modes)) if k not in leaf_of)}
    nodes = EnsembleNodes(leaf_targets=leaf_target, leaf_weights=leaf_weight)
    for k in branch_of:
        for child_id, ids_out, leafs_out in (
            (attrs["nodes_truenodeids"][k], nodes.true_ids, nodes.true_leafs),
            (attrs["nodes_falsenodeids"][k], nodes.false_ids, nodes.false_leafs),
        ):
            child = at.get((trees[k], child_id))
            if child is None:
                return None
            leaf = child in leaf_of
            ids_out.append(leaf_of[child] if leaf else branch_of[child])
            leafs_out.append(int(leaf))
        nodes.features.append(attrs["nodes_featureids"][k])
        nodes.modes.append(_MODES[modes[k]])
        nodes.splits.append(float(splits[k]))
        nodes.tracks.append(int(tracks[k]))
    for tree in dict.fromkeys(trees):
        root = at.get((tree, 0))
        if root is None:
            return None
        if root in leaf_of:
            nodes.one_leaf_tree(leaf_of[root])
        else:
            nodes.roots.append(branch_of[root])
    base = attrs.get("base_values_as_tensor")
    ensemble = nodes.attributes(int(attrs.get("n_targets", 1)), aggregate)
    return ensemble, None if base is None else numpy_helper.to_array(base).astype(np.float64)


def _drop_value_info(graph: GraphProto) -> None:
    # Intermediate type annotations may now be stale; ONNX Runtime infers them again.
    del graph.value_info[:]


def _rename_everywhere(graph: GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def name_feature_inputs(graph: GraphProto, n_features: int) -> None:
    """Rename the per-feature graph inputs to f0, f1, ... in manifest order."""
    if len(graph.input) != n_features:
        raise ValueError(
            f"the converted graph has {len(graph.input)} inputs for {n_features} features"
        )
    for i, graph_input in enumerate(graph.input):
        new = feature_input(i)
        _rename_everywhere(graph, graph_input.name, new)
        graph_input.name = new


def split_numeric_input(graph: GraphProto, n_features: int) -> None:
    """Replace the per-feature inputs by one float64 [N, n_features] input split into columns."""
    sizes = f"{NUMERIC_INPUT}_tabserve_sizes"
    graph.initializer.append(numpy_helper.from_array(np.ones(n_features, np.int64), sizes))
    names = [feature_input(i) for i in range(n_features)]
    split = helper.make_node("Split", [NUMERIC_INPUT, sizes], names, axis=1)
    nodes = [split, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.DOUBLE, [None, n_features])
    )


def finish_outputs(graph: GraphProto, classifier: bool) -> None:
    """Name the outputs label/probabilities (classifiers) or variable, with float64 numbers."""
    outputs = list(graph.output)
    if classifier:
        if len(outputs) < 2:
            raise ValueError("the converted classifier has no probability output")
        plan = [(outputs[0], LABEL_OUTPUT, None), (outputs[1], PROBA_OUTPUT, TensorProto.DOUBLE)]
    else:
        plan = [(outputs[0], VALUE_OUTPUT, TensorProto.DOUBLE)]
    del graph.output[:]
    for old, new, cast in plan:
        source = f"{old.name}_tabserve_out"  # skl2onnx may already call it `new`
        _rename_everywhere(graph, old.name, source)
        if cast is None:
            graph.node.append(helper.make_node("Identity", [source], [new]))
            graph.output.append(helper.make_value_info(new, old.type))
        else:
            graph.node.append(helper.make_node("Cast", [source], [new], to=cast))
            graph.output.append(helper.make_tensor_value_info(new, cast, None))
