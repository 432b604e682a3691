"""End-to-end ``diverseg score --scorers sam`` against the SAM counter alone, on the CPU.

Writes ``--images`` generated shape images (the tiny trained SAM's distribution, sides 300-500 px,
JPEG q90) to a temporary folder and measures, with the tiny trained SAM (tests/fixtures/tiny_sam)
at a reduced setting (points_per_side 8, pred_iou_thresh 0.5, stability_score_thresh 0.7, so that
masks survive and their post-processing is paid):

- model only: ``SamMaskCounter.count`` on the pre-decoded arrays, ``--batch-size`` images per call
  (the model loaded beforehand);
- end to end: :func:`diverseg_hf.score.score`, what ``diverseg score --scorers sam --batch-size N``
  runs (model load, probe, hash, decode, scoring, Parquet table), with the CPU stage running ahead
  of the model (the default) and sequentially (``DEFAULT_AHEAD = 0``, the former behaviour);
- pipeline only: the same run with an instant GPU scorer (the tests' ``OptionsProbe``) in place of
  SAM: what the pipeline costs per image besides the model. On a loaded machine the direct ratio
  is noisy (a few %), so the ratio the two parts predict, model / (model + pipeline), is printed too;
- model load: building ``SamMaskCounter`` and loading its weights (``load()``; paid once per run by the
  end-to-end modes, not by the model-only one), so that the end-to-end ratio is also given with the load
  amortised away.

Each in CPU time (``time.process_time``: every thread of this process; robust on a shared machine)
and wall time, the median of ``--repeats`` interleaved rounds; prints JSON and a Markdown table with
the end-to-end / model-only images/s ratio (goal >= 0.9) and checks that the counts agree.

    python benchmarks/score_pipeline.py [--images 32] [--batch-size 8] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sam_helpers import TINY_SAM, shape_images  # noqa: E402

from diverseg_hf.decode.images import decode_rgb  # noqa: E402
from diverseg_hf.score import score  # noqa: E402
from diverseg_hf.scoring import register_scorer, run  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402
from diverseg_hf.storage import ScoreTable  # noqa: E402

SETTING = {"points_per_side": 8, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}


def corpus(folder: Path, n: int) -> list[bytes]:
    """``n`` JPEGs (q90) of generated shapes written to ``folder``; their bytes in source order."""
    folder.mkdir(parents=True)
    out = []
    for i, rgb in enumerate(shape_images(n, seed=2026, low=300, high=500)):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        (folder / f"img-{i:04d}.jpg").write_bytes(buf.getvalue())
        out.append(buf.getvalue())
    return out


def timed(fn) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds, result) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def model_only(counter: SamMaskCounter, arrays: list, batch: int) -> list[int]:
    return [c for i in range(0, len(arrays), batch) for c in counter.count(arrays[i : i + batch])]


def end_to_end(src: Path, out: Path, batch: int, ahead: int) -> list[int]:
    run.DEFAULT_AHEAD = ahead
    options = {"model": str(TINY_SAM), "image_batch_size": batch, **SETTING}  # the model-only batching
    score(str(src), out, ["sam"], {"sam": options}, batch_size=batch, device="cpu", overwrite=True, progress=False)
    return ScoreTable.open(out).read(columns=["sam_masks"]).column("sam_masks").to_pylist()


def pipeline_only(src: Path, out: Path, batch: int) -> list[int]:
    register_scorer("optprobe", "pipeline_helpers:OptionsProbe")
    score(str(src), out, ["optprobe"], batch_size=batch, device="cpu", overwrite=True, progress=False)
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="score_pipeline"))
    data = corpus(tmp / "src", args.images)
    arrays = [decode_rgb(b) for b in data]
    counter = SamMaskCounter(TINY_SAM, image_batch_size=args.batch_size, **SETTING)
    ahead = run.DEFAULT_AHEAD
    (tmp / "one").mkdir()
    (tmp / "one" / "a.jpg").write_bytes(data[0])
    model_only(counter, arrays[:1], 1)  # warm-ups: first calls, one-time imports
    end_to_end(tmp / "one", tmp / "w", 1, ahead)
    modes = {"model only (pre-decoded)": lambda: model_only(counter, arrays, args.batch_size),
             "end to end, CPU stage ahead": lambda: end_to_end(tmp / "src", tmp / "a", args.batch_size, ahead),
             "end to end, sequential": lambda: end_to_end(tmp / "src", tmp / "s", args.batch_size, 0),
             "pipeline only (instant scorer)": lambda: pipeline_only(tmp / "src", tmp / "p", args.batch_size),
             "model load": lambda: SamMaskCounter(TINY_SAM, image_batch_size=args.batch_size, **SETTING).load() and []}
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    counts = {}
    pipeline_only(tmp / "one", tmp / "w", 1)
    for _ in range(args.repeats):
        for mode, fn in modes.items():
            cpu, wall, counts[mode] = timed(fn)
            samples[mode].append((cpu, wall))
    del counts["pipeline only (instant scorer)"], counts["model load"]
    if len({tuple(c) for c in counts.values()}) != 1:
        raise SystemExit(f"counts differ between modes: {counts}")
    rows = []
    base_cpu = args.images / statistics.median(c for c, _ in samples["model only (pre-decoded)"])
    base_wall = args.images / statistics.median(w for _, w in samples["model only (pre-decoded)"])
    for mode, times in samples.items():
        cpu_rate = args.images / statistics.median(c for c, _ in times)
        wall_rate = args.images / statistics.median(w for _, w in times)
        rows.append({"mode": mode, "img_per_cpu_s": round(cpu_rate, 3), "ratio_cpu": round(cpu_rate / base_cpu, 3),
                     "img_per_wall_s": round(wall_rate, 3), "ratio_wall": round(wall_rate / base_wall, 3)})
    model_cpu = statistics.median(c for c, _ in samples["model only (pre-decoded)"]) / args.images
    pipe_cpu = statistics.median(c for c, _ in samples["pipeline only (instant scorer)"]) / args.images
    load = {k: statistics.median(x[k] for x in samples["model load"]) for k in (0, 1)}
    for row in rows[1:3]:
        for k, name in ((0, "cpu"), (1, "wall")):
            e2e = statistics.median(x[k] for x in samples[row["mode"]]) - load[k]
            base = statistics.median(x[k] for x in samples["model only (pre-decoded)"])
            row[f"ratio_{name}_load_amortised"] = round(base / e2e, 3)
    print(json.dumps({"images": args.images, "batch_size": args.batch_size, "threads": args.threads,
                      "setting": SETTING, "mean_masks": sum(counts["model only (pre-decoded)"]) / args.images,
                      "model_cpu_s_per_image": round(model_cpu, 4), "pipeline_cpu_s_per_image": round(pipe_cpu, 4),
                      "predicted_ratio_cpu": round(model_cpu / (model_cpu + pipe_cpu), 3),
                      "samples": samples, "rows": rows}, indent=1))
    print("\n| mode | images/CPU-s | ratio (CPU) | ratio (CPU), load amortised | images/s wall | ratio (wall) |"
          " ratio (wall), load amortised |\n|---|---|---|---|---|---|---|")
    for r in rows[:4]:
        print(f"| {r['mode']} | {r['img_per_cpu_s']} | {r['ratio_cpu']} | {r.get('ratio_cpu_load_amortised', '')} "
              f"| {r['img_per_wall_s']} | {r['ratio_wall']} | {r.get('ratio_wall_load_amortised', '')} |")


if __name__ == "__main__":
    main()
