"""What every API module shares: argument coercion and checks, and
``_blocking``, which derives ``<task>`` from ``iter_<task>``."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.base import defaults, settings
from ..core.base.errors import WeaksegError
from ..core.base.events import run
from ..core.data.validate import require_3d, require_finite, require_same_grid
from ..core.data.volumes import Volume, read_volume

PathLike = str | os.PathLike
VolumeLike = PathLike | np.ndarray | Volume

Events = Generator[Any, None, Any]


def _blocking(
    gen_fn: Callable[..., Events], progress: str | None = None
) -> Callable[..., Any]:
    """``<task>(..., callback=None)`` from ``iter_<task>``: same
    parameters, plus a callback that receives every event.  With
    ``progress``, that parameter of ``gen_fn`` receives the callback too
    (work that reports on the calling thread instead of yielding)."""

    @functools.wraps(gen_fn)
    def task(
        *args: Any,
        callback: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        if progress is not None:
            kwargs[progress] = callback or (lambda _: None)
        return run(gen_fn(*args, **kwargs), callback)

    sig = inspect.signature(gen_fn)
    params = [p for p in sig.parameters.values() if p.name != progress]
    callback = inspect.Parameter(
        "callback",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation="Callable[[Any], None] | None",
    )
    at = next(
        (i for i, p in enumerate(params) if p.name == "stop"), len(params)
    )
    task.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], callback, *params[at:]],
        return_annotation=inspect.Signature.empty,
    )
    task.__name__ = task.__qualname__ = gen_fn.__name__.removeprefix("iter_")
    task.__doc__ = (
        f"Run :func:`{gen_fn.__name__}` to the end and return its result; "
        "``callback`` receives every event.\n\n" + (gen_fn.__doc__ or "")
    )
    del task.__wrapped__  # help() shows the signature above
    return task


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Check every numeric setting of ``fn`` that has a range in
    :data:`~.core.defaults.BOUNDS` (and ``patch_size`` / ``patch``) when
    called: one sentence for a value outside it.  A generator function
    stays one (the check runs when the first event is asked for)."""
    sig = inspect.signature(fn)
    names = [
        n
        for n in sig.parameters
        if n in defaults.BOUNDS or n in ("patch_size", "patch")
    ]

    def check(args: tuple, kwargs: dict) -> None:
        bound = sig.bind(*args, **kwargs)
        settings.check(
            **{n: bound.arguments[n] for n in names if n in bound.arguments}
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Events:
            check(args, kwargs)
            return (yield from fn(*args, **kwargs))

        return gen

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return fn(*args, **kwargs)

    return plain


def as_volume(
    v: VolumeLike,
    lazy: bool = False,
    like: Volume | None = None,
    name: str = "image",
    labels: bool = False,
) -> Volume:
    """A :class:`Volume` from a path, an array-like or a Volume.

    A bare array has no geometry of its own: it takes that of ``like``
    (labels drawn on an image share its grid).  Any array-like (numpy,
    torch, zarr, dask) is one volume; a lazy one stays lazy.  ``labels``:
    a zarr store may omit the chunks that hold only background.
    """
    if isinstance(v, Volume):
        return v
    if isinstance(v, str | os.PathLike):
        return read_volume(v, lazy=lazy, allow_missing_chunks=labels)
    data = _array(v, name)
    return Volume(data) if like is None else Volume(data, like.geometry)


def _array(v: Any, name: str) -> Any:
    """``v`` as an array (lazy array-likes kept), refused in one sentence
    when it is no image: paths in a list, text, objects, empty, complex."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        v = v.detach().cpu().numpy()
    lazy = not isinstance(v, list | tuple | np.ndarray) and all(
        hasattr(v, a) for a in ("shape", "dtype", "__getitem__")
    )
    if isinstance(v, list | tuple) and any(
        isinstance(x, str | os.PathLike) for x in v
    ):
        raise WeaksegError(
            f"'{name}' is a list of {len(v)} paths; give one volume here "
            "(predict_batch segments several)."
        )
    try:
        arr = v if lazy else np.asarray(v)
        kind = np.dtype(arr.dtype).kind
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "biuf":
        what = "complex numbers" if kind == "c" else type(v).__name__
        raise WeaksegError(
            f"'{name}' is not an image of numbers ({what}); give a file "
            "path, a Volume or a 3D array."
        )
    if 0 in tuple(arr.shape):
        raise WeaksegError(f"'{name}' is empty (shape {tuple(arr.shape)}).")
    return arr


def _as_list(x: VolumeLike | Sequence[VolumeLike]) -> list[VolumeLike]:
    """A list or tuple is several volumes; anything else (a path, a
    Volume, any array-like) is one."""
    if isinstance(x, list | tuple):
        return list(x)
    return [x]


def _label(v: Any, k: int | None = None, what: str = "image") -> str:
    """How messages name an input: its file name, else ``image 2``."""
    if isinstance(v, str | os.PathLike):
        return Path(v).name
    return what if k is None else f"{what} {k}"


def _finite(vol: Volume, name: str) -> None:
    """Refuse NaN or infinite voxels, wherever they are (a lazy volume is
    read slab by slab)."""
    require_finite(vol.data, name)


def _pairs(
    images: VolumeLike | Sequence[VolumeLike],
    labels: VolumeLike | Sequence[VolumeLike],
) -> tuple[list[Volume], list[Volume]]:
    """(image, label) volumes checked to pair up on the same grids."""
    images, labels = _as_list(images), _as_list(labels)
    if len(images) != len(labels):
        raise WeaksegError(
            f"Give one label volume per image ({len(images)} images, "
            f"{len(labels)} label volumes)."
        )
    names = [_label(v, k) for k, v in enumerate(images, start=1)]
    ims = [as_volume(v, True, name=n) for v, n in zip(images, names)]
    lbs = [
        as_volume(v, True, im, _label(v, k, "labels"), labels=True)
        for k, (v, im) in enumerate(zip(labels, ims), start=1)
    ]
    for k, (im, lb) in enumerate(zip(ims, lbs), start=1):
        require_3d(im.data, names[k - 1])
        require_same_grid(
            im.shape,
            lb.shape,
            im.geometry,
            lb.geometry,
            (names[k - 1], _label(labels[k - 1], k, "labels")),
        )
        _finite(im, names[k - 1])
    return ims, lbs


def _require_sparse_labels(data: np.ndarray, name: str) -> None:
    """Refuse what is no label volume (an image given by mistake): whole
    numbers, at most :data:`MAX_CLASSES` distinct values."""
    from ..core.data.validate import require_integer_labels

    require_integer_labels(data, name)
    values = np.unique(data)
    if len(values) > MAX_CLASSES or values.min() < 0:
        raise WeaksegError(
            f"{name} holds {len(values)} distinct values from "
            f"{values.min()} to {values.max()}; it is not a label volume "
            "(0 background, 1..254 classes, 255 unlabelled)."
        )


#: more distinct values than this: an image, not a label volume
MAX_CLASSES = 64


def _class_names(given: Any) -> list[str]:
    """Names of labels 0..K for a table: a model file's (``.safetensors``
    or a bioimage.io ``.zip``), or given names of labels 1..K (the
    background's may come first); none: ``[]`` (``class 1``...)."""
    from ..core.base import classes

    if given is None:
        return []
    if isinstance(given, os.PathLike) or (
        isinstance(given, str)
        and given.lower().endswith((".safetensors", ".zip"))
    ):
        from ..core.nn.models import read_model_file

        return classes.of(read_model_file(given)[1])
    names = classes.check(given)
    if names and names[0] != classes.BACKGROUND:
        names = [classes.BACKGROUND, *names]
    return names
