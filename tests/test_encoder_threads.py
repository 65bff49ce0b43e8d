"""The ONNX encoder keeps numpy's BLAS to one thread (encoder._one_blas_thread): BLAS threads
would fight onnxruntime's for the same cores on every routing decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json
from threadpoolctl import threadpool_info
from proxy.routing.embedded.encoder import Encoder, OnnxEncoder

before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
encoder = Encoder.load()
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"onnx": isinstance(encoder, OnnxEncoder), "before": before, "after": after}))
"""


def test_loading_the_onnx_encoder_leaves_blas_one_thread():
    # A child process: the limit is process-wide, and this one's may already be set. Two BLAS
    # threads to start with, as on the 2-core machines Plano is measured on.
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "2"},
    )
    found = json.loads(child.stdout.strip().splitlines()[-1])
    assert found["onnx"]
    assert found["before"] == [2]
    assert found["after"] == [1]
