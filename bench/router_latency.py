"""Where one embedded routing decision's time goes: encode, score, service hop.

    python bench/router_latency.py [--config C] [--data D] [--limit 800]

Runs the same prompts through `Encoder.encode` (one prompt), `EmbeddedBackend.decide_sync`
(encode + scoring) and `RoutingService.decide` (plus the thread-pool hop, as in the
gateway), cache off, and prints p50/p99 of each. Writes bench/results/router_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import yaml

from proxy.percentiles import percentile
from proxy.routing.backends.embedded import EmbeddedBackend
from proxy.routing.routes import Route
from proxy.routing.service import RoutingService

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(SHARED / "clinc150_routes.yaml"))
    parser.add_argument("--data", default=str(SHARED / "clinc150_val.jsonl"))
    parser.add_argument("--limit", type=int, default=800)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    routes = [
        Route(p["name"], p["description"], tuple(p["models"]), "none", tuple(p.get("examples", ())))
        for p in config["routing_preferences"]
    ]
    with open(args.data, encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle][: args.limit]

    backend = EmbeddedBackend()
    started = time.perf_counter()
    backend.load_sync()
    load_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    backend.prepare(routes)
    index_ms = (time.perf_counter() - started) * 1000
    encoder = backend._router.encoder

    def timed(call) -> list[float]:
        samples = []
        for text in texts:
            begin = time.perf_counter()
            call(text)
            samples.append((time.perf_counter() - begin) * 1000)
        return samples

    encode = timed(lambda text: encoder.encode([text]))
    decide = timed(lambda text: backend.decide_sync([("user", text)], routes))

    async def through_service() -> list[float]:
        service = RoutingService(backend, routes, cache_size=0)
        samples = []
        for text in texts:
            begin = time.perf_counter()
            await service.decide([("user", text)])
            samples.append((time.perf_counter() - begin) * 1000)
        return samples

    service = asyncio.run(through_service())
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "prompts": len(texts),
        "routes": len(routes),
        "load_ms": round(load_ms, 1),
        "index_build_ms": round(index_ms, 1),
    }
    for name, samples in (("encode", encode), ("decide", decide), ("service", service)):
        result[name] = {
            "p50_ms": round(percentile(samples, 50), 3),
            "p99_ms": round(percentile(samples, 99), 3),
        }
        print(
            f"{name:8} p50 {percentile(samples, 50):6.2f} ms  p99 {percentile(samples, 99):6.2f} ms"
        )
    print(f"load {load_ms:.0f} ms, route index {index_ms:.0f} ms")
    out = ROOT / "bench" / "results" / "router_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
