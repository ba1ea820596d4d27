"""Defaults shared by core, the API, the CLI and the docks (no imports).

Changing a default here changes it everywhere; the recipe values are the
ones the README's recipe ablation chose.
"""

#: label value of unlabelled voxels in sparse label volumes
IGNORE = 255
#: value of explicitly painted background in an annotation (painted)
#: layer, whose 0 means "not painted"; it becomes 0 in sparse labels
BACKGROUND_BRUSH = 255
#: training budget in optimiser steps
STEPS = 300
#: patches per step
BATCH_SIZE = 2
#: the U-Net that training builds, and pretraining pretrains by default
NETWORK = "resunet"
#: levels of the U-Net (and of the encoders that transfer into it)
DEPTH = 4
#: channels of the first U-Net level (doubling per level)
BASE_FILTERS = 16
#: boxes to masks: recursive rounds, and training steps in each
BOX_ROUNDS = 3
BOX_STEPS_PER_ROUND = 150
#: boxes to masks: share of a box's volume in its centred ellipsoid
#: core, the voxels its first targets label as its class
CORE_FRACTION = 0.2
#: CAM seeds: a map at or below this share of the threshold is
#: background; between the two, unlabelled
CAM_BAND = 0.5
#: boxes to masks: the first targets, the default first: an intensity
#: model of each box against its surroundings, or its core (Box^i)
BOX_INITIALS = ("grabcut", "box")
#: boxes to masks: an object holding less than this share of its first
#: target's object voxels is reset to that target (0: never)
MIN_FILL = 0.5
#: the pretext tasks self-supervised pretraining offers
PRETEXT_TASKS = ("rotation", "contrastive", "inpainting", "masked")
#: pretext tasks of self-supervised pretraining: inpainting was the least
#: bad on the hippocampus in both runs with the default augmentation
#: (README, real-data pretraining table; no task beat scratch by more
#: than the seeds' noise) and costs under half of all three
PRETRAIN_TASKS = ("inpainting",)
#: edge of the cubic patches of self-supervised pretraining
PRETRAIN_PATCH = 32
#: weight of the masked cross-entropy next to the masked Dice term (a
#: tenth: CE over few labelled slices, mostly background, pulls sparse
#: classes towards background; README, real-data and recipe tables)
CE_WEIGHT = 0.1
#: the same in the recursive rounds of boxes to masks and CAM to
#: segmentation (measured with it: boxes and CAM tables)
ROUND_CE_WEIGHT = 1.0
#: AdamW learning rate of U-Net training
LEARNING_RATE = 3e-3
#: volumes with more voxels are predicted block by block (streamed to
#: zarr stores, one block in memory at a time)
LARGE_VOXELS = 256**3
#: share by which sliding windows overlap when predicting (Gaussian
#: blending); quick predictions (validation during training, the slice
#: preview) overlap by less
OVERLAP = 0.5
QUICK_OVERLAP = 0.25
#: patch augmentation: "auto" plans it from the labels (mirrors only axes
#: along which no two look-alike classes are told apart by position; small
#: turns, scaling and intensity jitter where an axis is left unmirrored;
#: see :mod:`~.planner`)
AUGMENT = "auto"
#: augmentation levels, weakest first (see :mod:`~.sampling`)
AUGMENTATIONS = ("auto", "none", "flips", "affine", "full")
#: compute devices a setting may name ("auto": CUDA, then MPS, then CPU)
DEVICES = ("auto", "cpu", "cuda", "mps")
#: class activation map methods, the default first
CAM_METHODS = ("gradcam", "gradcam++", "cam")
#: CAM to segmentation: the map its seeds come from by default
CAM2SEG_METHOD = "cam"
#: classifier pooling, the default first: local evidence, top-k pooled
#: (maps that localise), or a U-Net encoder with global average pooling
POOLINGS = ("topk", "gap")
#: networks whose encoder self-supervised pretraining pretrains: what
#: training builds (:data:`NETWORK`) and what ``gap`` classifiers build
PRETRAIN_NETWORKS = ("resunet", "dynunet")
#: random seed of every run (the same seed on the same machine gives the
#: same weights)
SEED = 0

#: ``layer.metadata`` key naming what a layer is to the plugin, and its
#: values; pickers default to a layer of their role, never a reference
ROLE_KEY = "weakseg_role"
ROLE_ANNOTATION = "annotation"
ROLE_PREDICTION = "prediction"
ROLE_PROBABILITIES = "probabilities"
ROLE_REFERENCE = "reference"
ROLE_PREVIEW = "preview"
ROLE_CAM = "cam"
ROLE_SEEDS = "seeds"
ROLE_BOXES = "boxes"
#: metadata key of the image a plugin layer belongs to (its name)
IMAGE_KEY = "weakseg_image"
#: metadata key of an annotation layer's done slices (per axis)
DONE_KEY = "weakseg_done"
#: metadata key naming one of the plugin's own output layers
OUTPUT_KEY = "weakseg_output"

#: the accepted range of every numeric setting, shared by the API (checked
#: when called), the CLI (checked when parsed) and the docks:
#: name -> (type, lowest, highest, highest included)
BOUNDS: dict[str, tuple[type, float, float, bool]] = {
    "steps": (int, 1, 10**9, True),
    "steps_per_round": (int, 1, 10**9, True),
    "rounds": (int, 1, 1000, True),
    "batch_size": (int, 1, 1024, True),
    "base_filters": (int, 1, 320, True),
    "learning_rate": (float, 1e-8, 1.0, True),
    "minutes": (float, 1e-3, 1e6, True),
    "patience": (int, 1, 10**9, True),
    "ignore_label": (int, 0, 255, True),
    "seed": (int, 0, 2**32 - 1, True),
    "overlap": (float, 0.0, 1.0, False),
    "min_fill": (float, 0.0, 1.0, True),
    "core_fraction": (float, 0.0, 1.0, True),
    "class_index": (int, 0, 255, True),
    "count": (int, 1, 10**6, True),
    "block": (int, 1, 2**16, True),
    "patch": (int, 8, 512, True),
    "nproc_per_node": (int, 1, 1024, True),
}
#: patch sides are multiples of this (three halvings of the U-Net)
PATCH_MULTIPLE = 8
#: masked image modelling: side of the masked cubes (voxels) and the
#: share of cubes masked (SimMIM / MAE style, Wald et al. 2024)
MASK_CUBE = 4
MASK_RATIO = 0.6
#: unlabelled pools: volumes held in memory at once
POOL_CACHE = 8
#: semi-supervised training with unlabelled volumes (``train
#: --unlabelled``): the method and the weight of an online term.
#: Self-training (two rounds, pseudo-labels) is the one that gains on
#: the hippocampus (bench_unlabelled.py); mean teacher and online
#: pseudo-labels lost there at 300 steps
SEMI_METHODS = ("selftrain", "meanteacher", "pseudo")
SEMI_METHOD = SEMI_METHODS[0]
#: self-training: voxels of unlabelled volumes held in memory at most
SELFTRAIN_VOXELS = 64_000_000
SEMI_WEIGHT = 1.0
