# Exports EAST weights stored as TF-slim-named safetensors (models/east.safetensors) to what a TensorFlow user
# has: a training checkpoint with EMA shadows, an inference checkpoint, a frozen graph, and its tf2onnx ONNX.
# Run by scripts/export_tf.sh in .venv-tf; the graph is tests/fixtures/tf's east_tf at full width.
import argparse
import json
import os
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "tf"))

import numpy as np  # noqa: E402

# make_fixtures sets TF's environment (CPU only, no oneDNN reordering) and disables v2 behaviour on import;
# its graph builder and savers are the ones the fixtures were made with.
import make_fixtures  # noqa: E402
import east_tf  # noqa: E402
from make_fixtures import build_east, save_frozen, save_with_meta, session, tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # TF1 APIs used on purpose: their deprecation notices are noise here

OUTPUTS = [east_tf.SCORE_NODE, east_tf.GEOMETRY_NODE]
DTYPES = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "I32": np.int32, "I64": np.int64,
          "U8": np.uint8, "F64": np.float64}


def read_safetensors(path):
    """-> ({name: array}, metadata). Little-endian, an 8-byte header length, a JSON header, the data."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: %d bytes, too short for a safetensors header" % (path, len(data)))
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ValueError("%s: header of %d bytes runs past the end of the file (%d bytes)" % (path, length, len(data)))
    header = json.loads(data[8:8 + length])
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise ValueError("%s: tensor %s has dtype %s, not one this reader knows" % (path, name, entry["dtype"]))
        dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
        begin, end = entry["data_offsets"]
        count = int(np.prod(entry["shape"], dtype=np.int64))
        if end > len(body) or end - begin != count * dtype.itemsize:
            raise ValueError("%s: tensor %s: offsets %d..%d do not hold %s %s" % (
                path, name, begin, end, entry["dtype"], entry["shape"]))
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(entry["shape"]).astype(dtype.newbyteorder("="))
    return tensors, meta


def dequantise(stored, meta, path):
    """NAME#q int8 [K, G, 128] and NAME#scale fp16 [K, G, 1] -> NAME float32 in TF's RSCK shape (metadata
    "shapes"): filter[r, s, c, k] = q[k, i // 128, i % 128] * scale[k, i // 128], i = (r*S + s)*C + c, the
    product taken in float32 as train/checkpoint.py takes it. Everything else becomes float32."""
    shapes = json.loads(meta.get("shapes", "{}"))
    out = {}
    for name, value in stored.items():
        if name.endswith("#scale"):
            continue
        if not name.endswith("#q"):
            out[name] = value.astype(np.float32)
            continue
        base = name[:-2]
        if base not in shapes or base + "#scale" not in stored:
            raise ValueError("%s: %s has no %s in the metadata's shapes or no %s#scale" % (path, name, base, base))
        r, s, c, k = shapes[base]
        q, scale = value, stored[base + "#scale"]
        if q.shape[0] != k or scale.shape != (q.shape[0], q.shape[1], 1):
            raise ValueError("%s: %s %s and its scale %s do not fit the shape %s" % (
                path, name, q.shape, scale.shape, shapes[base]))
        rows = (q.astype(np.float32) * scale.astype(np.float32)).reshape(k, -1)[:, :r * s * c]
        out[base] = np.ascontiguousarray(rows.T.reshape(r, s, c, k))
    return out


def load_values(graph, weights, step, path):
    """Checks that `weights` are exactly the graph's variables (the global step apart) and returns them by
    variable name, shapes checked."""
    with graph.as_default():
        variables = {v.op.name: v for v in tf.global_variables()}
    wanted = set(variables) - {"global_step"}
    missing, extra = sorted(wanted - set(weights)), sorted(set(weights) - wanted)
    if missing or extra:
        raise ValueError("%s does not hold the full-width EAST graph's variables: missing %s; not in the graph %s" % (
            path, missing[:5] + (["..."] if len(missing) > 5 else []), extra[:5] + (["..."] if len(extra) > 5 else [])))
    for name in wanted:
        if list(weights[name].shape) != variables[name].shape.as_list():
            raise ValueError("%s: %s has shape %s, the graph's variable %s" % (
                path, name, list(weights[name].shape), variables[name].shape.as_list()))
    values = dict(weights)
    values["global_step"] = np.array(step, np.int64)
    return values


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    folder, stem = os.path.split(path)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.startswith(stem + "."))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "east.safetensors"))
    parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "exports"))
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--no-onnx", action="store_true", help="skip the tf2onnx conversion")
    args = parser.parse_args()
    timings, started = {}, time.time()

    def lap(what):
        nonlocal started
        timings[what] = time.time() - started
        print("%-22s %6.1f s" % (what, timings[what]), flush=True)
        started = time.time()

    stored, meta = read_safetensors(args.model)
    weights = dequantise(stored, meta, args.model)
    state = json.loads(meta.get("state", "{}"))
    step = int(state.get("step", 0))
    lap("read safetensors")
    os.makedirs(os.path.join(args.out, "train"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "infer"), exist_ok=True)
    train_prefix = os.path.join(args.out, "train", "model.ckpt")
    infer_prefix = os.path.join(args.out, "infer", "model.ckpt")
    frozen_path = os.path.join(args.out, "frozen.pb")
    onnx_path = os.path.join(args.out, "east_opset%d.onnx" % args.opset)

    # (a) The training graph (batch norm in training mode) with the shadows argman/EAST's training keeps:
    # ExponentialMovingAverage over the trainable variables, decay 0.997, keyed on the global step. Only the
    # deployed (EMA) weights exist, so the raw variables and their shadows hold the same values.
    graph, _, _, _ = build_east(True, 1)
    values = load_values(graph, weights, step, args.model)
    with graph.as_default():
        ema = tf.train.ExponentialMovingAverage(make_fixtures.EMA_DECAY, tf.train.get_global_step())
        ema.apply(tf.trainable_variables())
        with session(graph) as sess:
            sess.run(tf.global_variables_initializer())
            for v in tf.global_variables():
                if v.op.name in values:
                    v.load(values[v.op.name], sess)
            shadows = 0
            for v in tf.trainable_variables():
                ema.average(v).load(values[v.op.name], sess)
                shadows += 1
            save_with_meta(sess, graph, tf.global_variables(), train_prefix, OUTPUTS)
    lap("training checkpoint")

    # (b) The inference graph, restored from (a) as evaluation restores it (shadows in place of the
    # variables), must hold exactly the weights; it is saved and (c) frozen.
    graph, images, score, geometry = build_east(False, 1)
    with graph.as_default(), session(graph) as sess:
        ema = tf.train.ExponentialMovingAverage(make_fixtures.EMA_DECAY, tf.train.get_global_step())
        tf.train.Saver(ema.variables_to_restore()).restore(sess, train_prefix)
        for v in tf.global_variables():
            if not np.array_equal(sess.run(v), values[v.op.name]):
                raise AssertionError("restoring the training checkpoint's shadows gives another %s" % v.op.name)
        save_with_meta(sess, graph, tf.global_variables(), infer_prefix, OUTPUTS)
        lap("inference checkpoint")
        frozen = save_frozen(sess, graph, OUTPUTS, frozen_path)
    lap("frozen graph")

    # (d) ONNX from the frozen graph. H, W and the batch stay unknown, as in the TF graph.
    onnx_note = "skipped"
    if not args.no_onnx:
        import onnx
        import tf2onnx
        model, _ = tf2onnx.convert.from_graph_def(frozen, input_names=["input_images:0"],
                                                  output_names=[o + ":0" for o in OUTPUTS], opset=args.opset)
        model.producer_version = tf2onnx.__version__
        onnx.checker.check_model(model)
        onnx.save(model, onnx_path)
        onnx_note = "tf2onnx %s, opset %d, %d nodes" % (tf2onnx.__version__, args.opset, len(model.graph.node))
        lap("onnx (tf2onnx)")

    params = sum(int(np.prod(v.shape)) for n, v in weights.items())
    summary = {"source": os.path.relpath(args.model, ROOT) if args.model.startswith(ROOT) else args.model,
               "state": state, "variables": len(weights), "parameters": params, "ema_shadows": shadows,
               "frozen_nodes": len(frozen.node), "onnx": onnx_note, "seconds": {k: round(v, 1) for k, v in timings.items()},
               "bytes": {"source": os.path.getsize(args.model), "train checkpoint": size_of(train_prefix),
                         "inference checkpoint": size_of(infer_prefix), "frozen.pb": os.path.getsize(frozen_path)}}
    if not args.no_onnx:
        summary["bytes"][os.path.basename(onnx_path)] = os.path.getsize(onnx_path)
    with open(os.path.join(args.out, "export.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print("\n%s (step %d): %d variables, %.1f M parameters, %d EMA shadows; frozen graph %d nodes; ONNX: %s" % (
        summary["source"], step, len(weights), params / 1e6, shadows, len(frozen.node), onnx_note))
    for what, n in summary["bytes"].items():
        print("  %-22s %8.1f MiB" % (what, n / 2**20))
    print("  outputs in %s: train/model.ckpt (with .meta), infer/model.ckpt, frozen.pb%s, export.json" % (
        args.out, "" if args.no_onnx else ", " + os.path.basename(onnx_path)))


if __name__ == "__main__":
    main()
