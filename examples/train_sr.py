"""Train a small x4 SR network on a curated subset streamed with SRPairs, then evaluate PSNR/SSIM.

The subset can be a published folder (``data/<config>/*.parquet`` or ``wds/<config>/*.tar``), a
folder written by ``diverseg export --format basicsr`` (``--format basicsr``), or a Hub dataset id
(streamed with ``datasets.load_dataset(id, config, streaming=True)``). Evaluation uses a folder of
HR images: each is cropped to a multiple of the scale, its LR made with MATLAB bicubic ``imresize``
(x1/scale, uint8), and the network's output is printed beside plain bicubic upscaling, both on the Y
channel with a ``scale``-pixel border shaved, as SR papers report (``diverseg_hf.sr.metrics``).

HR patches are 192 pixels by default, as in ``SRPairs`` and the README (EDSR's x4 setting: 48-pixel
LR patches); pass ``--patch-size 96`` for quick CPU runs. Logging is at WARNING unless ``--verbose``;
the DataLoader workers' own messages are DEBUG.

Example:
    python examples/train_sr.py --data ./DiverSeg --config I --eval-dir ./Set14 --steps 2000 --device cuda
    python examples/train_sr.py --data user/diverseg --config P --eval-dir ./Set5 --steps 200 \\
        --save run.pt            # later: --resume run.pt continues mid-epoch, no image repeated
    python examples/train_sr.py --data ./DiverSeg_I_basicsr --format basicsr --lr-from image --eval-dir ./Set5
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from diverseg_hf.decode.images import decode_rgb, find_image_files
from diverseg_hf.sr import SRPairs, imresize
from diverseg_hf.sr.metrics import psnr, ssim

logger = logging.getLogger("train_sr")


class TinySR(nn.Module):
    """Bicubic upscaling plus a learned residual: three convolutions and a PixelShuffle (ESPCN-like)."""

    def __init__(self, scale: int = 4, channels: int = 32):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(3, channels, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 3 * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )
        nn.init.zeros_(self.body[-2].weight)  # start as exactly bicubic
        nn.init.zeros_(self.body[-2].bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr, float(self.scale)) + self.body(lr)


def open_pairs(args: argparse.Namespace) -> SRPairs:
    kwargs = {"scale": args.scale, "patch_size": args.patch_size, "seed": args.seed, "lr_from": args.lr_from}
    if Path(args.data).is_dir():
        return SRPairs.from_folder(args.data, args.config, format=args.format, **kwargs)
    import datasets

    stream = datasets.load_dataset(args.data, args.config, split="train", streaming=True)
    return SRPairs(stream, **kwargs)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """3xHxW float in [0, 1] -> HxWx3 uint8 (rounded)."""
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def evaluate(model: nn.Module, folder: str, scale: int, device: str) -> dict[str, float]:
    """Mean PSNR/SSIM (Y, border ``scale``) of the model and of bicubic over a folder of HR images."""
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "bicubic_psnr": [], "bicubic_ssim": []}
    for path in find_image_files([folder]):
        hr = decode_rgb(path)
        hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
        lr = imresize(hr, 1.0 / scale)
        bicubic = imresize(lr, float(scale))
        lr_t = torch.from_numpy(lr).permute(2, 0, 1).float().div(255).unsqueeze(0).to(device)
        sr = to_uint8(model(lr_t)[0])
        scores["psnr"].append(psnr(sr, hr, scale))
        scores["ssim"].append(ssim(sr, hr, scale))
        scores["bicubic_psnr"].append(psnr(bicubic, hr, scale))
        scores["bicubic_ssim"].append(ssim(bicubic, hr, scale))
    model.train()
    return {k: float(np.mean(v)) for k, v in scores.items()}


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    pairs = open_pairs(args)
    model = TinySR(args.scale).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if args.resume:
        saved = torch.load(args.resume, map_location=args.device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        pairs.load_state_dict(saved["pairs"])
        step = saved["step"]
    loader = torch.utils.data.DataLoader(
        pairs, batch_size=args.batch_size, num_workers=args.workers, pin_memory=args.device.startswith("cuda")
    )
    loss = math.nan
    bar = tqdm(total=args.steps, initial=step, desc="train", disable=args.quiet)
    epoch = pairs.epoch
    while step < args.steps:
        pairs.set_epoch(epoch)
        got = 0
        for batch in loader:
            lr, hr = batch["lr"].to(args.device, non_blocking=True), batch["hr"].to(args.device, non_blocking=True)
            out = model(lr)
            loss_t = nn.functional.l1_loss(out, hr)
            optimizer.zero_grad(set_to_none=True)
            loss_t.backward()
            optimizer.step()
            pairs.consumed(batch)
            loss, step, got = loss_t.item(), step + 1, got + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
            if step >= args.steps:
                break
        else:
            if got == 0 and not pairs.state_dict()["workers"]:
                raise SystemExit(f"no training pairs in {args.data}: images smaller than {args.patch_size}?")
            epoch += 1
    bar.close()
    if args.save:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "pairs": pairs.state_dict()}
        torch.save({**state, "step": step}, args.save)
    result = {"steps": step, "loss": loss, "skipped": pairs.skipped}
    if args.eval_dir:
        result.update(evaluate(model, args.eval_dir, args.scale, args.device))
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="published folder or Hub dataset id")
    p.add_argument("--config", default="I", help="subset config (I, P, IP)")
    p.add_argument("--format", default="parquet", choices=["parquet", "webdataset", "basicsr"],
                   help="folder format: published shards, or a diverseg export folder (basicsr)")
    p.add_argument("--lr-from", default="patch", choices=["patch", "image"],
                   help="LR from the HR patch, or from the whole image as DIV2K does (see SRPairs)")
    p.add_argument("--eval-dir", help="folder of HR images to evaluate on (e.g. Set14)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=192, help="HR patch side (multiple of --scale)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--save", help="write model, optimizer and SRPairs state here at the end")
    p.add_argument("--resume", help="continue from a --save file (same data, workers and seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="log at INFO (default WARNING)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    result = train(args)
    print(f"steps {result['steps']}  last L1 loss {result['loss']:.4f}  skipped {result['skipped']}")
    if args.eval_dir:
        print(f"x{args.scale} on {args.eval_dir}   PSNR/SSIM (Y, {args.scale}-pixel border)")
        print(f"{'bicubic':8} {result['bicubic_psnr']:.2f}/{result['bicubic_ssim']:.4f}")
        print(f"{'TinySR':8} {result['psnr']:.2f}/{result['ssim']:.4f}")
    return result


if __name__ == "__main__":
    main()
