"""Boxes -> masks: one 3D box per object of the phantom becomes a dense
mask (GrabCut targets, then rounds of training and relabelling)."""

import numpy as np
from _shared import dock, finish, start

viewer, args = start(__doc__)
viewer.open_sample("napari-weakseg", "phantom")
truth = viewer.layers["phantom truth"].data

boxes = dock(viewer, "Boxes to masks")
layer = boxes.create_boxes_layer()  # a Shapes layer on the image's grid
for cls in (1, 2):  # a rectangle on the middle slice, 'depth' slices deep
    z, y, x = np.nonzero(truth == cls)
    mid = int(np.median(z))
    y0, y1, x0, x1 = y.min(), y.max(), x.min(), x.max()
    corners = [[mid, y0, x0], [mid, y0, x1], [mid, y1, x1], [mid, y1, x0]]
    layer.add_rectangles(np.array(corners, float))
    layer.features.loc[len(layer.data) - 1, ["class", "depth"]] = (
        cls,
        int(z.max() - z.min() + 1),
    )
masks = boxes.run(rounds=1, steps_per_round=10, initial="grabcut", crf=False)
for out in masks.layers:
    print(out.name, np.unique(np.asarray(out.data)).tolist())
finish(viewer, args)
