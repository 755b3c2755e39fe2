# Checks scripts/export_tf.sh's exports with eastrt itself: `eastrt detect` with the safetensors source and with
# each export must give the same boxes, and TensorFlow's (and ONNX Runtime's) maps on eastrt run's seeded image
# must match what eastrt computes. Run by scripts/check_exports.sh in .venv-tf.
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EASTRT = os.environ.get("EASTRT", os.path.join(ROOT, "build", "eastrt"))
SCORE, GEOMETRY = "feature_fusion/Conv_7/Sigmoid", "feature_fusion/concat_3"


def eastrt(args, check=True):
    done = subprocess.run([EASTRT] + args, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError("eastrt %s failed (%d):\n%s" % (" ".join(args), done.returncode, done.stderr.strip()))
    return done


def read_boxes(folder):
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "res_*.txt"))):
        with open(path) as f:
            rows = [[int(round(float(v))) for v in line.strip().split(",")[:8]] for line in f if line.strip()]
        out[os.path.basename(path)] = np.array(sorted(rows), dtype=np.int64).reshape(-1, 8)
    return out


def compare_boxes(reference, other):
    """-> (identical, worst coordinate difference or None where the box counts differ, text)."""
    if sorted(reference) != sorted(other):
        return False, None, "result files differ: %s vs %s" % (sorted(reference), sorted(other))
    worst, notes = 0, []
    for name in reference:
        a, b = reference[name], other[name]
        if a.shape != b.shape:
            return False, None, "%s: %d boxes vs %d" % (name, len(a), len(b))
        if len(a):
            worst = max(worst, int(np.abs(a - b).max()))
    boxes = sum(len(a) for a in reference.values())
    identical = all(np.array_equal(reference[n], other[n]) for n in reference)
    return identical, worst, "%d boxes in %d files, %s" % (
        boxes, len(reference), "identical" if identical else "max coordinate difference %d px" % worst)


def seeded_image(shape, seed):
    # eastrt run's input: std::mt19937(seed) through libstdc++'s uniform_real_distribution<float>(0, 255),
    # i.e. float(u32) / 2^32 (below 1) * 255 in float32, in row-major NHWC order.
    bits = np.random.MT19937()
    bits._legacy_seeding(seed)
    u = bits.random_raw(int(np.prod(shape))).astype(np.uint32).astype(np.float32) / np.float32(2.0 ** 32)
    u = np.minimum(u, np.nextafter(np.float32(1), np.float32(0)))
    return (u * np.float32(255)).reshape(shape).astype(np.float32)


def stats(array):
    a = np.asarray(array, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean())}


def tensorflow_maps(frozen_path, image):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    graph_def = tf.GraphDef()
    with open(frozen_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
    with tf.Session(graph=graph, config=config) as sess:
        return sess.run([SCORE + ":0", GEOMETRY + ":0"], {"input_images:0": image})


def onnxruntime_maps(onnx_path, image):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    return session.run([SCORE + ":0", GEOMETRY + ":0"], {"input_images:0": image})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "exports"))
    parser.add_argument("images", nargs="?", default=os.path.join(ROOT, "examples", "images"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--map-size", default="1x640x640x3", help="input of the map comparison (NHWC)")
    parser.add_argument("--no-maps", action="store_true", help="skip TensorFlow's and ONNX Runtime's maps")
    args = parser.parse_args()
    if not os.access(EASTRT, os.X_OK):
        sys.exit("no %s: build it (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build "
                 "--target eastrt)" % EASTRT)
    onnx = sorted(glob.glob(os.path.join(args.out, "*.onnx")))
    frozen = os.path.join(args.out, "frozen.pb")
    # (name, model, extra flags, whether a disagreement fails the check). Every import path runs at every
    # image's size from one import (the frozen graph's and the tf2onnx model's resize sizes follow the input).
    models = [("safetensors", os.path.join(ROOT, "models", "east.safetensors"), [], True),
              ("train-ckpt", os.path.join(args.out, "train", "model.ckpt"), [], True),
              ("infer-ckpt", os.path.join(args.out, "infer", "model.ckpt"), [], True),
              ("frozen.pb", frozen, [], True)] + [("onnx", p, [], True) for p in onnx]
    check_dir = os.path.join(args.out, "check")
    report = {"images": os.path.relpath(args.images, ROOT), "threads": args.threads, "detect": {}}
    reference = None
    failed = False
    print("eastrt detect on %s (CPU, %d threads):" % (report["images"], args.threads))
    for name, model, flags, counted in models:
        folder = os.path.join(check_dir, name)
        start = time.time()
        done = eastrt(["detect", "--model", model, "--device", "cpu", "--threads", str(args.threads), "--force",
                       "--out", folder] + flags + [args.images], check=False)
        seconds = time.time() - start
        entry = {"model": os.path.relpath(model, ROOT), "flags": flags, "counted": counted, "seconds": round(seconds, 1), "rc": done.returncode}
        if done.returncode != 0:
            entry["error"] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit %d" % done.returncode
            print("  %-13s FAILED (%.1f s): %s" % (name, seconds, entry["error"]))
            failed = failed or counted
        else:
            boxes = read_boxes(folder)
            first = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
            entry["model_line"] = first
            if reference is None:
                reference = boxes
                text = "%d boxes in %d files (the reference)" % (sum(len(b) for b in boxes.values()), len(boxes))
                entry["identical"], entry["max_px"] = True, 0
            else:
                entry["identical"], entry["max_px"], text = compare_boxes(reference, boxes)
                if counted and (entry["max_px"] is None or entry["max_px"] > 1):
                    failed = True
            entry["summary"] = text
            print("  %-13s %5.1f s  %s%s" % (name, seconds, text, "" if counted else "  (not counted)"))
        report["detect"][name] = entry

    if not args.no_maps:
        shape = [int(v) for v in args.map_size.split("x")]
        image = seeded_image(shape, 7)
        maps = {}
        for name, model, _, _ in models[:1] + models[3:4]:
            run = json.loads(eastrt(["run", "--model", model, "--input", args.map_size, "--threads",
                                     str(args.threads), "--json"]).stdout)
            maps["eastrt " + name] = {o["name"].split(":")[0]: {k: o[k] for k in ("min", "max", "mean")}
                                      for o in run["outputs"]}
        start = time.time()
        tf_score, tf_geometry = tensorflow_maps(os.path.join(args.out, "frozen.pb"), image)
        maps["tensorflow frozen.pb"] = {SCORE: stats(tf_score), GEOMETRY: stats(tf_geometry)}
        report["tensorflow_seconds"] = round(time.time() - start, 1)
        if onnx:
            ort_score, ort_geometry = onnxruntime_maps(onnx[0], image)
            maps["onnxruntime " + os.path.basename(onnx[0])] = {SCORE: stats(ort_score), GEOMETRY: stats(ort_geometry)}
            report["onnxruntime_vs_tensorflow_max_abs"] = {
                "score": float(np.abs(ort_score - tf_score).max()),
                "geometry": float(np.abs(ort_geometry - tf_geometry).max())}
            done = eastrt(["onnx-check", onnx[0], "--input", args.map_size, "--run"], check=False)
            lines = (done.stdout + done.stderr).strip().splitlines()
            report["onnx_check"] = {"rc": done.returncode, "output": lines[-6:]}
        report["maps"] = maps
        print("\nmaps on eastrt run's seeded %s image (seed 7): min / max / mean" % args.map_size)
        worst = {SCORE: 0.0, GEOMETRY: 0.0}
        for who, outputs in maps.items():
            for node in (SCORE, GEOMETRY):
                s = outputs.get(node)
                if s is None:
                    print("  %-34s %s: missing" % (who, node))
                    continue
                ref = maps["tensorflow frozen.pb"][node]
                worst[node] = max(worst[node], *(abs(s[k] - ref[k]) for k in ("min", "max", "mean")))
                print("  %-34s %-30s %10.6f %10.6f %10.6f" % (who, node, s["min"], s["max"], s["mean"]))
        report["maps_worst_stat_difference_vs_tensorflow"] = worst
        print("  largest difference of a statistic from TensorFlow's: score %.3g, geometry %.3g" % (
            worst[SCORE], worst[GEOMETRY]))
        if onnx:
            d = report["onnxruntime_vs_tensorflow_max_abs"]
            print("  ONNX Runtime vs TensorFlow, max |difference|: score %.3g, geometry %.3g" % (d["score"], d["geometry"]))
            c = report["onnx_check"]
            print("  eastrt onnx-check %s --input %s --run: exit %d\n    %s" % (
                os.path.basename(onnx[0]), args.map_size, c["rc"], "\n    ".join(c["output"])))
    with open(os.path.join(args.out, "check.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print("\nwrote %s; %s" % (os.path.join(args.out, "check.json"),
                              "exports DISAGREE with the source" if failed else "every TF export agrees with the source"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
