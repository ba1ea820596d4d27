"""napari-weakseg: dense 3D segmentation from very little annotation.

Importing this package loads neither Qt nor torch; the heavy parts live in
:mod:`napari_weakseg.core` (headless), :mod:`napari_weakseg.api` (one
function per widget), :mod:`napari_weakseg.cli` (``weakseg``) and
:mod:`napari_weakseg._qt` (the napari docks).
"""

__version__ = "0.1.0"
