"""A layer's data as the API's inputs, and edits back into layers:
volumes, sparse labels and done slices, boxes.

Annotation layers of images larger than memory are painted straight
into a store on disk (:func:`on_disk`) and are never read whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..api import Volume
from ..core.base import defaults as d
from ..core.data.boxes import Box
from ..core.data.geometry import Geometry
from ..core.data.sparse import (
    merge_done,
    painted_slices,
    sparse_view,
    to_sparse_labels,
)
from .layers import role_of


def geometry_of(layer: Any) -> Geometry:
    return Geometry.from_layer(layer.scale, layer.translate, layer.metadata)


def volume_of(layer: Any, lazy: bool = False) -> Volume:
    """A layer's data (of a multiscale layer: the finest level) and
    geometry as the API's :class:`Volume`; ``lazy`` keeps zarr and dask
    data as they are (read block by block), else it is loaded."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return Volume(data if lazy else np.asarray(data), geometry_of(layer))


def is_large(volume: Volume) -> bool:
    """Whether the API predicts ``volume`` block by block."""
    return int(np.prod(volume.data.shape, dtype=np.float64)) > d.LARGE_VOXELS


def on_disk(layer: Any) -> bool:
    """An annotation layer painted straight into a store on disk (its
    image is larger than memory): never read whole."""
    return not isinstance(layer.data, np.ndarray)


def done_of(layer: Any) -> dict[int, list[int]]:
    """Done slices of an annotation layer: those fully painted, and those
    its metadata lists (a layer of an older session; a layer on disk,
    whose slices *Mark*/*Unmark* record instead of a scan)."""
    listed = layer.metadata.get(d.DONE_KEY)
    if on_disk(layer):
        return merge_done(listed)
    return merge_done(painted_slices(np.asarray(layer.data)), listed)


def record_done(layer: Any, axis: int, index: int, done: bool) -> None:
    """List (or unlist) a done slice of a layer on disk, in its metadata
    and in its store's attributes (kept with the annotations)."""
    listed = merge_done(layer.metadata.get(d.DONE_KEY))
    values = set(listed[axis])
    (values.add if done else values.discard)(index)
    listed[axis] = sorted(values)
    layer.metadata[d.DONE_KEY] = listed
    layer.data.attrs[d.DONE_KEY] = {str(a): v for a, v in listed.items()}


def edit_slice(layer: Any, axis: int, index: int, plane: np.ndarray) -> int:
    """Write ``plane`` as slice ``index`` of ``axis`` of a Labels layer
    through napari's edit history (Ctrl+Z / Ctrl+Shift+Z undo and redo
    it); returns how many voxels changed."""
    where: list[Any] = [slice(None)] * 3
    where[axis] = index
    changed = np.nonzero(plane != np.asarray(layer.data[tuple(where)]))
    if not len(changed[0]):
        return 0
    voxels = list(changed)
    voxels.insert(axis, np.full(len(changed[0]), index))
    layer.data_setitem(tuple(voxels), plane[changed])
    layer.refresh()
    return len(changed[0])


def restore_into(layer: Any, painted: np.ndarray) -> int:
    """Put restored annotations into an (empty) layer as one edit, so
    Ctrl+Z takes the restore back; returns the voxels restored."""
    voxels = np.nonzero(painted != np.asarray(layer.data))
    if len(voxels[0]):
        layer.data_setitem(voxels, painted[voxels])
        layer.refresh()
    return len(voxels[0])


def sparse_from_layer(layer: Any) -> Any:
    """The layer's painting plus done slices as sparse training labels
    (of a layer on disk: a lazy dask array, read block by block)."""
    if on_disk(layer):
        return sparse_view(layer.data)
    return to_sparse_labels(np.asarray(layer.data), done_of(layer))


BOX_FEATURES = ("class", "depth")


def shapes_to_boxes(shapes: Any, image: Any, depth: int = 5) -> list[Box]:
    """Rectangles of a Shapes layer as voxel boxes of ``image``.

    A rectangle drawn on a slice spans that slice's plane; its extent along
    the slicing axis is the ``depth`` feature (or ``depth``) centred on the
    slice.  A shape drawn in 3D spans its own bounding box.
    """
    features = shapes.features
    boxes = []
    for i, verts in enumerate(shapes.data):
        world = np.asarray([shapes.data_to_world(v) for v in verts])
        vox = np.asarray([image.world_to_data(w) for w in world])[:, -3:]
        lo, hi = vox.min(axis=0), vox.max(axis=0)
        flat = [a for a in range(3) if np.isclose(lo[a], hi[a])]
        cls = int(features["class"][i]) if "class" in features else 1
        d = int(features["depth"][i]) if "depth" in features else depth
        start = np.floor(lo + 0.5).astype(int)
        stop = np.floor(hi + 0.5).astype(int) + 1
        for a in flat:
            start[a] = int(np.floor(lo[a] - (d - 1) / 2 + 0.5))
            stop[a] = start[a] + d
        boxes.append(Box(*start.tolist(), *stop.tolist(), cls))
    return boxes


def boxes_to_shapes_data(boxes: list[Box]) -> tuple[list[np.ndarray], dict]:
    """Rectangles on each box's middle z-slice, with class and depth."""
    data = []
    for b in boxes:
        z = (b.z0 + b.z1 - 1) / 2
        data.append(
            np.array(
                [
                    [z, b.y0, b.x0],
                    [z, b.y0, b.x1 - 1],
                    [z, b.y1 - 1, b.x1 - 1],
                    [z, b.y1 - 1, b.x0],
                ],
                float,
            )
        )
    features = {
        "class": [b.cls for b in boxes],
        "depth": [b.z1 - b.z0 for b in boxes],
    }
    return data, features


def annotated_pairs(layers: Any) -> list[tuple[Any, Any]]:
    """(image, annotation layer) for every annotation layer that names an
    image layer of the same shape and has at least one labelled voxel."""
    images = {
        layer.name: layer
        for layer in layers
        if layer.__class__.__name__ == "Image"
    }
    pairs = []
    for layer in layers:
        if role_of(layer) != d.ROLE_ANNOTATION:
            continue
        image = images.get(layer.metadata.get(d.IMAGE_KEY))
        if image is None or image.data.shape != layer.data.shape:
            continue
        if on_disk(layer):  # a painted chunk is on disk: no scan
            labelled = getattr(layer.data, "nchunks_initialized", 1) > 0
        else:
            labelled = (sparse_from_layer(layer) != d.IGNORE).any()
        if labelled:
            pairs.append((image, layer))
    return pairs
