"""The lecture's stack, reimplemented faithfully: its model build and its Flask application.

`python bench/lecture_app.py build PATH` trains the pipeline exactly as the lecture's
`build_model.py` does and pickles it to PATH. The Flask `app` below is the lecture's
`application.py` (the model path comes from `LECTURE_MODEL_PICKLE` instead of the working
directory); the bench serves it as the lecture does: `gunicorn -w 3 -t 360 lecture_app:app`
(sync workers). Its code is kept as the lecture wrote it, warts included (`model.predict` on a
list, which scikit-learn now answers with a feature-name warning): that is the stack measured.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def build_model(path: Path) -> float:
    """Train the lecture's StandardScaler + GradientBoosting pipeline, pickle it, return accuracy."""
    import pandas as pd
    from sklearn import datasets
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    iris = datasets.load_iris()
    df_iris = pd.DataFrame(data=iris["data"], columns=iris["feature_names"])
    df_iris["target"] = iris["target"]
    df_train, df_test = train_test_split(
        df_iris, test_size=0.3, random_state=47, stratify=df_iris["target"]
    )
    model = Pipeline([("scale", StandardScaler()), ("gbm", GradientBoostingClassifier())])
    model.fit(df_train[iris["feature_names"]], df_train["target"])
    test_predictions = model.predict(df_test[iris["feature_names"]])
    accuracy = float(accuracy_score(df_test["target"], test_predictions))
    with path.open("wb") as f:
        pickle.dump(model, f)
    return accuracy


def create_app(model_path: Path) -> Any:
    """The lecture's `application.py` as a factory: one GET route on `/`."""
    from flask import Flask, jsonify, request

    json_header = {"content-type": "application/json; charset=UTF-8"}
    with model_path.open("rb") as f:
        model = pickle.load(f)  # noqa: S301 - the bench's own pickle, written by build_model
    app = Flask(__name__)

    @app.route("/", methods=["GET"])
    def get_prediction() -> Any:
        args = request.args
        desired_args = FEATURES
        missing_args = [a for a in desired_args if args.get(a) is None]
        if len(missing_args) > 0:
            error_msg = f"argument(s) missing: {missing_args}"
            return (jsonify(error_msg), 422, json_header)

        def arg_is_float(arg: Any) -> bool:
            is_float = False
            try:
                float(arg)
                is_float = True
            except ValueError:
                pass
            return is_float

        nonfloat_args = [a for a in desired_args if not arg_is_float(args.get(a))]
        if len(nonfloat_args) > 0:
            error_msg = f"argument(s) not float: {nonfloat_args}"
            return (jsonify(error_msg), 422, json_header)

        X = [[float(args.get(a)) for a in desired_args]]  # type: ignore[arg-type]
        prediction = str(model.predict(X)[0])
        return (jsonify({"prediction": prediction}), 200, json_header)

    return app


# gunicorn imports `lecture_app:app`; the build command imports this module without a model.
app = (
    create_app(Path(os.environ["LECTURE_MODEL_PICKLE"]))
    if "LECTURE_MODEL_PICKLE" in os.environ
    else None
)

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        sys.exit("usage: python bench/lecture_app.py build MODEL.pickle")
    print(f"Test accuracy of fit model: {build_model(Path(sys.argv[2])):.3f}")
