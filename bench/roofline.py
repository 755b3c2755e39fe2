#!/usr/bin/env python3
"""How far each step of an engine is from what the card allows: a roofline over `eastrt bench --profile-json`.

Each step's floor is max(its least traffic / memory bandwidth, its arithmetic / tensor-core peak): what a
kernel running that step alone, at the card's peaks, could not beat. The sum over the steps is the floor of
layer-at-a-time execution; only fusing steps (so that intermediates skip device memory) goes below it.

    python3 bench/roofline.py profile_fp16_b16.json [--bandwidth-tbs 4.8 --peak-tflops 989] [--plot out.png]

Defaults are the H200's published peaks (HBM3e 4.8 TB/s; FP16 dense tensor cores 989 TFLOP/s, as the
H100 SXM); --peak-tflops 494 for TF32, 67 for FP32 without tensor cores.
"""
import argparse
import json
import sys
from collections import defaultdict


def floors(layers, bandwidth, peak):
    """Per layer: (memory-bound ms, compute-bound ms) at the given peaks (bytes/s, FLOP/s)."""
    return [(1e3 * l["bytes"] / bandwidth, 1e3 * l["flop"] / peak) for l in layers]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="a --profile-json file of eastrt bench (with bytes and flop per layer)")
    parser.add_argument("--bandwidth-tbs", type=float, default=4.8, help="memory bandwidth, TB/s (default 4.8)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="arithmetic peak, TFLOP/s (default 989)")
    parser.add_argument("--top", type=int, default=12, help="layers with the most time above their floor")
    parser.add_argument("--plot", help="also draw measured against floor per step (PNG)")
    args = parser.parse_args()
    with open(args.profile) as f:
        profile = json.load(f)
    layers = profile["layers"]
    if not layers or "bytes" not in layers[0]:
        sys.exit(f"{args.profile}: no bytes/flop per layer (made by an eastrt older than the roofline terms)")
    bw, peak = args.bandwidth_tbs * 1e12, args.peak_tflops * 1e12
    bounds = floors(layers, bw, peak)
    floor = [max(m, c) for m, c in bounds]
    measured = [l["ms"] for l in layers]

    print(f"{args.profile}: batch {profile.get('batch', '?')}, {len(layers)} steps, "
          f"peaks {args.bandwidth_tbs} TB/s and {args.peak_tflops:.0f} TFLOP/s")
    by_kind = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for l, f_ms, (m, c) in zip(layers, floor, bounds):
        k = by_kind[l["kind"]]
        k[0] += l["ms"]
        k[1] += f_ms
        k[2] += m
        k[3] += c
    print(f"{'kind':<14} {'measured ms':>11} {'floor ms':>9} {'memory ms':>10} {'compute ms':>11} {'of floor':>9}")
    for kind, (ms, f_ms, m, c) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"{kind:<14} {ms:>11.3f} {f_ms:>9.3f} {m:>10.3f} {c:>11.3f} {ms / max(f_ms, 1e-9):>8.2f}x")
    total, total_floor = sum(measured), sum(floor)
    memory_bound = sum(1 for m, c in bounds if m >= c)
    print(f"{'all':<14} {total:>11.3f} {total_floor:>9.3f} {sum(m for m, _ in bounds):>10.3f} "
          f"{sum(c for _, c in bounds):>11.3f} {total / total_floor:>8.2f}x")
    print(f"{memory_bound} of {len(layers)} steps are memory-bound at these peaks; "
          f"{sum(l['bytes'] for l in layers) / 1e9:.2f} GB moved, {sum(l['flop'] for l in layers) / 1e12:.3f} TFLOP")

    print(f"\nthe {args.top} steps furthest above their floor:")
    print(f"{'ms':>8} {'floor':>7} {'slack':>7} {'bound':<7} {'TB/s':>5} {'TFLOP/s':>7}  layer / tactic")
    order = sorted(range(len(layers)), key=lambda i: floor[i] - measured[i])
    for i in order[:args.top]:
        l, s = layers[i], measured[i] / 1e3
        bound = "memory" if bounds[i][0] >= bounds[i][1] else "compute"
        print(f"{measured[i]:>8.4f} {floor[i]:>7.4f} {measured[i] - floor[i]:>7.4f} {bound:<7} "
              f"{l['bytes'] / s / 1e12:>5.2f} {l['flop'] / s / 1e12:>7.1f}  {l['name']} / {l['tactic']}")

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(12, 4.5))
        x = range(len(layers))
        ax.bar(x, measured, width=1.0, color="#d95f02", label=f"measured ({total:.2f} ms)")
        ax.bar(x, floor, width=1.0, color="#1b9e77", label=f"floor at the card's peaks ({total_floor:.2f} ms)")
        ax.set_xlabel("engine step, in order")
        ax.set_ylabel("ms")
        ax.set_xlim(-0.5, len(layers) - 0.5)
        ax.set_title(f"{args.profile.rsplit('/', 1)[-1]}: batch {profile.get('batch', '?')}, "
                     f"{args.bandwidth_tbs} TB/s, {args.peak_tflops:.0f} TFLOP/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
