"""The int8 encoder's onnxruntime thread count: one prompt's encode time, quiet and loaded.

    python bench/router_threads.py [--data D] [--limit 400] [--threads 1 2]

In the gateway the encoder never has the machine to itself: the event loop, other decisions
and other workers run beside it. So each thread count is measured twice: alone, and with one
busy process per core minus one spinning beside it (a stand-in for the rest of the gateway).
Prints p50/p90 per setting and writes bench/results/router_threads.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

from proxy.percentiles import percentile
from proxy.routing.embedded import encoder as encoder_module
from proxy.routing.embedded.encoder import OnnxEncoder
from proxy.routing.embedded.weights import find_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timings(encoder: OnnxEncoder, prompts: list[str]) -> dict[str, float]:
    for text in prompts[:20]:
        encoder.encode([text])
    spent = []
    for text in prompts:
        start = time.perf_counter()
        encoder.encode([text])
        spent.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(spent, 50), "p90_ms": percentile(spent, 90)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "clinc150_val.jsonl"))
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with open(args.data, encoding="utf-8") as handle:
        prompts = [json.loads(line)["text"] for line in handle if line.strip()][: args.limit]
    rows = []
    for threads in args.threads:
        encoder_module.ONNX_THREADS = threads
        encoder = OnnxEncoder.load(find_model())
        for busy in (0, max(1, (os.cpu_count() or 2) - 1)):
            stop = multiprocessing.Event()
            spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
            for process in spinners:
                process.start()
            try:
                result = timings(encoder, prompts)
            finally:
                stop.set()
                for process in spinners:
                    process.join()
            rows.append({"threads": threads, "busy_processes": busy, **result})
            print(
                f"threads={threads} busy={busy}: p50 {result['p50_ms']:.2f} ms, "
                f"p90 {result['p90_ms']:.2f} ms"
            )
    out = ROOT / "bench" / "results" / "router_threads.json"
    out.write_text(
        json.dumps(
            {
                "prompts": len(prompts),
                "cpus": os.cpu_count(),
                "load": os.getloadavg(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
