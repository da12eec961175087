"""Feature stores: the three layouts built in tmp_path, dims read from files, and clear errors."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from vidseek.spans import resample_features
from vidseek.trainer.data.features import (
    Hdf5Store,
    MissingVideoError,
    NpyFolderStore,
    NpzFolderStore,
    open_features,
)

h5py = pytest.importorskip("h5py", reason="h5py is part of the train extra")

RNG = np.random.default_rng(0)
VIDEOS = {"vidB": RNG.normal(size=(5, 12)), "vidA": RNG.normal(size=(9, 12)), "v_c": RNG.normal(size=(1, 12))}


def _npy_dir(tmp_path, videos=VIDEOS):
    folder = tmp_path / "npy"
    folder.mkdir()
    for vid, array in videos.items():
        np.save(folder / f"{vid}.npy", array)
    return folder


def _npz_dir(tmp_path, key="features"):
    folder = tmp_path / "npz"
    folder.mkdir(parents=True)
    for vid, array in VIDEOS.items():
        np.savez(folder / f"{vid}.npz", **{key: array})
    return folder


def _check_store(store):
    assert store.dim == 12
    assert store.vids() == sorted(VIDEOS) and len(store) == 3
    assert "vidA" in store and "nope" not in store
    for vid, array in VIDEOS.items():
        got = store[vid]
        assert got.dtype == np.float32 and got.shape == array.shape
        np.testing.assert_allclose(got, array.astype(np.float32))


def test_npy_folder(tmp_path):
    store = open_features(_npy_dir(tmp_path))
    assert isinstance(store, NpyFolderStore)
    _check_store(store)
    assert resample_features(store["vidA"], 4).shape == (4, 12)


def test_npz_folder_default_and_custom_key(tmp_path):
    store = open_features(_npz_dir(tmp_path))
    assert isinstance(store, NpzFolderStore)
    _check_store(store)
    custom = open_features(_npz_dir(tmp_path / "other", key="clip"), key="clip")
    np.testing.assert_allclose(custom["vidB"], VIDEOS["vidB"].astype(np.float32))


def test_npz_without_the_key_names_the_file(tmp_path):
    folder = _npz_dir(tmp_path, key="pooler_output")
    with pytest.raises(ValueError, match=r"/v_c\.npz: no 'features' array; it holds \['pooler_output'\]"):
        open_features(folder)


def test_hdf5_groups_and_plain_datasets(tmp_path):
    path = tmp_path / "c3d.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("vidA").create_dataset("c3d_features", data=VIDEOS["vidA"])
        f.create_dataset("vidB", data=VIDEOS["vidB"])  # a plain dataset per video
        f.create_group("v_c").create_dataset("feats", data=VIDEOS["v_c"])  # the group's only dataset
    store = open_features(path)
    assert isinstance(store, Hdf5Store)
    _check_store(store)
    clone = pickle.loads(pickle.dumps(store))  # as a DataLoader worker would receive it
    np.testing.assert_allclose(clone["vidA"], store["vidA"])
    store.close()


def test_hdf5_ambiguous_group_asks_for_key(tmp_path):
    path = tmp_path / "feats.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("vid1")
        group.create_dataset("rgb", data=np.ones((4, 3)))
        group.create_dataset("flow", data=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"feats\.h5\['vid1'\]: a group with datasets .* pass key="):
        open_features(path)
    assert open_features(path, key="flow").dim == 5
    assert open_features(path, key="rgb").dim == 3


def test_dim_is_read_from_the_files(tmp_path):
    store = open_features(_npy_dir(tmp_path, {"a": np.zeros((3, 1024)), "b": np.zeros((7, 1024))}))
    assert store.dim == 1024


def test_singleton_axes_are_squeezed(tmp_path):
    store = open_features(_npy_dir(tmp_path, {"a": np.ones((6, 1, 1, 8))}))  # I3D export shape
    assert store.dim == 8 and store["a"].shape == (6, 8)


def test_missing_video_names_id_and_folder(tmp_path):
    folder = _npy_dir(tmp_path)
    store = open_features(folder)
    with pytest.raises(KeyError) as info:
        store["ghost"]
    assert isinstance(info.value, MissingVideoError)
    message = str(info.value)
    assert "'ghost'" in message and str(folder) in message and not message.startswith('"')


def test_wrong_dimension_names_the_file(tmp_path):
    store = open_features(_npy_dir(tmp_path, {"a": np.zeros((3, 16)), "b": np.zeros((3, 15))}))
    with pytest.raises(ValueError, match=r"b\.npy: features have dimension 15 but .* \(a\) has 16"):
        store["b"]


@pytest.mark.parametrize("shape", [(10,), (3, 2, 4), (0, 8)])
def test_wrong_shape_names_the_file(tmp_path, shape):
    expected = rf"a\.npy: expected a non-empty \(T, D\) feature array, got shape {re.escape(str(shape))}"
    with pytest.raises(ValueError, match=expected):
        open_features(_npy_dir(tmp_path, {"a": np.zeros(shape)}))


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no feature folder or file"):
        open_features(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .npy or .npz files"):
        open_features(empty)
    mixed = _npy_dir(tmp_path)
    np.savez(mixed / "extra.npz", features=np.zeros((2, 12)))
    with pytest.raises(ValueError, match="holds both .npy"):
        open_features(mixed)
    text = tmp_path / "feats.txt"
    text.write_text("not features")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        open_features(text)
