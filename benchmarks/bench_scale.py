"""Memory and throughput past one machine's memory, and DDP on CPU.

- **prediction**: a synthetic uint8 OME-Zarr of 512 x 1024 x 1024
  (z, y, x: 0.5 G voxels) and one 4x smaller (512^3),
  each predicted by ``api.predict`` into an OME-Zarr in a fresh process:
  peak RSS (VmHWM) and voxels/s.  Memory must not grow with the volume.
- **training**: 100 steps from the large store (sparse slices in a label
  store of the same size), peak RSS.
- **DDP**: the same 40-step training with 1 process and with 2 gloo
  processes (``torchrun``); patches/s and whether both ranks end with
  identical weights.

The network is small (8 base filters, 48^3 patch) and prediction uses
overlap 0.25, so the whole run fits in ~10 CPU minutes; memory depends on
block and patch size, not on these.  Results: ``results/scale.json``,
``results/scale.png``.

    .venv/bin/python benchmarks/bench_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine  # noqa: E402

MODEL = {"base_filters": 8, "patch_size": [48, 48, 48], "device": "cpu"}

CHILD = """
import json, sys, time
from napari_weakseg import api

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
what, args = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
if what == "predict":
    api.predict(args["model"], args["image"], out=args["out"],
                device="cpu", overlap=0.25)
else:
    api.train(args["image"], args["labels"], args["out"], steps=args["steps"],
              **args["model_kw"])
print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mib": hwm()}))
"""

DDP_CHILD = """
import json, os, sys, time
import numpy as np, torch
import napari_weakseg.core.train.engine as engine
from napari_weakseg import api
from napari_weakseg.core.data.phantom import make_phantom

out, steps = sys.argv[1], int(sys.argv[2])
step = engine.optimiser_step

def keep(opt, loss):
    step(opt, loss)
    flat = [p.detach().flatten() for g in opt.param_groups
            for p in g["params"]]
    np.save(f"{out}/w{os.environ.get('RANK', '0')}.npy",
            torch.cat(flat).numpy())

engine.optimiser_step = keep
image, truth = make_phantom((64, 64, 64))
sparse = np.full(truth.shape, 255, np.uint8)
sparse[32], sparse[:, 32] = truth[32], truth[:, 32]
sparse[:, :, 32] = truth[:, :, 32]
t0 = time.perf_counter()
api.train(image, sparse, f"{out}/m.safetensors", steps=steps,
          base_filters=8, patch_size=[48, 48, 48], device="cpu")
if os.environ.get("RANK", "0") == "0":
    print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def child(what: str, args: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, what, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def synthetic_store(path: Path, shape: tuple[int, int, int]) -> None:
    """Smooth blobs plus noise, written slab by slab (never whole)."""
    from napari_weakseg.core.data import ngff
    from napari_weakseg.core.data.geometry import Geometry

    base = ngff.create(path, shape, np.uint8, Geometry(), chunks=(64,) * 3)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: shape[1], : shape[2]].astype(np.float32)
    for z0 in range(0, shape[0], 64):
        z = np.arange(z0, min(shape[0], z0 + 64), dtype=np.float32)
        wave = (
            np.sin(z[:, None, None] / 23.0)
            + np.sin(y[None] / 31.0)
            + np.cos(x[None] / 17.0)
        )
        noise = rng.normal(0, 0.3, wave.shape).astype(np.float32)
        base[z0 : z0 + len(z)] = np.clip(
            (wave + noise + 3) * 40, 0, 255
        ).astype(np.uint8)
    ngff.fill_levels(path)


def label_store(path: Path, image: Path) -> None:
    """Sparse labels: 3 slices per axis, class = bright voxels."""
    import zarr

    from napari_weakseg.core.data.volumes import read_volume

    img = read_volume(image, lazy=True).data
    lbl = zarr.open(
        str(path),
        mode="w",
        shape=img.shape,
        dtype="u1",
        chunks=(64, 128, 128),
        fill_value=255,
    )
    for axis in range(3):
        for k in (1, 2, 3):
            index = img.shape[axis] * k // 4
            where = [slice(None)] * 3
            where[axis] = index
            plane = np.asarray(img[tuple(where)])
            lbl[tuple(where)] = (plane > 120).astype(np.uint8)


def ddp_arm(tmp: Path, steps: int, processes: int) -> dict:
    folder = tmp / f"ddp{processes}"
    folder.mkdir()
    script = tmp / "ddp.py"
    script.write_text(textwrap.dedent(DDP_CHILD))
    if processes == 1:
        command = [sys.executable, str(script)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run"]
        command += ["--standalone", f"--nproc-per-node={processes}"]
        command += [str(script)]
    done = subprocess.run(
        [*command, str(folder), str(steps)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    weights = [np.load(f) for f in sorted(folder.glob("w*.npy"))]
    same = all(np.array_equal(weights[0], w) for w in weights[1:])
    patches = steps * 2 * processes  # batch 2 per rank
    return {"seconds": seconds, "patches_per_s": patches / seconds,
            "identical_weights": same}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from napari_weakseg import api
    from napari_weakseg.core.data.phantom import make_phantom

    big = (256, 512, 512) if args.quick else (512, 1024, 1024)
    small = (big[0], big[1] // 2, big[2] // 2)
    steps = 10 if args.quick else 100
    results: dict = {"machine": machine(), "prediction": [], "model": MODEL}
    with tempfile.TemporaryDirectory(dir=HERE / "results") as tmp:
        tmp = Path(tmp)
        image, truth = make_phantom((64, 64, 64))
        sparse = np.full(truth.shape, 255, np.uint8)
        sparse[32] = truth[32]
        model = tmp / "m.safetensors"
        api.train(image, sparse, model, steps=2, **MODEL)
        for shape in (small, big):
            store = tmp / f"img{shape[1]}.ome.zarr"
            synthetic_store(store, shape)
            r = child(
                "predict",
                {"model": str(model), "image": str(store),
                 "out": str(tmp / f"seg{shape[1]}.ome.zarr")},
            )  # fmt: skip
            voxels = int(np.prod(shape))
            row = {"shape": list(shape), "voxels": voxels, **r,
                   "voxels_per_s": voxels / r["seconds"]}  # fmt: skip
            results["prediction"].append(row)
            print(row, flush=True)
        label_store(tmp / "lbl.zarr", store)
        results["training"] = {
            "shape": list(big),
            "steps": steps,
            **child(
                "train",
                {"image": str(store), "labels": str(tmp / "lbl.zarr"),
                 "out": str(tmp / "lazy.safetensors"), "steps": steps,
                 "model_kw": MODEL},
            ),
        }  # fmt: skip
        print(results["training"], flush=True)
        ddp_steps = 8 if args.quick else 40
        results["ddp"] = {str(n): ddp_arm(tmp, ddp_steps, n) for n in (1, 2)}
        results["ddp_steps"] = ddp_steps
        print(results["ddp"], flush=True)
    name = "scale_quick" if args.quick else "scale"
    out = HERE / "results" / f"{name}.json"
    out.write_text(json.dumps(results, indent=1))
    table(results)
    plot(results, HERE / "results" / f"{name}.png")


from report import scale_table as table  # noqa: E402


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), tight_layout=True)
    vox = [p["voxels"] / 1e6 for p in r["prediction"]]
    rss = [p["rss_mib"] for p in r["prediction"]]
    ax.plot(vox, rss, "o-", label="predict (peak RSS)")
    ax.axhline(3 * 1024, color="grey", ls="--", label="3 GB target")
    ax.axhline(r["training"]["rss_mib"], color="C1", ls=":",
               label="train 100 steps from the store")  # fmt: skip
    ax.set_xlabel("volume (M voxels)")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_ylim(0, 3.5 * 1024)
    ax.legend(fontsize=8)
    ax.set_title("memory vs volume size (bench_scale.py)", fontsize=9)
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
