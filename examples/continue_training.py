"""Reload an annotation from disk and continue training.

A first session annotates two slices, trains and saves the annotation
(sparse labels, 255 = unlabelled) beside the image; a second session
opens both files, annotates one more slice and trains on, starting from
the first model.
"""

import numpy as np
from _shared import annotate, dock, finish, start

from napari_weakseg import api
from napari_weakseg._qt.layer_data import sparse_from_layer, volume_of
from napari_weakseg.core.base.defaults import DONE_KEY, IMAGE_KEY, ROLE_KEY
from napari_weakseg.core.data.sparse import from_sparse_labels

viewer, args = start(__doc__)
viewer.open_sample("napari-weakseg", "phantom")
image = viewer.layers["phantom"]
truth = viewer.layers["phantom truth"].data
layer = annotate(viewer, "phantom", truth, (("z", 16), ("y", 24)))
first = dock(viewer, "Train (sparse slices)").run(
    steps=10, base_filters=4, device="cpu", out=args.out / "first.safetensors"
)
# session one ends: the image and the annotation go to disk
api.write_volume(args.out / "phantom.nii.gz", volume_of(image))
saved = api.Volume(sparse_from_layer(layer), volume_of(image).geometry)
api.write_volume(args.out / "phantom sparse.nii.gz", saved)
viewer.layers.clear()

# session two: open both files; the sparse labels become a painting
# layer again (its fully labelled slices count as done)
viewer.open(args.out / "phantom.nii.gz", plugin="napari-weakseg")
reopened = viewer.layers[-1]
sparse = api.read_volume(args.out / "phantom sparse.nii.gz").data
painted, done = from_sparse_labels(np.asarray(sparse))
viewer.add_labels(
    painted,
    name="annotations",
    scale=reopened.scale,
    translate=reopened.translate,
    metadata={
        DONE_KEY: done,
        IMAGE_KEY: reopened.name,
        ROLE_KEY: "annotation",
    },
)
print(f"reloaded: {reopened.name}, done slices {done}")
annotate_dock = dock(viewer, "Sparse slice annotation")
annotate_dock.update(image=reopened.name, annotations="annotations", axis="x")
viewer.layers["annotations"].data[:, :, 24] = truth[:, :, 24]  # one more
step = list(viewer.dims.current_step)
step[2] = 24
viewer.dims.current_step = tuple(step)
annotate_dock.mark_current_slice_done()
train = dock(viewer, "Train (sparse slices)")
second = train.run(
    image=reopened.name,
    labels="annotations",
    init=first.path,
    steps=10,
    base_filters=4,
    device="cpu",
    out=args.out / "second.safetensors",
)
print(f"continued from {first.path.name}: {second.value.summary()}")
finish(viewer, args)
