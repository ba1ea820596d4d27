"""CAM from image-level labels, and image-level labels to segmentations.

Targets (crops of a grid over each volume; a crop is *present* when it
holds at least ``min_voxels`` of the object, *absent* when it holds none,
and left out in between):

* MNI lateral ventricles (``bench_boxes.mni_ventricles``), 24^3 crops;
  crops holding CSF the truth leaves out (two ~430-voxel components below
  the ventricle bodies) are left out too.  Held back: crops centred in the
  right hemisphere.
* hippocampus MRI (``../shared/data``), the 8 labelled cases, head and
  body together.  The classifier learns from 10^3 crops (present: at
  least 20 % object) -- on a 16^3 grid only 82 of 1,092 crops of these
  volumes, cut around the hippocampus, are free of it; it is scored on
  the held-back 16^3 crops (at least 5 % object) of 3 other cases.
* MNI white matter (the documented hard case: it fills most crops).

Per target and classifier (``topk``: the local top-k classifier, the
default; ``gap``: U-Net encoder + GAP, the old one), over ``--seeds``:
accuracy on the held-back crops; on their positive crops the pointing
game (map maximum within one voxel of the object: 2 mm MNI, 1 mm
hippocampus; *chance* is the share of a crop's voxels that would
count), the map's energy inside the object and the IoU of its Otsu mask.
Crops are cut with the classifier's context of the volume around them
(``classifier.cut(..., crop_margin(pooling))``, as ``api`` does).  Then on one
volume (MNI; hippocampus: case 006, whose crops' labels trained the
classifier -- the weakly supervised setting) with the default
classifier (first seed): Dice of the seeds (on the voxels they label),
of a U-Net trained on them, of seed -> expand -> constrain (3 rounds; SEC's
expansion loss, GWRP, over the volume's present crops; dense CRF between
rounds) and, as an ablation, the same rounds without GWRP, each as a
fraction of a U-Net trained on the dense truth with the same number of
steps; seconds to map the volume.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_cam.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, sample_volumes, save_plot  # noqa: E402
from _realdata import SHARED  # noqa: E402
from bench_boxes import mni_ventricles  # noqa: E402

from napari_weakseg.core.base.events import run  # noqa: E402
from napari_weakseg.core.base.metrics import dice_per_class  # noqa: E402
from napari_weakseg.core.data.normalise import normalise  # noqa: E402
from napari_weakseg.core.data.volumes import read_volume  # noqa: E402
from napari_weakseg.core.methods.cam import cam, grad_cam, map_volume  # noqa: E402
from napari_weakseg.core.methods.cam2seg import (  # noqa: E402
    absent_mask,
    iter_cam_to_masks,
    seeds,
)
from napari_weakseg.core.methods.classifier import (  # noqa: E402
    ClassifierConfig,
    crop_margin,
    cut,
    iter_train_classifier,
)
from napari_weakseg.core.nn.models import load_model  # noqa: E402
from napari_weakseg.core.predict.sliding import iter_predict  # noqa: E402
from napari_weakseg.core.train.budget import Budget  # noqa: E402
from napari_weakseg.core.train.unet import TrainConfig, iter_train  # noqa: E402


@dataclass
class Target:
    name: str
    raws: list  # raw volumes
    truths: list  # binary object masks
    spacing: tuple
    size: int
    stride: int
    min_voxels: int
    held_back: object  # (volume index, box) -> bool
    seg_volume: int = 0
    ambiguous: list = field(default_factory=list)  # per volume or None
    test_grid: tuple | None = None  # (size, stride, min_voxels) if other
    steps: int | None = None  # classifier steps if not --steps


def ventricles() -> Target:
    raw, truth, _, _ = mni_ventricles()
    image, tissue = sample_volumes()
    brain = ndimage.binary_fill_holes(
        ndimage.binary_closing(raw > 0.05 * raw.max(), iterations=2)
    )
    csf = (
        ndimage.binary_erosion(brain, iterations=3)
        & (raw < 0.5 * raw.max())
        & (tissue.data == 0)
    )
    comp, n = ndimage.label(csf)
    sizes = ndimage.sum(np.ones_like(comp), comp, range(1, n + 1))
    keep = [i + 1 for i in range(n) if 300 < sizes[i] < 1000]
    amb = np.isin(comp, keep) & (truth == 0)
    mid = raw.shape[2] / 2
    return Target(
        "MNI lateral ventricles",
        [raw],
        [truth > 0],
        tuple(image.geometry.spacing),
        24,
        6,
        40,
        lambda v, b: (b[2] + b[5]) / 2 >= mid,
        ambiguous=[amb],
    )


def white_matter() -> Target:
    image, tissue = sample_volumes()
    raw = np.asarray(image.data)
    mid = raw.shape[2] / 2
    return Target(
        "MNI white matter (hard case)",
        [raw],
        [tissue.data == 2],
        tuple(image.geometry.spacing),
        24,
        12,
        int(0.10 * 24**3),
        lambda v, b: (b[2] + b[5]) / 2 >= mid,
    )


HIPPO = ("001", "003", "004", "006", "007", "008", "011", "014")


def hippocampus() -> Target:
    root = SHARED / "hippocampus_mri" / "labelled"
    raws, truths = [], []
    for i in HIPPO:
        raws.append(
            np.asarray(
                read_volume(root / "images" / f"hippocampus_{i}.nii.gz").data,
                np.float32,
            )
        )
        lab = read_volume(root / "labels" / f"hippocampus_{i}.nii.gz").data
        truths.append(np.asarray(lab) > 0)
    return Target(
        "hippocampus MRI (head + body)",
        raws,
        truths,
        (1.0, 1.0, 1.0),
        10,
        2,
        int(0.2 * 10**3),
        lambda v, b: v >= 5,
        seg_volume=3,
        test_grid=(16, 4, int(0.05 * 16**3)),
        steps=1500,
    )


def grid_crops(t: Target, imgs, grid=None):
    """(volume, box, class, held back) of every present/absent crop of the
    grid ``(size, stride, min_voxels)`` (default: the target's)."""
    s, stride, least = grid or (t.size, t.stride, t.min_voxels)
    out = []
    for v, (img, obj) in enumerate(zip(imgs, t.truths)):
        amb = t.ambiguous[v] if t.ambiguous else None
        for z in range(0, img.shape[0] - s + 1, stride):
            for y in range(0, img.shape[1] - s + 1, stride):
                for x in range(0, img.shape[2] - s + 1, stride):
                    box = (z, y, x, z + s, y + s, x + s)
                    sl = (slice(z, z + s), slice(y, y + s), slice(x, x + s))
                    n = int(obj[sl].sum())
                    if 0 < n < least:
                        continue
                    if n == 0 and amb is not None and amb[sl].any():
                        continue
                    out.append((v, box, int(n > 0), t.held_back(v, box)))
    return out


def crop_of(a, box):
    return a[box[0] : box[3], box[1] : box[4], box[2] : box[5]]


def localisation(maps, masks):
    from skimage.filters import threshold_otsu

    point, energy, iou, chance = [], [], [], []
    for m, obj in zip(maps, masks):
        near = ndimage.binary_dilation(obj, iterations=1)
        point.append(bool(near.flat[int(np.argmax(m))]))
        chance.append(float(near.mean()))
        energy.append(float(m[obj].sum() / max(m.sum(), 1e-12)))
        if m.max() > m.min():
            seg = m > threshold_otsu(m)
            iou.append(float((seg & obj).sum() / max((seg | obj).sum(), 1)))
        else:
            iou.append(0.0)
    return (
        float(np.mean(point)),
        float(np.mean(energy)),
        float(np.mean(iou)),
        float(np.mean(chance)),
    )


def crop_map(model, crop, method, margin):
    x = torch.as_tensor(np.ascontiguousarray(crop))[None, None]
    if method == "cam":
        return cam(model, x, 1, padded=bool(margin))[0, 0].numpy()
    layer = "bottleneck"
    return grad_cam(model, x, layer, 1, method=method)[0, 0].numpy()


def unet_dice(img, target, truth, spacing, steps, tmp):
    cfg = TrainConfig(
        budget=Budget(steps=steps, seed=0, device="cpu"), base_filters=8
    )
    path = Path(tmp) / "u.safetensors"
    run(iter_train([img], [target], path, cfg, spacing))
    model, mconf = load_model(path)
    pred, _ = run(
        iter_predict(
            model,
            img,
            mconf.patch_size,
            mconf.normalisation,
            torch.device("cpu"),
        )
    )
    return dice_per_class(pred, truth.astype(np.uint8), 2)[0]


def evaluate(t: Target, args, tmp) -> dict:
    imgs = [normalise(r) for r in t.raws]
    crops = grid_crops(t, imgs)
    train = [c for c in crops if not c[3]]
    test = [c for c in grid_crops(t, imgs, t.test_grid) if c[3]]
    steps = args.steps if args.quick else (t.steps or args.steps)
    res = {
        "crops (train/held back)": [len(train), len(test)],
        "present (train/held back)": [
            sum(c[2] for c in train),
            sum(c[2] for c in test),
        ],
        "steps": steps,
        "classifiers": {},
    }
    print(f"\n{t.name}: {res}", flush=True)
    models = {}
    pos = [c for c in test if c[2] == 1]
    masks = [crop_of(t.truths[v], b) for v, b, _, _ in pos]
    for pooling in args.poolings:
        margin = crop_margin(pooling)
        runs: dict[str, list] = {}
        for seed in args.seeds:
            path = Path(tmp) / f"{pooling}{seed}.safetensors"
            cfg = ClassifierConfig(
                budget=Budget(
                    steps=steps, val_every=steps, seed=seed, device="cpu"
                ),
                base_filters=args.filters,
                batch_size=8,
            )
            t0 = time.perf_counter()
            run(
                iter_train_classifier(
                    [cut(imgs[v], b, margin) for v, b, _, _ in train],
                    [c for _, _, c, _ in train],
                    path,
                    cfg,
                    t.spacing,
                    pooling=pooling,
                    margin=margin,
                )
            )
            train_s = time.perf_counter() - t0
            model, _ = load_model(path)
            models.setdefault(pooling, model)
            kw = {"padded": True} if margin else {}
            with torch.no_grad():
                hits = [
                    int(
                        model(
                            torch.as_tensor(cut(imgs[v], b, margin))[
                                None, None
                            ],
                            **kw,
                        ).argmax(1)
                        == c
                    )
                    for v, b, c, _ in test
                ]
            methods = ["cam"] + (["gradcam++"] if pooling == "gap" else [])
            for method in methods:
                maps = [
                    crop_map(model, cut(imgs[v], b, margin), method, margin)
                    for v, b, _, _ in pos
                ]
                p, e, i, chance = localisation(maps, masks)
                row = {
                    "accuracy": float(np.mean(hits)),
                    "pointing": p,
                    "energy": e,
                    "IoU": i,
                    "chance": chance,
                    "train s": train_s,
                }
                runs.setdefault(f"{pooling} {method}", []).append(row)
                print(f"  {pooling} {method} seed {seed}: {row}", flush=True)
        for name, rows in runs.items():
            res["classifiers"][name] = (
                {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                | {
                    f"{k} sd": float(np.std([r[k] for r in rows]))
                    for k in ("pointing", "energy")
                }
                | {"seeds": len(rows)}
            )
    if args.no_seg:
        return res
    # image-level labels -> segmentation, on one volume
    v = t.seg_volume
    img, raw, truth = imgs[v], t.raws[v], t.truths[v]
    model = models[args.poolings[0]]
    t0 = time.perf_counter()
    m = map_volume(model, img, 1, "cam")
    res["map s/volume"] = time.perf_counter() - t0
    absent = [b for vv, b, c, _ in crops if vv == v and c == 0]
    present = [b for vv, b, c, _ in crops if vv == v and c == 1]
    outside = absent_mask(img.shape, absent) if absent else None
    sd = seeds(m, 1, 0.5, outside)
    lab = sd != 255
    res["seed coverage"] = float(lab.mean())
    res["seed Dice (labelled voxels)"] = dice_per_class(
        sd, truth.astype(np.uint8), 2, lab
    )[0]
    total = args.unet_steps * args.rounds
    res["dense U-Net"] = unet_dice(
        raw, truth.astype(np.uint8), truth, t.spacing, total, tmp
    )
    for name, rounds, crf, grow in (
        ("seed -> U-Net", 1, False, ()),
        ("seed -> expand -> constrain", args.rounds, True, present),
        ("rounds + CRF, no GWRP", args.rounds, True, ()),
    ):
        cfg = TrainConfig(
            budget=Budget(steps=total // rounds, seed=0, device="cpu"),
            base_filters=8,
        )
        labels = run(
            iter_cam_to_masks(
                raw,
                m,
                Path(tmp) / "c2s.safetensors",
                1,
                rounds,
                cfg,
                t.spacing,
                absent,
                crf=crf,
                present=grow,
            )
        )
        res[name] = dice_per_class(labels, truth.astype(np.uint8), 2)[0]
    for k in SEG:
        print(
            f"  {k}: {res[k]:.3f} = {res[k] / res['dense U-Net']:.2f} x dense",
            flush=True,
        )
    return res


TARGETS = {
    "ventricles": ventricles,
    "hippocampus": hippocampus,
    "wm": white_matter,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--unet-steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--poolings", nargs="+", default=["topk", "gap"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-seg", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.unet_steps, args.rounds = 5, 3, 2
        args.seeds = [0]
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.targets:
            t = TARGETS[key]()
            results[t.name] = evaluate(t, args, tmp)
    print(
        f"\nclassifiers {args.steps} steps; U-Nets "
        f"{args.unet_steps * args.rounds} steps; {machine()}"
    )
    print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cam.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "steps": args.steps,
                "seeds": len(args.seeds),
                "unet_steps": args.unet_steps * args.rounds,
                "results": results,
            },
            indent=1,
        )
    )
    names = [
        f"{n} / {c}" for n, r in results.items() for c in r["classifiers"]
    ]
    rows = [
        r["classifiers"][c] for r in results.values() for c in r["classifiers"]
    ]
    save_plot(
        args.out / "cam.png",
        names,
        {
            k: ([row[k] for row in rows], [0] * len(rows))
            for k in ("pointing", "energy", "IoU")
        },
        "score",
        "Localisation from image-level labels (held-back positive crops)",
    )


SEG = (
    "seed Dice (labelled voxels)",
    "seed -> U-Net",
    "seed -> expand -> constrain",
    "rounds + CRF, no GWRP",
)


from report import cam_table as table  # noqa: E402

if __name__ == "__main__":
    main()
