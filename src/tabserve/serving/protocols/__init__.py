"""Protocol codecs: bytes or query in -> rows; Prediction in -> body. One module per protocol.

The variants, in a plain dict: name -> module. Routes pick the codec; the codecs never see
the web framework, and every one of them ends in `validation.Schema`.
"""

from __future__ import annotations

from types import ModuleType

from tabserve.serving.protocols import kserve_v1, lecture, mlflow, oip_v2

__all__ = ["PROTOCOLS"]

PROTOCOLS: dict[str, ModuleType] = {
    "lecture": lecture,
    "kserve_v1": kserve_v1,
    "oip_v2": oip_v2,
    "mlflow": mlflow,
}
