"""Tooltips of every control, in one table (as micro-sam's _tooltips.py).

Keys are control attribute names; a dock-specific entry
(``"TrainWidget.steps"``) wins over a shared one (``"steps"``).
"""

from __future__ import annotations

from typing import Any

TOOLTIPS = {
    # shared
    "image": "The image layer to work on.",
    "annotations": "The annotation layer: painted classes, background "
    "brush and the slices marked done. Never the dense reference.",
    "steps": "Optimiser steps to train (each is one batch of patches).",
    "base_filters": "Channels of the first U-Net level; doubles per level. "
    "Must match a pretrained encoder's.",
    "device": "Where to compute: auto picks CUDA, then MPS, then CPU.",
    "stop_button": "Stop after the current step or window; what was "
    "learnt so far is kept.",
    "progress": "Progress of the running task.",
    "status": "What the last task did.",
    "model": "A model file (.safetensors) written by napari-weakseg.",
    "out": "Where to write the result (.safetensors).",
    "unlabelled": "Optional: a folder of unlabelled volumes of the same "
    "kind. Training then runs twice: on your labels, then on your labels "
    "plus the first model's confident labels of those volumes "
    "(self-training; twice the time).",
    # annotation
    "axis": "Slice axis the buttons and suggestions work on.",
    "new_layer": "Add an annotation layer on the image's grid (restores "
    "the autosave of this image if there is one).",
    "background": "Paint with the background brush: voxels that are "
    "surely not any class (shown in light grey). Shift+B.",
    "mark_done": "Mark the shown slice as completely annotated: its "
    "unpainted voxels are painted with the background brush. Shift+D; "
    "Ctrl+Z undoes it.",
    "unmark": "Take the background brush off the shown slice (classes "
    "stay), so it is no longer done. Ctrl+Z undoes it.",
    "suggest": "Go to the slice most worth annotating next: farthest from "
    "done slices, or where the model is least sure. Shift+N.",
    "info": "Done slices and labelled share of the annotation layer.",
    "keys": "List the keyboard shortcuts.",
    # train
    "augment": "auto: planned from the labels (mirror only axes along "
    "which no two look-alike classes are told apart by position; small "
    "turns, scaling and intensity jitter where an axis is not mirrored; "
    "hover the status to see the choice); "
    "flips: mirror patches on every axis; none: better when "
    "classes are told apart by where they lie (head vs body, left vs "
    "right); affine: no mirroring, small turns, scaling and intensity "
    "jitter (best with few slices of such classes); full: mirroring, 90° "
    "turns, intensity and noise.",
    "init": "Start from a model or a pretrained encoder file.",
    "class_names": "Names of labels 1, 2... separated by commas (head, "
    "body), stored in the model and shown on its predictions; empty: the "
    "annotation layer's own label names if it has any, else class 1, "
    "class 2...",
    "patience": "Automatic budget: end when validation has not improved "
    "for this many steps (0: off; steps stay the ceiling).",
    "every_image": "Train on every image that has an annotation layer with "
    "labels (one model for all; the chosen pair first).",
    "warm": "Continue from the model the last run produced.",
    "preview": "Predict the shown slice while training (costs time).",
    "TrainWidget.out": "Where to write the model. Left at '<image> <date "
    "time>.safetensors', each run writes a new file in that folder named "
    "after the image and the time; a file you choose is used (and "
    "overwritten) by every run.",
    "TrainWidget.start_button": "Train in the background; the viewer stays "
    "usable. Shift+T starts or stops.",
    # apply
    "tta": "Average predictions over flips along the axes the model was "
    "trained mirrored on (slower, a bit smoother).",
    "show_probabilities": "Also add one probability layer per class.",
    "apply_button": "Segment the whole image with the model. Shift+R.",
    "prediction": "The prediction layer to take corrections from.",
    "accept": "Copy the shown slice of the prediction (after your "
    "corrections) into the annotations and mark it done. Shift+K; "
    "Ctrl+Z on the annotation layer undoes it.",
    "reference": "A reference segmentation (a dense ground truth) on the "
    "prediction's grid to score the prediction against.",
    "ignore_unlabelled": "Reference voxels labelled 255 (unlabelled, as in "
    "sparse labels) count for neither side.",
    "compare": "Score the prediction against the reference: Dice, IoU, "
    "HD95 (in the reference's spacing units) and volume per class.",
    "scores": "The scores of the last Compare, one row per class.",
    "table_file": "The CSV file Save table… writes.",
    "save_table": "Score again and write the table as CSV to the table "
    "file (asked for when none is chosen).",
    # boxes
    "shapes": "A Shapes layer whose rectangles are the boxes.",
    "new_boxes": "Add a Shapes layer to draw boxes in.",
    "box_class": "Class of the next box drawn.",
    "depth": "Slices a rectangle spans in depth (a 3D box).",
    "file": "A boxes file (CSV or JSON) to load or save.",
    "load": "Load boxes from the file.",
    "save": "Save the boxes to the file.",
    "rounds": "Training rounds; each relabels the boxes from the model.",
    "BoxesWidget.steps": "Training steps per round.",
    "initial": "Initial targets: grabcut (intensity inside vs around the "
    "box) or box (a core ellipsoid).",
    "crf": "Refine each round's masks with a dense CRF.",
    "outside": "Voxels outside every box are background.",
    "wrong": "A class no covering box has is background.",
    "off_core": "Remove components that miss their box's core.",
    "min_fill": "Reset an object whose mask is smaller than this share "
    "of its initial target.",
    "BoxesWidget.start_button": "Run the rounds in the background.",
    # cam
    "layer": "The network block the map is taken from.",
    "class_index": "The class the map explains.",
    "method": "cam, gradcam or gradcam++.",
    "compute": "Compute the map in the background.",
    "opacity": "Opacity of the map overlay.",
    "to_labels": "Turn the map into seed labels for training.",
    # pretrain
    "images": "Unlabelled image layers to pretrain on.",
    "rotation": "Predict which 90° turn a patch had.",
    "contrastive": "Tell two views of a patch from other patches.",
    "inpainting": "Fill blanked cubes.",
    "masked": "Masked image modelling: rebuild the many small cubes masked "
    "out of a patch.",
    "patch": "Side of the cubic patches (a multiple of 8).",
    "PretrainWidget.start_button": "Pretrain in the background.",
}


def apply_tooltips(dock: Any) -> list[str]:
    """Set the tooltip of every control of ``dock`` the table knows."""
    done = []
    for name, widget in vars(dock).items():
        text = TOOLTIPS.get(
            f"{type(dock).__name__}.{name}", TOOLTIPS.get(name)
        )
        if text and hasattr(widget, "tooltip"):
            widget.tooltip = text
            done.append(name)
    return done
