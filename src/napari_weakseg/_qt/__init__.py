"""napari docks: thin widgets over :mod:`napari_weakseg.api` and the core."""
