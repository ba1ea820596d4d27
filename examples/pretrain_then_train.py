"""Pretrain on a folder of unlabelled volumes, then train from it.

Four phantoms (written to a folder, as unlabelled scans would be) teach
an encoder by self-supervision in the Pretrain dock; the Train dock then
starts from that encoder on one sparsely annotated phantom.
"""

from _shared import annotate, dock, finish, start

from napari_weakseg import api
from napari_weakseg.core.data.phantom import make_phantom

viewer, args = start(__doc__)
pool = args.out / "unlabelled"
pool.mkdir(exist_ok=True)
for seed in range(1, 5):
    image, _ = make_phantom((32, 48, 48), seed=seed)
    api.write_volume(pool / f"scan{seed}.nii.gz", api.Volume(image))

pretrain = dock(viewer, "Self-supervised pretraining")
encoder = pretrain.run(
    folder=pool,
    steps=10,
    patch=16,
    base_filters=4,
    out=args.out / "encoder.safetensors",
).path
print("encoder:", encoder)

viewer.open_sample("napari-weakseg", "phantom")
truth = viewer.layers["phantom truth"].data
annotate(viewer, "phantom", truth, (("z", 16), ("x", 24)))
train = dock(viewer, "Train (sparse slices)")
model = train.run(
    init=encoder,
    steps=10,
    base_filters=4,
    device="cpu",
    out=args.out / "from-encoder.safetensors",
)
print(f"model: {model.path} ({model.value.summary()})")
finish(viewer, args)
