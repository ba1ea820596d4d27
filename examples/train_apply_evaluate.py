"""Sparse slices -> train -> apply -> evaluate, on the phantom sample.

Three annotated slices (one per axis) train a 3D U-Net in the Train dock;
the Apply dock segments the whole volume and scores it against the
phantom's true labels.
"""

from _shared import annotate, dock, finish, start

viewer, args = start(__doc__)
viewer.open_sample("napari-weakseg", "phantom")
truth = viewer.layers["phantom truth"].data
annotate(viewer, "phantom", truth, (("z", 16), ("y", 24), ("x", 24)))

train = dock(viewer, "Train (sparse slices)")
trained = train.run(
    steps=30,
    base_filters=4,
    device="cpu",
    out=args.out / "phantom.safetensors",
)
print(f"model: {trained.path} ({trained.value.summary()})")

apply = dock(viewer, "Apply and correct")
predicted = apply.run(image="phantom", model=trained.path)
print("prediction:", [layer.name for layer in predicted.layers])
apply.run("compare", prediction=predicted.layers[0], reference="phantom truth")
print(apply["scores"].value)
finish(viewer, args)
