"""Property-based fuzz: any header and any model config gives a volume /
a model or one WeaksegError sentence, never another exception."""

from __future__ import annotations

import json
import struct

import numpy as np
from corpus import good
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.volumes import read_volume
from napari_weakseg.core.nn.models import CONFIG_KEY, read_model_file
from napari_weakseg.core.nn.networks import ModelConfig

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def outcome(path) -> str:
    """'ok' with a consistent volume, or 'refused' with one sentence."""
    try:
        vol = read_volume(path)
    except WeaksegError as exc:
        assert "\n" not in str(exc) and str(exc).endswith(".")
        return "refused"
    assert np.asarray(vol.data).size > 0
    return "ok"


@FUZZ
@given(
    dims=st.lists(st.integers(-5, 2**31 - 1), min_size=8, max_size=8),
    code=st.sampled_from([0, 2, 4, 8, 16, 64, 255, 32767]),
    pixdim=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        min_size=8,
        max_size=8,
    ),
    offset=st.floats(-1e9, 2.0**39, width=32),
)
def test_nifti_header_fuzz(tmp_path_factory, dims, code, pixdim, offset):
    folder = tmp_path_factory.mktemp("nii")
    head = bytearray(good(folder, "nii").read_bytes())
    struct.pack_into(
        "<8h", head, 40, *[max(-32768, min(32767, d)) for d in dims]
    )
    struct.pack_into("<h", head, 70, code)
    struct.pack_into("<8f", head, 76, *pixdim)
    struct.pack_into("<f", head, 108, offset)
    path = folder / "fuzz.nii"
    path.write_bytes(bytes(head))
    outcome(path)


@FUZZ
@given(
    ndims=st.one_of(st.integers(-3, 20), st.just(10**10), st.text(max_size=5)),
    dims=st.lists(st.integers(-2, 10**7), max_size=6),
    etype=st.sampled_from(["MET_UCHAR", "MET_FLOAT", "MET_DOUBLE", "FOO"]),
    packed=st.booleans(),
    tail=st.binary(max_size=3000),
)
def test_metaimage_header_fuzz(
    tmp_path_factory, ndims, dims, etype, packed, tail
):
    path = tmp_path_factory.mktemp("mha") / "fuzz.mha"
    text = (
        f"ObjectType = Image\nNDims = {ndims}\n"
        f"DimSize = {' '.join(map(str, dims))}\nElementType = {etype}\n"
        f"CompressedData = {packed}\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(text.encode() + tail)
    outcome(path)


@FUZZ
@given(
    dim=st.integers(-1, 12),
    sizes=st.lists(st.integers(-2, 10**6), max_size=5),
    kind=st.sampled_from(["uint8", "float", "double", "weird"]),
    encoding=st.sampled_from(["raw", "gzip", "ascii"]),
    tail=st.binary(max_size=3000),
)
def test_nrrd_header_fuzz(tmp_path_factory, dim, sizes, kind, encoding, tail):
    path = tmp_path_factory.mktemp("nrrd") / "fuzz.nrrd"
    text = (
        f"NRRD0004\ntype: {kind}\ndimension: {dim}\n"
        f"sizes: {' '.join(map(str, sizes))}\nencoding: {encoding}\n\n"
    )
    path.write_bytes(text.encode() + tail)
    outcome(path)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = list(ModelConfig.__dataclass_fields__)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3)
)
def test_model_config_fuzz(tmp_path_factory, changes):
    import torch
    from safetensors.torch import save_file

    data = {**json.loads(ModelConfig(filters=[4, 8, 16]).to_json()), **changes}
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_file(
        {"w": torch.zeros(1)},
        str(path),
        metadata={CONFIG_KEY: json.dumps(data)},
    )
    try:
        _, config = read_model_file(path)
    except WeaksegError as exc:
        assert "\n" not in str(exc)
        return
    config.check()  # whatever was accepted is a buildable config


def test_deeply_nested_and_non_object_configs(tmp_path):
    import torch
    from safetensors.torch import save_file

    for i, text in enumerate(
        [
            "[" * 100000 + "]" * 100000,
            "[1, 2]",
            "null",
            '"two"',
            '{"num_classes": "two"}',
            '{"num_classes": 1000000000}',
            '{"filters": [4, 8, 100000]}',
        ]
    ):
        path = tmp_path / f"m{i}.safetensors"
        save_file(
            {"w": torch.zeros(1)}, str(path), metadata={CONFIG_KEY: text}
        )
        try:
            read_model_file(path)
        except WeaksegError as exc:
            assert "damaged model config" in str(exc), exc
        else:
            raise AssertionError(f"accepted {text[:30]}")
