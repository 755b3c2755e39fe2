# Benchmark of the training-data pipeline: per-image time of synthetic sample + targets in one process, and
# the throughput of the DataLoader with N workers; prints a table and appends a JSON line.
import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import SynthText  # noqa: E402
from targets import make_targets  # noqa: E402
from train import TrainingStream  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fonts", default="train/.carry/fonts")
    ap.add_argument("--icdar", default="train/.carry/icdar")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--workers", type=int, default=0, help="also time a DataLoader with this many workers")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default="train/runs/bench_synth.jsonl")
    args = ap.parse_args()
    icdar = args.icdar if os.path.isdir(args.icdar) else None
    g = SynthText(args.fonts, icdar, args.size)
    rng = np.random.default_rng(0)
    for _ in range(10):
        g.sample(rng)  # font cache, ICDAR decode
    t_gen = t_tgt = 0.0
    for _ in range(args.images):
        t = time.perf_counter()
        img, q, dc = g.sample(rng)
        t2 = time.perf_counter()
        make_targets(args.size, args.size, q, dc)
        t_gen += t2 - t
        t_tgt += time.perf_counter() - t2
    rec = {"host": socket.gethostname(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "cpus": os.cpu_count(), "load": os.getloadavg()[0], "size": args.size,
           "synth_ms": 1000 * t_gen / args.images, "targets_ms": 1000 * t_tgt / args.images}
    if args.workers:
        loader = torch.utils.data.DataLoader(TrainingStream("synth", args.fonts, icdar, args.size, 1),
                                             batch_size=args.batch, num_workers=args.workers, prefetch_factor=4)
        it = iter(loader)
        for _ in range(3):
            next(it)
        t, n = time.perf_counter(), 0
        while n < args.images * args.workers:
            n += next(it)[0].shape[0]
        rec.update(workers=args.workers, loader_img_per_s=n / (time.perf_counter() - t))
    print(f"{'what':<28}{'value':>12}")
    for k in ("synth_ms", "targets_ms", "loader_img_per_s"):
        if k in rec:
            print(f"{k:<28}{rec[k]:>12.1f}")
    print(f"{'cpus / load average':<28}{rec['cpus']:>6}{rec['load']:>6.1f}")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
