"""Layer adapters: roles, picker defaults, names and the plugin's output
layers, and how they look.

Every layer the plugin makes carries its role (``layer.metadata``
:data:`~..core.base.defaults.ROLE_KEY`) and the image it belongs to, so a
picker can default to the right layer (the annotation layer of the chosen
image, never a dense reference) and an output is updated in place instead
of piling up or replacing a user's layer.  A layer's data as the API's
inputs is :mod:`.layer_data`.
"""

from __future__ import annotations

from typing import Any

from ..core.base import defaults as d

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


def unique_name(viewer: Any, base: str) -> str:
    """``base``, or ``base [2]``... so no existing layer is replaced."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    k = 2
    while f"{base} [{k}]" in names:
        k += 1
    return f"{base} [{k}]"


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
