"""CAM overlays: where a trained model looks for each class, as image
layers over the phantom, and the map turned into seed labels."""

from _shared import annotate, dock, finish, start

viewer, args = start(__doc__)
viewer.open_sample("napari-weakseg", "phantom")
truth = viewer.layers["phantom truth"].data
annotate(viewer, "phantom", truth, (("z", 16), ("y", 24)))
train = dock(viewer, "Train (sparse slices)")
model = train.run(
    steps=10, base_filters=4, device="cpu", out=args.out / "m.safetensors"
).path

cam = dock(viewer, "CAM and pseudo-labels")
cam.update(image="phantom", model=model)  # fills the block list
for cls in (1, 2):
    made = cam.run("map", class_index=cls, method="gradcam", opacity=0.5)
    print("overlay:", made.layers[0].name)
seeds = cam.map_to_pseudo_labels()  # an annotation layer to train on
print("seeds:", seeds.name)
finish(viewer, args)
