"""Defaults shared by core, the API, the CLI and the docks (no imports).

Changing a default here changes it everywhere; the recipe values are the
ones the README's recipe ablation chose.
"""

#: label value of unlabelled voxels (the background brush paints it)
IGNORE = 255
#: training budget in optimiser steps
STEPS = 300
#: patches per step
BATCH_SIZE = 2
#: channels of the first U-Net level (doubling per level)
BASE_FILTERS = 16
#: AdamW learning rate of U-Net training
LEARNING_RATE = 3e-3
