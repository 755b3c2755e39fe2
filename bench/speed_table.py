# eastrt against PyTorch on EAST 672x1280, per precision and batch: the rows of one device call paired up
# (eastrt's CUDA-graph builds with every tactic on one stream, PyTorch's best mode of that precision),
# for the summary of scripts/gpu_check.sh and the picture of bench/plot_results.py.
# Usage: python3 bench/speed_table.py BENCH.jsonl PEER.jsonl ...   (prints the table)
import json
import sys

PRECISIONS = ["fp32", "tf32", "fp16", "int8", "fp8"]


def pairs(rows):
    """{(precision, batch): ([eastrt images/s, in build order], (best PyTorch images/s, its mode))}."""
    ours, theirs = {}, {}
    for r in rows:
        if r.get("width") != 1280 or "tool" not in r:
            continue
        key = (r["precision"], r["batch"])
        if r["tool"] == "eastrt" and r.get("model", "").startswith("built-in") and r.get("cuda_graph") \
                and r.get("cudnn_graph_tactics", True) and r.get("wgmma_tactics", True) \
                and r.get("side_stream_steps", 0) == 0:
            ours.setdefault(key, []).append(r["images_per_s"])
        elif r["tool"].startswith("pytorch") and r["images_per_s"] > theirs.get(key, (0, ""))[0]:
            theirs[key] = (r["images_per_s"], r["mode"])
    keys = sorted((k for k in ours if k in theirs), key=lambda k: (k[1], PRECISIONS.index(k[0])))
    return {k: (ours[k], theirs[k]) for k in keys}


def read_rows(paths):
    """The JSON lines of every file in `paths` that exists (a device call may not have written each one)."""
    rows = []
    for path in paths:
        try:
            with open(path) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        except OSError:
            pass
    return rows


def main():
    table = pairs(read_rows(sys.argv[1:]))
    if not table:
        return
    # The first build: the targets are for a plain build, not the best of several.
    print(f"{'configuration':<16} {'eastrt img/s':>12} {'best PyTorch img/s':>19} {'(mode)':<14} {'ratio':>6}")
    for (precision, batch), (ours, (best, mode)) in table.items():
        print(f"{precision + ' batch ' + str(batch):<16} {ours[0]:>12.1f} {best:>19.1f} {mode:<14} {ours[0] / best:>6.2f}")


if __name__ == "__main__":
    main()
