"""Headless core: numpy, torch, MONAI and SimpleITK only, never a GUI."""
