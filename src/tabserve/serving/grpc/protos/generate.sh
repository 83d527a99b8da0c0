#!/usr/bin/env bash
# Regenerate the Python modules from grpc_predict_v2.proto with the pinned grpcio-tools.
# Run from anywhere: the modules import each other as tabserve.serving.grpc.protos.*.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../../../.." && pwd)"
python="${PYTHON:-$src/../.venv/bin/python}"
cd "$src"
"$python" -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  tabserve/serving/grpc/protos/grpc_predict_v2.proto

# The messages go into a descriptor pool of their own: tritonclient.grpc (and Triton's or
# MLServer's own stubs) register the same `inference.*` names in protobuf's default pool
# from another file, and one process may import both (tests, benchmarks, embedding apps).
# Only the service path `/inference.GRPCInferenceService/...` travels on the wire.
pb2=tabserve/serving/grpc/protos/grpc_predict_v2_pb2.py
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' "$pb2"
grep -q '^DESCRIPTOR = POOL.AddSerializedFile(' "$pb2" || { echo "generate.sh: private pool edit failed" >&2; exit 1; }
