# Pictures of the recorded GPU results, for the docs: EAST's network speed against PyTorch's best mode per
# precision and batch (one device call), and the held-out F1 against batch-16 speed per precision.
# Reads bench/results/*.jsonl only; the commits it takes are named below and printed on the pictures.
# Usage: .venv-train/bin/python bench/plot_results.py [OUT_DIR]   (default docs/images; needs matplotlib)
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import speed_table  # noqa: E402  (beside this file)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
SPEED_COMMIT = "c27635a"  # FP32, TF32 and FP16 with the PyTorch peer (two calls: the best PyTorch of both)
TRADEOFF_FP32_COMMIT = "649b4a8"  # FP32/TF32 batch 16 beside the 8-bit builds of QUANT_COMMIT
F1_COMMIT = "1de40e9"  # img_251-500 with every precision
QUANT_COMMIT = "8e7343e"  # the bundled model at batch 16 in every precision, one call


def rows(name):
    return speed_table.read_rows([os.path.join(RESULTS, name)])


def plot_speed(gpu, out):
    speed = speed_table.pairs([r for r in gpu if r.get("commit") == SPEED_COMMIT])
    keys = list(speed)
    if not keys:
        sys.exit(f"no eastrt and PyTorch rows of commit {SPEED_COMMIT} in {RESULTS}/gpu_h200.jsonl")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = range(len(keys))
    ours = [statistics.median(speed[k][0]) for k in keys]
    low = [m - min(speed[k][0]) for m, k in zip(ours, keys)]
    high = [max(speed[k][0]) - m for m, k in zip(ours, keys)]
    theirs = [speed[k][1][0] for k in keys]
    ax.bar([i - 0.2 for i in x], ours, 0.4, yerr=[low, high], capsize=3, label="eastrt (median of its builds, range)")
    ax.bar([i + 0.2 for i in x], theirs, 0.4, label="PyTorch 2.11, its best mode")
    for i, k in enumerate(keys):
        ax.text(i - 0.2, ours[i], f"{ours[i]:.0f}", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, theirs[i], f"{theirs[i]:.0f}\n{speed[k][1][1]}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{p.upper()}\nbatch {b}" for p, b in keys])
    ax.set_ylabel("images/s (network only, 672×1280)")
    ax.set_ylim(0, max(ours + theirs) * 1.18)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"EAST ResNet-50 on one NVIDIA H200, same call (eastrt commit {SPEED_COMMIT})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def plot_tradeoff(gpu, heldout, out):
    f1 = {r["precision"]: r["hmean"] for r in heldout
          if r.get("commit") == F1_COMMIT and r.get("engine") == "gpu" and r.get("images") == "ICDAR2015 img_251-500"}
    speed = {}
    for r in gpu:
        if r.get("tool") != "eastrt" or r.get("batch") != 16 or not r.get("cuda_graph"):
            continue
        p = r["precision"]
        if p in ("fp32", "tf32") and r.get("commit") == TRADEOFF_FP32_COMMIT and r.get("model", "").startswith("built-in"):
            speed[p] = r["images_per_s"]
        # 8 bits: the build as F1_COMMIT ran it (layers kept by the sensitivity pass only: --all-8bit now)
        if r.get("commit") == QUANT_COMMIT and "safetensors" in r.get("model", "") and \
                (p == "fp16" or r.get("all_8bit")):
            speed[p] = r["images_per_s"]
    points = [p for p in ("fp32", "tf32", "fp16", "int8", "fp8") if p in f1 and p in speed]
    if not points:
        sys.exit(f"no held-out F1 of commit {F1_COMMIT} with a batch-16 speed in {RESULTS}")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for p in points:
        ax.scatter(speed[p], f1[p], s=40)
        ax.annotate(p.upper(), (speed[p], f1[p]), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.axhline(f1["fp32"] - 0.005, color="grey", linestyle="--", linewidth=1)
    ax.text(min(speed.values()), f1["fp32"] - 0.005, " F1(FP32) − 0.005", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("images/s, network only, batch 16, 672×1280")
    ax.set_ylabel("F1 on held-out ICDAR 2015 img_251–500")
    ax.set_title(f"Precision against speed, bundled EAST, one H200\nF1 at {F1_COMMIT}; speed at {QUANT_COMMIT} "
                 f"(FP32/TF32 at {TRADEOFF_FP32_COMMIT})\nINT8/FP8: every layer the sensitivity pass allows in 8 bits "
                 "(--all-8bit)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "docs", "images")
    gpu = rows("gpu_h200.jsonl")
    plot_speed(gpu, os.path.join(out_dir, "east_speed_h200.png"))
    plot_tradeoff(gpu, rows("east_icdar2015_heldout.jsonl"), os.path.join(out_dir, "east_precision_speed_h200.png"))
    print(f"wrote east_speed_h200.png and east_precision_speed_h200.png in {out_dir}")


if __name__ == "__main__":
    main()
