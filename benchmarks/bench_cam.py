"""CAM / Grad-CAM / Grad-CAM++ from image-level labels on the MNI sample.

Object: white matter (WM).  Crops of 24^3 voxels on a grid over the T1 are
labelled 1 if at least 10 % of their voxels are WM, else 0; a classifier
is trained on them.  On the positive crops: pointing game (map maximum
within 1 voxel of WM), energy inside WM, IoU of the Otsu-thresholded map.
Then the whole-volume map becomes pseudo-labels (seed / background /
ignore), a U-Net is trained from them, and both are scored against WM as a
fraction of a U-Net trained on dense WM labels with the same budget.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_cam.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, sample_volumes, save_plot  # noqa: E402

from napari_weakseg import api  # noqa: E402
from napari_weakseg.core.cam import cam, grad_cam, map_volume, pseudo_labels  # noqa: E402
from napari_weakseg.core.classifier import iter_train_classifier  # noqa: E402
from napari_weakseg.core.events import run  # noqa: E402
from napari_weakseg.core.metrics import dice_per_class  # noqa: E402
from napari_weakseg.core.models import load_model  # noqa: E402
from napari_weakseg.core.normalise import normalise  # noqa: E402
from napari_weakseg.core.training import TrainConfig  # noqa: E402

SIZE = 24


def grid_crops(img, wm, step=12):
    crops, labels, masks = [], [], []
    for z in range(0, img.shape[0] - SIZE + 1, step):
        for y in range(0, img.shape[1] - SIZE + 1, step):
            for x in range(0, img.shape[2] - SIZE + 1, step):
                sl = (
                    slice(z, z + SIZE),
                    slice(y, y + SIZE),
                    slice(x, x + SIZE),
                )
                crops.append(img[sl])
                masks.append(wm[sl])
                labels.append(int(wm[sl].mean() >= 0.10))
    return crops, labels, masks


def localisation(maps, masks):
    from skimage.filters import threshold_otsu

    point, energy, iou = [], [], []
    for m, obj in zip(maps, masks):
        near = ndimage.binary_dilation(obj, iterations=1)
        point.append(bool(near.flat[int(np.argmax(m))]))
        energy.append(float(m[obj].sum() / max(m.sum(), 1e-12)))
        if m.max() > m.min():
            seg = m > threshold_otsu(m)
            iou.append(float((seg & obj).sum() / max((seg | obj).sum(), 1)))
        else:
            iou.append(0.0)
    return np.mean(point), np.mean(energy), np.mean(iou)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--unet-steps", type=int, default=300)
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.unet_steps = 5, 3
    image, tissue = sample_volumes()
    raw = np.asarray(image.data)
    img = normalise(raw)
    wm = tissue.data == 2
    crops, labels, masks = grid_crops(img, wm)
    print(f"{len(crops)} crops, {sum(labels)} with WM >= 10 %", flush=True)
    rows, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        clf = Path(tmp) / "clf.safetensors"
        cfg = TrainConfig(
            steps=args.steps,
            base_filters=args.filters,
            batch_size=8,
            val_every=args.steps,
            device="cpu",
        )
        fin = run(
            iter_train_classifier(
                crops, labels, clf, cfg, image.geometry.spacing
            )
        )
        results["classifier accuracy (train crops)"] = fin.best
        model, _ = load_model(clf)
        pos = [i for i, c in enumerate(labels) if c == 1]
        for method in ("cam", "gradcam", "gradcam++"):
            maps = []
            for i in pos:
                x = torch.as_tensor(crops[i])[None, None]
                m = (
                    cam(model, x, 1)
                    if method == "cam"
                    else grad_cam(model, x, "bottleneck", 1, method=method)
                )
                maps.append(m[0, 0].numpy())
            t0 = time.perf_counter()
            whole = map_volume(model, img, 1, method)
            dt = time.perf_counter() - t0
            rows[method] = (*localisation(maps, [masks[i] for i in pos]), dt)
            print(
                f"{method}: pointing {rows[method][0]:.2f} energy "
                f"{rows[method][1]:.2f} IoU {rows[method][2]:.2f} "
                f"({dt:.2f} s/volume)",
                flush=True,
            )
        seeds = pseudo_labels(whole, 1)  # Grad-CAM++ map of the volume
        lab = seeds != 255
        results["seed coverage"] = float(lab.mean())
        results["seed Dice (labelled voxels)"] = dice_per_class(
            seeds, wm.astype(np.uint8), 2, lab
        )[0]
        truth = wm.astype(np.uint8)
        for name, target in (
            ("U-Net from CAM seeds", seeds),
            ("U-Net from dense labels", truth),
        ):
            path = Path(tmp) / "u.safetensors"
            api.train(
                raw,
                target,
                path,
                steps=args.unet_steps,
                base_filters=args.filters,
                device="cpu",
            )
            pred, _ = api.predict(path, raw, device="cpu")
            results[name] = dice_per_class(pred, truth, 2)[0]
            print(f"{name}: Dice {results[name]:.3f}", flush=True)
    dense = results["U-Net from dense labels"]
    print(
        f"\nMNI152 WM from crop labels, classifier {args.steps} steps, "
        f"U-Nets {args.unet_steps} steps, {machine()}"
    )
    print("| method | pointing game | energy in WM | IoU (Otsu) | s/volume |")
    print("|---|---|---|---|---|")
    for k, (p, e, i, t) in rows.items():
        print(f"| {k} | {p:.2f} | {e:.2f} | {i:.2f} | {t:.2f} |")
    print("\n| result | value | × dense |\n|---|---|---|")
    for k, v in results.items():
        frac = f"{v / dense:.2f}" if "Dice" in k or "U-Net" in k else ""
        print(f"| {k} | {v:.3f} | {frac} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cam.json").write_text(
        json.dumps(
            {"machine": machine(), "rows": rows, "results": results}, indent=1
        )
    )
    save_plot(
        args.out / "cam.png",
        ["pointing", "energy", "IoU"],
        {k: (list(v[:3]), [0, 0, 0]) for k, v in rows.items()},
        "score",
        "Localisation of WM from crop labels",
    )


if __name__ == "__main__":
    main()
