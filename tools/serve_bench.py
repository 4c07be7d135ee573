"""Latency and throughput of a served model: ``mlflow models serve`` on localhost, real requests.

    python tools/serve_bench.py                                   # models:/imdb-sentiment@champion
    python tools/serve_bench.py --model models:/imdb-sentiment/1 --requests 100 --batch 1000

Starts ``mlflow models serve`` (local environment, one worker) on the project's store, waits for
it, then measures the median and 95th percentile latency of one-review requests and the
throughput of one request holding ``--batch`` reviews (test reviews of ``data/prepared``, or
generated text when the table is absent). Prints one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from servers import free_port




def post(url: str, texts: list[str]) -> list[float]:
    body = json.dumps({"dataframe_split": {"columns": ["review"],
                                           "data": [[t] for t in texts]}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    return [row["positive_probability"] for row in answer["predictions"]]


def reviews(table: Path, n: int) -> list[str]:
    if table.is_file():
        import pandas as pd

        test = pd.read_parquet(table, columns=["split", "text"])
        return test[test["split"] == "test"]["text"].head(n).tolist()
    return [f"review {i}: a film with a plot, some acting and an ending." for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/imdb-sentiment@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"))
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--table", type=Path, default=Path("data/prepared/reviews.parquet"))
    args = parser.parse_args(argv)
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               args.model, "--env-manager", "local", "-h", "127.0.0.1", "-p",
                               str(port), "-w", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    print(server.stderr.read().decode()[-1500:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
        startup = time.monotonic() - start
        texts = reviews(args.table, max(args.batch, args.requests))
        post(f"{base}/invocations", texts[:8])  # warm-up (graph tracing)
        latencies = []
        for text in texts[:args.requests]:
            began = time.perf_counter()
            post(f"{base}/invocations", [text])
            latencies.append(time.perf_counter() - began)
        began = time.perf_counter()
        out = post(f"{base}/invocations", texts[:args.batch])
        batch_seconds = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    print(json.dumps({
        "model": args.model, "cores": os.cpu_count(), "startup_s": round(startup, 1),
        "requests": len(latencies),
        "latency_median_ms": round(1000 * statistics.median(latencies), 1),
        "latency_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "batch_reviews": len(out), "batch_seconds": round(batch_seconds, 2),
        "batch_reviews_per_second": round(len(out) / batch_seconds, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
