"""Shared helpers of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import os
import platform
import resource
from pathlib import Path

from napari_weakseg._sample_data import sample_path
from napari_weakseg.core.data.volumes import Volume, read_volume


def read_runs(path: Path) -> dict[str, dict]:
    """The cached runs of a benchmark (a JSON line each), by key."""
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text().splitlines() if x]
    return {r["key"]: r for r in rows}


def append_run(path: Path, row: dict) -> dict:
    """Cache one run (appended as a JSON line); returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def sample_volumes() -> tuple[Volume, Volume]:
    """The shipped MNI152 T1 and its tissue labels."""
    return (
        read_volume(sample_path("mni152_t1_2mm.nii.gz")),
        read_volume(sample_path("mni152_tissue_2mm.nii.gz")),
    )


def machine() -> str:
    """One line naming the hardware the numbers came from."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores {cpu}, torch {torch.__version__} CPU"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


from report import save_plot  # noqa: E402, F401  (one copy, in report)
