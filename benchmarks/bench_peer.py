"""This product vs nnU-Net v2 on the same split, the same labels and the
same machine (issue 30): Dice per class, training voxels, CPU-seconds and
wall seconds of each.

nnU-Net is **not** a dependency of the product: ``--setup`` installs it in
an environment of its own (default ``/tmp/nnunet-venv``, or
``$WEAKSEG_PEER_VENV``) with the CPU-only torch wheel (``torch==2.13.0``;
a plain ``torch`` would pull a multi-GB CUDA build).  pip brings
torchvision along (``timm`` asks for it), but PyPI's torchvision does not
load beside the CPU-only torch; nnU-Net's default 3D U-Net never imports
it (only the Primus/EVA architectures do, through timm), so setup removes
it again, and the launcher below lets nnU-Net's trainer look-up skip the
modules that would import it.

Cases (``--cases``):

- **hippo**: 3 labelled cases (001, 003, 004) train one model, applied to
  the 34 unseen labelled cases 046-099 (``--quick``: 2 of them); labels
  ``dense`` or ``sparse`` (the middle slice of each axis per case, as
  ``bench_real.sparse(truth, "1/axis")``); Dice of head and body.
- **fibsem**: the 128 x 160 x 160 FIB-SEM crop of ``_realdata.fibsem``:
  labels on the first 80 z-slices (``dense``, or ``sparse`` = 5 % of the
  slices), Dice of boundary and interior on the last 40.

nnU-Net: the case set is written in nnU-Net's raw format (unlabelled
voxels get the ignore label, the highest label value), then
``nnUNetv2_plan_and_preprocess -c 3d_fullres``, ``nnUNetv2_train`` with a
shipped short trainer (``--trainers``; a one-split ``splits_final.json``:
all training cases, validation on the first) on ``-device cpu``
(``nnUNet_n_proc_DA=0``: augmentation in the training process;
``nnUNet_compile=f``) and ``nnUNetv2_predict --disable_tta``.  Every
nnU-Net command runs as a child process through a small launcher that
caps torch's threads at ``--threads`` (nnU-Net sets them to the core
count on CPU), and records the trainer's iterations, batch and patch;
its CPU-seconds are ``getrusage(RUSAGE_CHILDREN)`` deltas (user + sys).
Preprocessing counts as training cost.

This product: ``api.train`` with ``--steps`` (hippocampus: affine
augmentation, no mirroring, as ``bench_real``; FIB-SEM: the defaults),
then ``api.predict`` case by case; CPU-seconds are
``getrusage(SELF + CHILDREN)`` deltas around each call, with torch at
``--threads`` threads.  Training voxels are steps x batch x patch voxels
(read from the saved model) for ours and epochs x iterations x batch x
patch voxels for nnU-Net.

Every run is a row in ``results/peer_runs.jsonl`` keyed by its settings
(a rerun skips it); ``results/peer.json``, the markdown table
(printed and in ``results/peer.md``) and ``results/peer.png`` (Dice vs
training CPU-seconds, one curve per system and arm) are rebuilt from
the rows.  Runs may go side by side in separate processes (``--systems
nnunet --arms dense``, ``--systems ours``, ...: each only appends rows);
``--report`` rebuilds the outputs from all rows.

    .venv/bin/python benchmarks/bench_peer.py --setup
    .venv/bin/python benchmarks/bench_peer.py --quick
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_peer.py \\
        --cases hippo --arms dense sparse --steps 300 600 \\
        --trainers nnUNetTrainer_1epoch --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import append_run, machine, read_runs  # noqa: E402
from _realdata import SHARED, fibsem  # noqa: E402
from bench_real import hippo, sparse  # noqa: E402
from bench_unlabelled import test_ids  # noqa: E402

from napari_weakseg import api  # noqa: E402
from napari_weakseg.core.base import defaults  # noqa: E402
from napari_weakseg.core.base.device import cpu_bf16  # noqa: E402
from napari_weakseg.core.base.metrics import dice_per_class  # noqa: E402

RESULTS = HERE / "results"
RUNS = RESULTS / "peer_runs.jsonl"
VENV = Path(os.environ.get("WEAKSEG_PEER_VENV", "/tmp/nnunet-venv"))
SCRATCH = Path(
    os.environ.get(
        "WEAKSEG_PEER_SCRATCH", Path(tempfile.gettempdir()) / "weakseg_peer"
    )
)
NNUNET = "nnunetv2==2.8.1"
TORCH = "torch==2.13.0"
TRAIN = ("001", "003", "004")
IGNORE = 255
#: nnU-Net dataset ids (quick runs get their own)
DATASET_IDS = {
    ("hippo", "dense"): 901,
    ("hippo", "sparse"): 902,
    ("fibsem", "dense"): 903,
    ("fibsem", "sparse"): 904,
}
CLASSES = {"hippo": ("head", "body"), "fibsem": ("boundary", "interior")}

#: runs an nnU-Net entry point in its venv: caps torch's threads, may cut
#: the iterations per epoch (``--quick`` only) and writes what the
#: trainer trains with (epochs, iterations, batch, patch)
LAUNCHER = r"""
import json, os, sys
import torch
n = int(os.environ.get("WEAKSEG_PEER_THREADS", "0"))
if n:
    _set = torch.set_num_threads
    torch.set_num_threads = lambda k: _set(n)
    _set(n)
# nnU-Net finds a trainer by importing every module of its trainer
# package; the Primus ones import timm -> torchvision, which is not
# installed: skip modules whose import fails for want of those two
import importlib, types
import nnunetv2.utilities.find_class_by_name as _find
class _Imports:
    def import_module(self, name, *a):
        try:
            return importlib.import_module(name, *a)
        except ImportError as e:
            if (getattr(e, "name", None) or "").split(".")[0] in (
                    "torchvision", "timm"):
                return types.ModuleType(name)
            raise
_find.importlib = _Imports()
entry = sys.argv[1]
if entry == "train":
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    _init = nnUNetTrainer.__init__
    def __init__(self, *a, **k):
        _init(self, *a, **k)
        iters = os.environ.get("WEAKSEG_PEER_ITERS")
        if iters:
            self.num_iterations_per_epoch = int(iters)
            self.num_val_iterations_per_epoch = max(1, int(iters) // 5)
    nnUNetTrainer.__init__ = __init__
    _start = nnUNetTrainer.on_train_start
    def on_train_start(self):
        _start(self)
        cm = self.configuration_manager
        with open(os.environ["WEAKSEG_PEER_INFO"], "w") as fh:
            json.dump({
                "epochs": self.num_epochs,
                "iterations": self.num_iterations_per_epoch,
                "val_iterations": self.num_val_iterations_per_epoch,
                "batch": cm.batch_size,
                "patch": list(cm.patch_size),
                "spacing": list(cm.spacing),
                "threads": torch.get_num_threads(),
            }, fh)
    nnUNetTrainer.on_train_start = on_train_start
    from nnunetv2.run.run_training import run_training_entry as main
elif entry == "plan":
    from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import (
        plan_and_preprocess_entry as main)
else:
    from nnunetv2.inference.predict_from_raw_data import (
        predict_entry_point as main)
sys.argv = ["nnUNetv2_" + entry] + sys.argv[2:]
main()
"""


# ---------------------------------------------------------------- setup


def setup(venv: Path = VENV) -> None:
    """Create nnU-Net's own environment (idempotent)."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, NNUNET, TORCH], check=True)
    # torchvision (pulled in by timm) does not load beside the CPU torch;
    # nnU-Net's default network never imports it
    subprocess.run(
        [str(py), "-m", "pip", "uninstall", "-y", "-q", "torchvision"],
        check=False,
    )
    check = (
        "import torch, nnunetv2; "
        "from nnunetv2.run.run_training import run_training_entry; "
        "from nnunetv2.inference.predict_from_raw_data import "
        "predict_entry_point; print('nnU-Net', __import__('importlib')"
        ".metadata.version('nnunetv2'), 'torch', torch.__version__)"
    )
    subprocess.run([str(py), "-c", check], check=True)


def nnunet_version() -> str:
    py = VENV / "bin" / "python"
    res = subprocess.run(
        [
            str(py),
            "-c",
            "import importlib.metadata as m, torch;"
            "print(m.version('nnunetv2'), torch.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        raise SystemExit(
            f"no nnU-Net environment at {VENV}: run bench_peer.py --setup"
        )
    v, t = res.stdout.split()
    return f"nnU-Net v{v} (torch {t})"


# ---------------------------------------------------------------- cases


class Cases:
    """Training pairs and test cases of one case set, as both systems
    see them: arrays for ours, NIfTI files for nnU-Net."""

    def __init__(self, name: str, quick: bool):
        self.name = name
        self.classes = CLASSES[name]
        if name == "hippo":
            ids = test_ids()
            self.test_ids = ids[:2] if quick else ids
            self.train = hippo(TRAIN)
            self.test = hippo(self.test_ids)
            self.mask = None
        else:
            self.case = fibsem()
            self.test_ids = ["fibsem"]
            self.mask = self.case.eval_mask

    def labels(self, arm: str) -> list[np.ndarray]:
        if self.name == "hippo":
            setting = "dense" if arm == "dense" else "1/axis"
            return [sparse(t, setting) for _, t in self.train]
        return [self.case.labels(arm)]

    def images(self) -> list:
        if self.name == "hippo":
            return [v for v, _ in self.train]
        return [self.case.image]

    def truths(self) -> list[np.ndarray]:
        if self.name == "hippo":
            return [t for _, t in self.test]
        return [self.case.truth]

    def test_images(self) -> list:
        if self.name == "hippo":
            return [v for v, _ in self.test]
        return [self.case.image]

    def dice(self, preds: list[np.ndarray]) -> dict[str, float]:
        """Mean Dice per class over the test cases (FIB-SEM: boundary,
        and interior as the complement, on the held-out slices)."""
        if self.name == "hippo":
            per = [
                dice_per_class(p, t, 3) for p, t in zip(preds, self.truths())
            ]
            vals = np.nanmean(np.asarray(per, float), axis=0)
            return dict(zip(self.classes, map(float, vals)))
        p, t, m = preds[0], self.case.truth, self.mask
        return {
            "boundary": float(dice_per_class(p, t, 2, m)[0]),
            "interior": float(
                dice_per_class(
                    (p == 0).astype(np.uint8), (t == 0).astype(np.uint8), 2, m
                )[0]
            ),
        }

    def test_voxels(self) -> int:
        return int(sum(np.asarray(t).size for t in self.truths()))


def labelled_voxels(labels: list[np.ndarray]) -> int:
    return int(sum(int((lb != IGNORE).sum()) for lb in labels))


# ---------------------------------------------------------------- timing


def _usage(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Clock:
    """CPU-seconds (this process and its finished children) and wall
    seconds between start and stop."""

    def __enter__(self):
        self.cpu0 = _usage(resource.RUSAGE_SELF) + _usage(
            resource.RUSAGE_CHILDREN
        )
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = (
            _usage(resource.RUSAGE_SELF)
            + _usage(resource.RUSAGE_CHILDREN)
            - self.cpu0
        )
        self.wall = time.perf_counter() - self.wall0


# ---------------------------------------------------------------- nnU-Net


def _env(args) -> dict:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(SCRATCH / "raw"),
        nnUNet_preprocessed=str(SCRATCH / "preprocessed"),
        nnUNet_results=str(SCRATCH / "results"),
        nnUNet_n_proc_DA="0",
        nnUNet_compile="f",
        WEAKSEG_PEER_THREADS=str(args.threads),
    )
    env.pop("PYTHONPATH", None)
    iters = args.quick_iters if args.quick else getattr(args, "iters", None)
    if iters:
        env["WEAKSEG_PEER_ITERS"] = str(iters)
    return env


def nnunet(entry: str, argv: list[str], env: dict, log: Path) -> Clock:
    """One nnU-Net command in its own environment, timed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with Clock() as c, log.open("w") as fh:
        res = subprocess.run(
            [str(VENV / "bin" / "python"), "-c", LAUNCHER, entry, *argv],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if res.returncode:
        tail = "".join(log.read_text().splitlines(True)[-30:])
        raise RuntimeError(f"nnUNetv2_{entry} failed (log {log}):\n{tail}")
    return c


def _write(path: Path, arr: np.ndarray, like) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(arr))
    if isinstance(like, sitk.Image):
        img.CopyInformation(like)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)


def write_raw(cases: Cases, arm: str, did: int) -> tuple[Path, Path]:
    """The dataset in nnU-Net's raw format (ignore label = the highest),
    and the folder of test images; returns both."""
    import SimpleITK as sitk

    name = f"Dataset{did}_Weakseg{cases.name.title()}{arm.title()}"
    raw = SCRATCH / "raw" / name
    tests = SCRATCH / "tests" / cases.name
    if raw.exists():
        shutil.rmtree(raw)
    labels = cases.labels(arm)
    n_cls = len(cases.classes) + 1 if cases.name == "hippo" else 2
    ignore = n_cls  # the highest label
    names = []
    if cases.name == "hippo":
        root = SHARED / "hippocampus_mri" / "labelled"
        for i, lb in zip(TRAIN, labels):
            cid = f"hippocampus_{i}"
            src = root / "images" / f"{cid}.nii.gz"
            (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, raw / "imagesTr" / f"{cid}_0000.nii.gz")
            ref = sitk.ReadImage(str(root / "labels" / f"{cid}.nii.gz"))
            assert sitk.GetArrayFromImage(ref).shape == lb.shape
            out = np.where(lb == IGNORE, ignore, lb).astype(np.uint8)
            _write(raw / "labelsTr" / f"{cid}.nii.gz", out, ref)
            names.append(cid)
        for i in cases.test_ids:
            cid = f"hippocampus_{i}"
            dst = tests / f"{cid}_0000.nii.gz"
            if not dst.exists():
                tests.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / "images" / f"{cid}.nii.gz", dst)
        label_names = {"background": 0, "head": 1, "body": 2}
        channel = "MRI"
    else:
        img = cases.case.image
        ref = sitk.GetImageFromArray(img)
        _write(raw / "imagesTr" / "fibsem_0000.nii.gz", img, ref)
        out = np.where(labels[0] == IGNORE, ignore, labels[0])
        _write(raw / "labelsTr" / "fibsem.nii.gz", out.astype(np.uint8), ref)
        if not (tests / "fibsem_0000.nii.gz").exists():
            _write(tests / "fibsem_0000.nii.gz", img, ref)
        names.append("fibsem")
        label_names = {"background": 0, "boundary": 1}
        channel = "EM"
    label_names["ignore"] = ignore
    (raw / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": channel},
                "labels": label_names,
                "numTraining": len(names),
                "file_ending": ".nii.gz",
            },
            indent=1,
        )
    )
    return raw, tests


def run_nnunet(cases, arm, trainer, seed, args) -> dict:
    iters = None if args.quick else getattr(args, "iters", None)
    budget = trainer + (f", {iters} iterations" if iters else "")
    key = f"{cases.name} {arm} nnunet {budget} s{seed}" + (
        " quick" if args.quick else ""
    )
    if key in read_runs(RUNS):
        return read_runs(RUNS)[key]
    did = DATASET_IDS[(cases.name, arm)] + (10 if args.quick else 0)
    env = _env(args)
    env["nnUNet_results"] = str(SCRATCH / f"results_s{seed}")
    logs = SCRATCH / "logs" / key.replace(" ", "_")
    pre = SCRATCH / "preprocessed"
    pp_key = f"{cases.name} {arm} nnunet preprocess" + (
        " quick" if args.quick else ""
    )
    pp = read_runs(RUNS).get(pp_key)
    folder = next(iter(pre.glob(f"Dataset{did}_*")), None)
    if folder is not None and not (folder / "nnUNetPlans.json").exists():
        pp = None  # a plan/preprocess that was interrupted: do it again
    if pp is None or folder is None:
        raw, tests = write_raw(cases, arm, did)
        if folder is not None:
            shutil.rmtree(folder)
        c = nnunet(
            "plan",
            [
                "-d",
                str(did),
                "-c",
                "3d_fullres",
                "-np",
                "1",
                "-npfp",
                "1",
                "--verify_dataset_integrity",
            ],
            env,
            logs / "plan.log",
        )
        folder = next(pre.glob(f"Dataset{did}_*"))
        ids = sorted(
            p.name[: -len("_0000.nii.gz")]
            for p in (raw / "imagesTr").glob("*_0000.nii.gz")
        )
        (folder / "splits_final.json").write_text(
            json.dumps([{"train": ids, "val": ids[:1]}])
        )
        pp = {"key": pp_key, "cpu_s": c.cpu, "wall_s": c.wall}
        if pp_key not in read_runs(RUNS):
            append_run(RUNS, pp)
        print(f"{pp_key}: {c.cpu:.0f} CPU-s, {c.wall:.0f} s", flush=True)
    tests = SCRATCH / "tests" / cases.name
    if not tests.exists() or len(list(tests.glob("*.nii.gz"))) < len(
        cases.test_ids
    ):
        write_raw(cases, arm, did)
    info = logs / "trainer.json"
    env["WEAKSEG_PEER_INFO"] = str(info)
    out_dir = Path(env["nnUNet_results"]) / folder.name
    if out_dir.exists():
        shutil.rmtree(
            out_dir / f"{trainer}__nnUNetPlans__3d_fullres", ignore_errors=True
        )
    print(f"{key}: training ...", flush=True)
    tr = nnunet(
        "train",
        [str(did), "3d_fullres", "0", "-tr", trainer, "-device", "cpu"],
        env,
        logs / "train.log",
    )
    meta = json.loads(info.read_text())
    pred_dir = SCRATCH / "pred" / key.replace(" ", "_")
    if pred_dir.exists():
        shutil.rmtree(pred_dir)
    pr = nnunet(
        "predict",
        [
            "-i",
            str(tests),
            "-o",
            str(pred_dir),
            "-d",
            str(did),
            "-c",
            "3d_fullres",
            "-tr",
            trainer,
            "-f",
            "0",
            "-chk",
            "checkpoint_final.pth",
            "--disable_tta",
            "-device",
            "cpu",
            "-npp",
            "1",
            "-nps",
            "1",
        ],
        env,
        logs / "predict.log",
    )
    preds = [_read_pred(pred_dir, cid, cases) for cid in _case_ids(cases)]
    dice = cases.dice(preds)
    row = {
        "key": key,
        "system": "nnU-Net",
        "case": cases.name,
        "arm": arm,
        "budget": budget,
        "seed": seed,
        **dice,
        "mean": float(np.mean(list(dice.values()))),
        "train_voxels": int(
            meta["epochs"]
            * meta["iterations"]
            * meta["batch"]
            * np.prod(meta["patch"])
        ),
        "labelled_voxels": labelled_voxels(cases.labels(arm)),
        "batch": meta["batch"],
        "patch": meta["patch"],
        "iterations": meta["epochs"] * meta["iterations"],
        "threads": meta["threads"],
        "preprocess_cpu_s": pp["cpu_s"],
        "preprocess_wall_s": pp["wall_s"],
        "train_cpu_s": tr.cpu,
        "train_wall_s": tr.wall,
        "predict_cpu_s": pr.cpu,
        "predict_wall_s": pr.wall,
        "test_cases": len(cases.test_ids),
        "machine": machine(),
        "version": nnunet_version(),
    }
    _say(row)
    return append_run(RUNS, row)


def _case_ids(cases) -> list[str]:
    if cases.name == "hippo":
        return [f"hippocampus_{i}" for i in cases.test_ids]
    return ["fibsem"]


def _read_pred(folder: Path, cid: str, cases) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{cid}.nii.gz")))
    return arr.astype(np.uint8)


# ---------------------------------------------------------------- ours


def run_ours(cases, arm, steps, seed, args) -> dict:
    semi = getattr(args, "semi", None)
    # the product's defaults as they are: augmentation planned from the
    # labels, bf16 steps on a CPU that has them (rows without "recipe"
    # set the augmentation by hand to what the planner now picks, affine
    # for hippo and flips for FIB-SEM, and ran in float32)
    recipe = "planned" + (", bf16" if cpu_bf16() else "")
    key = (
        f"{cases.name} {arm} ours {steps} s{seed}"
        + (f" {semi}" if semi else "")
        + f" {recipe.replace(', ', '-')}"
        + (" quick" if args.quick else "")
    )
    if key in read_runs(RUNS):
        return read_runs(RUNS)[key]
    import torch

    torch.set_num_threads(args.threads)
    out = SCRATCH / "ours" / (key.replace(" ", "_") + ".safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    labels = cases.labels(arm)
    print(f"{key}: training ...", flush=True)
    with Clock() as tr:
        fin = api.train(
            cases.images(),
            labels if cases.name == "hippo" else labels[0],
            out,
            steps=steps,
            device="cpu",
            seed=seed,
            semi=semi,
        )
    rounds = 2 if semi == "selftrain" else 1  # teacher + student
    _, config = api.load_model(out, "cpu")
    batch = defaults.BATCH_SIZE  # api.train's default, used here
    with Clock() as pr:
        preds = [
            np.asarray(api.predict(out, v, device="cpu")[0])
            for v in cases.test_images()
        ]
    dice = cases.dice(preds)
    row = {
        "key": key,
        "system": "ours" if rounds == 1 else f"ours, {semi}",
        "case": cases.name,
        "arm": arm,
        "budget": f"{fin.steps} steps"
        if rounds == 1
        else f"{fin.steps}+{fin.steps} steps, {semi}",
        "seed": seed,
        "recipe": recipe,
        **dice,
        "mean": float(np.mean(list(dice.values()))),
        "train_voxels": int(
            rounds * fin.steps * batch * np.prod(config.patch_size)
        ),
        "labelled_voxels": labelled_voxels(labels),
        "batch": batch,
        "patch": list(config.patch_size),
        "iterations": rounds * fin.steps,
        "threads": torch.get_num_threads(),
        "preprocess_cpu_s": 0.0,
        "preprocess_wall_s": 0.0,
        "train_cpu_s": tr.cpu,
        "train_wall_s": tr.wall,
        "predict_cpu_s": pr.cpu,
        "predict_wall_s": pr.wall,
        "test_cases": len(cases.test_ids),
        "machine": machine(),
        "version": "napari-weakseg " + _our_version(),
    }
    _say(row)
    return append_run(RUNS, row)


def _our_version() -> str:
    try:
        import importlib.metadata as m

        return m.version("napari-weakseg")
    except Exception:  # noqa: BLE001
        return "dev"


def _say(r: dict) -> None:
    cls = ", ".join(f"{c} {r[c]:.3f}" for c in CLASSES[r["case"]])
    cpu = r["preprocess_cpu_s"] + r["train_cpu_s"]
    wall = r["preprocess_wall_s"] + r["train_wall_s"]
    print(
        f"{r['key']}: {cls}; train {cpu:.0f} CPU-s / {wall:.0f} s wall; "
        f"predict {r['predict_cpu_s']:.0f} CPU-s",
        flush=True,
    )


def run_tta(cases, args) -> list[dict]:
    """Test-time flips on ours' cached models of ``cases`` (seed 0 for
    hippo): mean Dice without and with, as the model file asks (a file
    without its mirrored axes flips every axis)."""
    rows = []
    seeds = "_s0_" if cases.name == "hippo" else "_s"
    for m in sorted((SCRATCH / "ours").glob(f"{cases.name}_*.safetensors")):
        if ".last." in m.name or "selftrain" in m.name or seeds not in m.name:
            continue
        _, config = api.load_model(m, "cpu")
        row = {
            "case": cases.name,
            "model": m.name,
            "mirrored": config.mirrored,
        }
        for tta in (False, True):
            preds = [
                np.asarray(api.predict(m, v, device="cpu", tta=tta)[0])
                for v in cases.test_images()
            ]
            row[f"tta={tta}"] = float(
                np.mean(list(cases.dice(preds).values()))
            )
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report


def summarise(rows: list[dict]) -> list[dict]:
    """Seeds folded: mean (and std of the mean Dice) per case, arm,
    system and budget."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["system"].startswith("ours") and "bf16" not in r.get(
            "recipe", ""
        ):
            r = {**r, "system": r["system"] + ", float32"}
        groups.setdefault(
            (r["case"], r["arm"], r["system"], r["budget"]), []
        ).append(r)
    out = []
    for (case, arm, system, budget), rs in groups.items():
        s = {
            "case": case,
            "arm": arm,
            "system": system,
            "budget": budget,
            "seeds": [r["seed"] for r in rs],
            "mean_std": float(np.std([r["mean"] for r in rs])),
        }
        for k in (
            *CLASSES[case],
            "mean",
            "train_voxels",
            "labelled_voxels",
            "iterations",
            "preprocess_cpu_s",
            "train_cpu_s",
            "train_wall_s",
            "preprocess_wall_s",
            "predict_cpu_s",
            "predict_wall_s",
        ):
            s[k] = float(np.mean([r[k] for r in rs]))
        s["batch"], s["patch"] = rs[0]["batch"], rs[0]["patch"]
        s["test_cases"] = rs[0]["test_cases"]
        s["fit_cpu_s"] = s["preprocess_cpu_s"] + s["train_cpu_s"]
        s["fit_wall_s"] = s["preprocess_wall_s"] + s["train_wall_s"]
        out.append(s)
    order = {"hippo": 0, "fibsem": 1}
    out.sort(
        key=lambda s: (
            order[s["case"]],
            s["arm"] != "dense",
            s["system"] != "nnU-Net",
            s["fit_cpu_s"],
        )
    )
    return out


def table(res: dict) -> str:
    lines = [
        f"**This product vs nnU-Net** (`bench_peer.py`; {res['machine']}; "
        f"{res['nnunet']}; both at {res['threads']} torch threads; "
        "CPU-seconds = user + sys of every process involved; training "
        "includes nnU-Net's plan/preprocess; predictions without "
        "test-time mirroring):",
        "",
        "| case | labels | system | budget | seeds | Dice (per class) | "
        "mean Dice | training voxels | labelled voxels | training CPU-s | "
        "training wall s | predict CPU-s | predict wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["summary"]:
        cls = ", ".join(f"{c} {s[c]:.3f}" for c in CLASSES[s["case"]])
        sd = f" ± {s['mean_std']:.3f}" if len(s["seeds"]) > 1 else ""
        what = (
            f"hippo 3 → {s['test_cases']}"
            if s["case"] == "hippo"
            else "FIB-SEM"
        )
        arm = {
            ("hippo", "sparse"): "1 slice/axis",
            ("fibsem", "sparse"): "5 % of slices",
        }.get((s["case"], s["arm"]), "dense")
        lines.append(
            f"| {what} | {arm} | {s['system']} | "
            f"{s['budget'].replace('nnUNetTrainer_', '')} "
            f"({s['batch']}×{'×'.join(map(str, s['patch']))}) | "
            f"{len(s['seeds'])} | {cls} | {s['mean']:.3f}{sd} | "
            f"{s['train_voxels'] / 1e6:.0f} M | "
            f"{s['labelled_voxels'] / 1e3:.0f} k | {s['fit_cpu_s']:.0f} | "
            f"{s['fit_wall_s']:.0f} | {s['predict_cpu_s']:.0f} | "
            f"{s['predict_wall_s']:.0f} |"
        )
    return "\n".join(lines)


#: the plot's x axes: Dice per training CPU-second and per voxel seen
AXES = (
    ("fit_cpu_s", "training CPU-seconds (incl. preprocessing), log"),
    ("train_voxels", "training voxels seen (patch × batch × steps), log"),
)
SYSTEMS = (
    ("nnU-Net", "C3"),
    ("ours", "C0"),
    ("ours, selftrain", "C2"),
    ("ours, float32", "C7"),
)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(s["case"] for s in res["summary"]))
    fig, axes = plt.subplots(
        len(AXES),
        len(cases),
        figsize=(5.5 * len(cases), 3.8 * len(AXES)),
        squeeze=False,
        tight_layout=True,
    )
    for row, (xkey, xlabel) in enumerate(AXES):
        for ax, case in zip(axes[row], cases):
            _plot_case(ax, res["summary"], case, xkey)
            ax.set_xlabel(xlabel)
            ax.set_xscale("log")
    fig.suptitle(res["machine"], fontsize=7)
    fig.savefig(path, dpi=110)
    print("plot written to", path)


def _plot_case(ax, summary: list[dict], case: str, xkey: str) -> None:
    for arm, ls in (("dense", "-"), ("sparse", "--")):
        for system, colour in SYSTEMS:
            pts = sorted(
                (
                    s
                    for s in summary
                    if s["case"] == case
                    and s["arm"] == arm
                    and s["system"] == system
                ),
                key=lambda s: s[xkey],
            )
            if not pts:
                continue
            ax.errorbar(
                [s[xkey] for s in pts],
                [s["mean"] for s in pts],
                yerr=[s["mean_std"] for s in pts],
                color=colour,
                ls=ls,
                marker="s" if system == "nnU-Net" else "o",
                capsize=3,
                label=f"{system}, {arm}",
            )
            for s in pts:
                ax.annotate(
                    s["budget"]
                    .replace("nnUNetTrainer_", "")
                    .replace(" steps", "")
                    .replace(", selftrain", ""),
                    (s[xkey], s["mean"]),
                    fontsize=6,
                    xytext=(4, -9),
                    textcoords="offset points",
                )
    n = next(s["test_cases"] for s in summary if s["case"] == case)
    ax.set_ylabel(
        "mean Dice, head & body"
        if case == "hippo"
        else "mean Dice, boundary & interior"
    )
    ax.set_title(
        f"hippocampus: 3 cases → {n} unseen"
        if case == "hippo"
        else "FIB-SEM: 80 z-slices → last 40",
        fontsize=9,
    )
    ax.legend(fontsize=7)


# ---------------------------------------------------------------- main


def main() -> None:
    global RUNS, SCRATCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--setup",
        action="store_true",
        help="create nnU-Net's environment and exit",
    )
    ap.add_argument(
        "--cases", nargs="+", default=["hippo"], choices=("hippo", "fibsem")
    )
    ap.add_argument(
        "--arms",
        nargs="+",
        default=["dense", "sparse"],
        choices=("dense", "sparse"),
    )
    ap.add_argument(
        "--systems",
        nargs="+",
        default=["nnunet", "ours"],
        choices=("nnunet", "ours"),
    )
    ap.add_argument("--trainers", nargs="+", default=["nnUNetTrainer_1epoch"])
    ap.add_argument(
        "--iters",
        type=int,
        default=None,
        help="nnU-Net: iterations per epoch instead of the trainer's 250 "
        "(an earlier point of its curve where an epoch costs hours)",
    )
    ap.add_argument("--steps", type=int, nargs="+", default=[300, 600])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--semi",
        choices=("selftrain",),
        default=None,
        help="ours: self-train on the unannotated voxels (teacher + student, "
        "each --steps)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads of both systems",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="2 test cases, tiny budgets: a smoke test",
    )
    ap.add_argument("--quick-iters", type=int, default=5)
    ap.add_argument(
        "--report",
        action="store_true",
        help="only rebuild table, json and plot from the rows",
    )
    ap.add_argument(
        "--tta",
        action="store_true",
        help="only measure test-time flips on ours' cached models "
        "(results/peer_tta.jsonl)",
    )
    args = ap.parse_args()
    if args.tta:
        import torch

        torch.set_num_threads(args.threads)
        rows = [r for c in args.cases for r in run_tta(Cases(c, False), args)]
        (RESULTS / "peer_tta.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
        return
    if args.setup:
        setup()
        return
    if args.quick:
        RUNS = SCRATCH / "quick" / "peer_runs.jsonl"
        SCRATCH = SCRATCH / "quick"
        args.steps = [10]
        args.trainers = ["nnUNetTrainer_1epoch"]
    if not args.report:
        if "nnunet" in args.systems:
            nnunet_version()  # fails early without the environment
        for name in args.cases:
            cases = Cases(name, args.quick)
            for arm in args.arms:
                for seed in args.seeds:
                    if "nnunet" in args.systems:
                        for trainer in args.trainers:
                            run_nnunet(cases, arm, trainer, seed, args)
                    if "ours" in args.systems:
                        for steps in args.steps:
                            run_ours(cases, arm, steps, seed, args)
    rows = [r for r in read_runs(RUNS).values() if r.get("system") is not None]
    if not rows:
        return
    res = {
        "machine": rows[0]["machine"],
        "nnunet": next(
            (r["version"] for r in rows if r["system"] == "nnU-Net"), "-"
        ),
        "threads": sorted({r["threads"] for r in rows}),
        "summary": summarise(rows),
        "runs": rows,
    }
    res["threads"] = "/".join(map(str, res["threads"]))
    text = table(res)
    print("\n" + text)
    if args.quick:
        plot(res, SCRATCH / "peer.png")
        return
    (RESULTS / "peer.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "peer.md").write_text(text + "\n")
    plot(res, RESULTS / "peer.png")


if __name__ == "__main__":
    main()
