"""Layer adapters: roles, picker defaults, the plugin's output layers, and
layers as the API's inputs (volumes, sparse labels, boxes).

Every layer the plugin makes carries its role (``layer.metadata``
:data:`~..core.defaults.ROLE_KEY`) and the image it belongs to, so a
picker can default to the right layer (the annotation layer of the chosen
image, never a dense reference) and an output is updated in place instead
of piling up or replacing a user's layer.
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

OUTPUT_KEY, DONE_KEY = d.OUTPUT_KEY, d.DONE_KEY


def role_of(layer: Any) -> str | None:
    """The layer's role; annotation layers of older sessions by their
    done-slice record, previews by their output name."""
    meta = getattr(layer, "metadata", {}) or {}
    if d.ROLE_KEY in meta:
        return meta[d.ROLE_KEY]
    if meta.get(OUTPUT_KEY) == "preview":
        return d.ROLE_PREVIEW
    if DONE_KEY in meta:
        return d.ROLE_ANNOTATION
    if OUTPUT_KEY in meta:
        return d.ROLE_PREDICTION
    return None


def grid_shape(layer: Any) -> tuple[int, ...] | None:
    """The voxel grid of an Image or Labels layer (of a multiscale layer:
    its finest level); None for other layers (Shapes have no grid)."""
    if type(layer).__name__ not in ("Image", "Labels"):
        return None
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(data.shape)


def mismatch(layer: Any, image: Any, what: str = "annotation") -> str:
    """One sentence when ``layer`` does not belong to ``image`` (its
    metadata names another image, or its grid differs), else ''.
    ``what`` names the kind of layer the user should pick instead."""
    if layer is None or image is None or layer is image:
        return ""
    owner = (getattr(layer, "metadata", {}) or {}).get(d.IMAGE_KEY)
    if owner is not None and owner != image.name:
        return (
            f"'{layer.name}' belongs to '{owner}', not '{image.name}'; "
            f"pick its image or another {what} layer."
        )
    mine, theirs = grid_shape(layer), grid_shape(image)
    if mine is not None and theirs is not None and mine != theirs:
        article = "an" if what[:1] in "aeiou" else "a"
        return (
            f"'{layer.name}' has shape {mine} but '{image.name}' has shape "
            f"{theirs}; pick {article} {what} layer drawn on "
            f"'{image.name}'."
        )
    return ""


def pair_mismatch(first: Any, second: Any) -> str:
    """One sentence when two label layers are not of one image (their
    metadata name different images, or their grids differ), else ''."""
    a, b = (
        (getattr(x, "metadata", {}) or {}).get(d.IMAGE_KEY)
        for x in (first, second)
    )
    if a is not None and b is not None and a != b:
        return (
            f"'{first.name}' belongs to '{a}' but '{second.name}' to "
            f"'{b}'; pick two layers of one image."
        )
    sa, sb = grid_shape(first), grid_shape(second)
    if sa is not None and sb is not None and sa != sb:
        return (
            f"'{first.name}' has shape {sa} but '{second.name}' has shape "
            f"{sb}; pick two layers on the same voxel grid."
        )
    return ""


def rank(layer: Any, role: str | None, image: Any = None) -> int:
    """Lower is a better default for a picker of ``role``.

    0: the role, naming ``image`` as its image; 1: the role (naming no
    image, or no image picked); 2: a user layer with no role (for image
    pickers: any plain image); 9: never a default (other roles,
    references, and any layer of another image or another voxel grid
    than ``image``).
    """
    if role != "image" and mismatch(layer, image):
        return 9
    own = role_of(layer)
    if role is not None and own == role:
        named = layer.metadata.get(d.IMAGE_KEY)
        return 0 if image is not None and named == image.name else 1
    if own is None and role in (None, "image", d.ROLE_BOXES):
        return 2  # plain images; any Shapes layer may hold boxes
    return 9


def best_layer(layers: Any, role: str | None, image: Any = None) -> Any:
    """The default choice among ``layers`` for ``role``, or None."""
    ranked = sorted(
        (rank(la, role, image), i, la) for i, la in enumerate(layers)
    )
    return ranked[0][2] if ranked and ranked[0][0] < 9 else None


def transform_of(like: Any) -> dict[str, Any]:
    """Scale, translate, affine and geometry metadata of ``like``, so a
    layer made from it lands on the same world coordinates."""
    from ..core.data.geometry import METADATA_KEY

    kw = {
        "scale": like.scale,
        "translate": like.translate,
        "affine": like.affine.affine_matrix,
    }
    geometry = (like.metadata or {}).get(METADATA_KEY)
    return kw | ({"metadata": {METADATA_KEY: geometry}} if geometry else {})


#: lists that every layer :func:`upsert_layer` fills is appended to (a
#: dock's scripted run records what it produced, see :mod:`.scripting`)
RECORDERS: list[list[Any]] = []


def note_produced(layer: Any) -> None:
    """Record ``layer`` as a result of the scripted run in progress."""
    for produced in RECORDERS:
        produced.append(layer)


def upsert_layer(
    viewer: Any,
    name: str,
    data: Any,
    like: Any,
    role: str,
    kind: str = "labels",
    **kw: Any,
) -> Any:
    """Update the plugin's own layer called ``name`` or add a new one.

    A user's layer is never written to; a new layer gets a unique name,
    ``like``'s transform, its role and the image it belongs to.
    """
    from ._common import unique_name

    for layer in viewer.layers:
        if layer.metadata.get(OUTPUT_KEY) == name:
            layer.data = data
            note_produced(layer)
            return layer
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    placed = transform_of(like)
    meta = placed.pop("metadata", {})
    return add(
        data,
        name=unique_name(viewer, name),
        **placed,
        metadata={
            **meta,
            OUTPUT_KEY: name,
            d.ROLE_KEY: role,
            d.IMAGE_KEY: like.name,
        },
        **kw,
    )


#: the background brush (label 255): a light, translucent grey that
#: no class colour is near (napari's default cycle makes 255 bright red)
BRUSH_COLOUR = (0.85, 0.85, 0.85, 0.35)


def annotation_colormap(hide_brush: bool = False) -> Any:
    """napari's class colours for 1..254, the brush in :data:`BRUSH_COLOUR`
    (transparent with ``hide_brush``: in 3D done slices would otherwise be
    walls hiding the volume)."""
    import numpy as np
    from napari.utils.colormaps import DirectLabelColormap, label_colormap

    cycle = label_colormap(49).map(np.arange(1, d.BACKGROUND_BRUSH))
    colours: dict = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    colours.update({k + 1: tuple(c) for k, c in enumerate(cycle)})
    colours[d.BACKGROUND_BRUSH] = (0, 0, 0, 0) if hide_brush else BRUSH_COLOUR
    return DirectLabelColormap(color_dict=colours)


#: feature columns that may name a Labels layer's classes (``index``
#: holds the label value), the first present wins
NAME_COLUMNS = ("class", "name", "label_name", "class_name")


def label_names(layer: Any) -> list[str]:
    """Names of labels 1..K that a Labels layer carries in its
    ``features`` (an ``index`` column and a :data:`NAME_COLUMNS` one),
    in label order; ``[]`` when it carries none or they leave a gap."""
    features = getattr(layer, "features", None)
    if features is None or "index" not in features:
        return []
    column = next((c for c in NAME_COLUMNS if c in features), None)
    if column is None:
        return []
    named = {
        int(i): str(n)
        for i, n in zip(features["index"], features[column])
        if int(i) > 0 and int(i) != d.BACKGROUND_BRUSH and str(n).strip()
    }
    if not named or sorted(named) != list(range(1, max(named) + 1)):
        return []
    return [named[k] for k in range(1, max(named) + 1)]


def class_colormap(count: int) -> Any:
    """Background transparent, classes 1..count-1 in the annotation
    layer's colours (a class looks the same painted and predicted)."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = dict(annotation_colormap().color_dict)
    keep = {None, *range(count)}
    return DirectLabelColormap(
        color_dict={k: v for k, v in colours.items() if k in keep}
    )


def style_classes(layer: Any, names: list[str]) -> None:
    """Name a prediction layer's classes (the status bar shows ``class:
    head`` under the cursor) and colour them."""
    import pandas as pd

    layer.features = pd.DataFrame(
        {"index": list(range(len(names))), "class": list(names)}
    )
    layer.colormap = class_colormap(len(names))
    layer.metadata["weakseg_class_names"] = list(names)


def style_annotation(layer: Any) -> None:
    """Give an annotation layer the brush colour, once."""
    if layer is None or layer.metadata.get("weakseg_styled"):
        return
    layer.colormap = annotation_colormap()
    layer.metadata["weakseg_styled"] = True


def follow_ndisplay(viewer: Any) -> None:
    """Hide the background brush of annotation layers while the viewer
    shows 3D, and show it again in 2D (connected once per viewer)."""
    dims, layers = viewer.dims, viewer.layers

    def restyle(*_: Any) -> None:
        hide = dims.ndisplay == 3
        for layer in list(layers):
            if layer.metadata.get("weakseg_styled"):
                layer.colormap = annotation_colormap(hide_brush=hide)

    dims.events.ndisplay.connect(restyle)


def follow_renames(viewer: Any) -> None:
    """Layers that name an image as theirs (annotations, predictions...)
    keep naming it when the user renames it (connected once per
    viewer): a renamed image keeps its layers in the pickers."""
    import weakref

    known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def renamed(event: Any) -> None:
        image = event.source
        old, known[image] = known.get(image), image.name
        if old is None or old == image.name:
            return
        for layer in list(viewer.layers):
            if layer.metadata.get(d.IMAGE_KEY) == old:
                layer.metadata[d.IMAGE_KEY] = image.name

    def watch(layer: Any) -> None:
        if type(layer).__name__ == "Image" and layer not in known:
            known[layer] = layer.name
            layer.events.name.connect(renamed)

    for layer in list(viewer.layers):
        watch(layer)
    viewer.layers.events.inserted.connect(lambda event: watch(event.value))


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
    listed = layer.metadata.get(DONE_KEY)
    if on_disk(layer):
        return merge_done(listed)
    return merge_done(painted_slices(np.asarray(layer.data)), listed)


def record_done(layer: Any, axis: int, index: int, done: bool) -> None:
    """List (or unlist) a done slice of a layer on disk, in its metadata
    and in its store's attributes (kept with the annotations)."""
    listed = merge_done(layer.metadata.get(DONE_KEY))
    values = set(listed[axis])
    (values.add if done else values.discard)(index)
    listed[axis] = sorted(values)
    layer.metadata[DONE_KEY] = listed
    layer.data.attrs[DONE_KEY] = {str(a): v for a, v in listed.items()}


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
