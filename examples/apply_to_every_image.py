"""One model applied to every image layer of the viewer.

A model trained on one phantom segments three more (other seeds); the
Apply dock is run once per image layer, by name.
"""

import napari
from _shared import annotate, dock, finish, start

from napari_weakseg.core.data.phantom import make_phantom

viewer, args = start(__doc__)
viewer.open_sample("napari-weakseg", "phantom")
truth = viewer.layers["phantom truth"].data
annotate(viewer, "phantom", truth, (("z", 16), ("y", 24), ("x", 24)))
model = (
    dock(viewer, "Train (sparse slices)")
    .run(
        steps=20, base_filters=4, device="cpu", out=args.out / "m.safetensors"
    )
    .path
)
for seed in (1, 2, 3):
    viewer.add_image(make_phantom(seed=seed)[0], name=f"scan {seed}")

apply = dock(viewer, "Apply and correct")
images = [
    layer.name
    for layer in viewer.layers
    if isinstance(layer, napari.layers.Image)
]
for name in images:
    made = apply.run(image=name, model=model)
    print(f"{name} -> {made.layers[0].name}")
finish(viewer, args)
