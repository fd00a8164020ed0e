"""The image-folder loader: layouts, skipped files, and every error named in the docs."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
from conftest import make_dataset, write_image

from pcann import DataError
from pcann.data.images import load_dataset, load_saved_dataset, load_split, save_dataset
from pcann.data.demo import DEMO_CLASSES, demo_classes, generate_demo_dataset


def test_classes_are_sorted_folder_names_and_rows_follow_sorted_files(tmp_path):
    make_dataset(tmp_path, classes=("zucchini", "apple", "mango"), n_train=3, n_test=2)
    train, test = load_dataset(tmp_path)
    assert train.classes == ("apple", "mango", "zucchini")
    assert train.files[:3] == ("apple/apple_000.png", "apple/apple_001.png", "apple/apple_002.png")
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert test.y.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "mode, shape, n_features",
    [("color", (8, 8, 4), 8 * 8 * 3), ("grey", (8, 8, 4), 8 * 8), ("unchanged", (8, 8, 4), 8 * 8 * 4),
     ("color", (5, 7), 5 * 7 * 3), ("unchanged", (5, 7), 5 * 7)],
)
def test_read_modes_give_the_documented_channel_counts(tmp_path, mode, shape, n_features):
    make_dataset(tmp_path, n_train=2, n_test=1, shape=shape)
    train, test = load_dataset(tmp_path, mode=mode)
    assert train.X.shape == (6, n_features) and test.X.shape == (3, n_features)
    assert train.X.dtype == np.uint8


def test_colour_mode_drops_alpha_and_matches_cv2_imread(tmp_path):
    import cv2

    make_dataset(tmp_path, n_train=1, n_test=1)
    train = load_split(tmp_path / "Data_train")
    expected = cv2.imread(str(tmp_path / "Data_train" / "apple" / "apple_000.png"))
    np.testing.assert_array_equal(train.X[0], expected.reshape(-1))


def test_any_number_of_classes_and_image_size(tmp_path):
    make_dataset(tmp_path, classes=tuple(f"c{i}" for i in range(7)), n_train=2, n_test=1, shape=(3, 11, 3))
    train, test = load_dataset(tmp_path)
    assert len(train.classes) == 7 and train.image_shape == (3, 11, 3) and train.n_features == 99


def test_custom_folder_names(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1)
    (tmp_path / "Data_train").rename(tmp_path / "learn")
    (tmp_path / "Data_test").rename(tmp_path / "holdout")
    train, test = load_dataset(tmp_path, train_folder="learn", test_folder="holdout")
    assert len(train.y) == 6 and len(test.y) == 3


def test_non_image_files_are_skipped_with_one_warning_listing_them(tmp_path, caplog):
    make_dataset(tmp_path, n_train=2, n_test=1)
    junk = ["apple/.DS_Store", "apple/Thumbs.db", "banana/desktop.ini", "banana/notes.txt", ".DS_Store"]
    for name in junk:
        (tmp_path / "Data_train" / name).write_bytes(b"not an image")
    (tmp_path / "Data_train" / "apple" / ".hidden.png").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="pcann"):
        train = load_split(tmp_path / "Data_train")
    assert len(train.y) == 6
    warnings = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1
    for name in junk:
        assert name in warnings[0].getMessage()


def _first_train_image(root):
    return root / "Data_train" / "apple" / "apple_000.png"


def test_corrupt_image_is_named(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1)
    _first_train_image(tmp_path).write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    with pytest.raises(DataError, match=r"apple_000\.png is not a readable image"):
        load_dataset(tmp_path)


def test_truncated_png_is_named(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1, shape=(32, 32, 3))
    path = _first_train_image(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(DataError, match=r"apple_000\.png"):
        load_dataset(tmp_path)


def test_image_of_another_size_is_named_with_both_shapes(tmp_path):
    make_dataset(tmp_path, n_train=3, n_test=1)
    write_image(tmp_path / "Data_train" / "banana" / "banana_001.png", np.zeros((9, 8, 4), np.uint8))
    with pytest.raises(DataError, match=r"banana_001\.png has shape 9x8 with 3 channels .* 8x8 with 3"):
        load_dataset(tmp_path)


def test_image_with_other_channel_count_is_named_in_unchanged_mode(tmp_path):
    make_dataset(tmp_path, n_train=3, n_test=1)
    write_image(tmp_path / "Data_train" / "cherry" / "cherry_002.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"cherry_002\.png has shape 8x8 with 1 channel "):
        load_dataset(tmp_path, mode="unchanged")


def test_test_image_must_match_training_shape(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1)
    write_image(tmp_path / "Data_test" / "apple" / "apple_000.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"Data_test/apple/apple_000\.png has shape 4x4"):
        load_dataset(tmp_path)


def test_empty_class_folder_is_named(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1)
    (tmp_path / "Data_train" / "durian").mkdir()
    (tmp_path / "Data_train" / "durian" / ".DS_Store").write_bytes(b"")
    with pytest.raises(DataError, match=r"Data_train/durian contains no images"):
        load_dataset(tmp_path)


def test_test_class_missing_from_training_is_named(tmp_path):
    make_dataset(tmp_path, n_train=2, n_test=1)
    write_image(tmp_path / "Data_test" / "durian" / "d.png", np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(DataError, match=r"Data_test has class folder\(s\) durian that the training"):
        load_dataset(tmp_path)


def test_single_class_is_refused(tmp_path):
    make_dataset(tmp_path, classes=("apple",), n_train=2, n_test=1)
    with pytest.raises(DataError, match=r"1 class folder \(apple\); a classifier needs at least 2"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("missing", ["Data_train", "Data_test"])
def test_missing_split_folder_is_named(tmp_path, missing):
    make_dataset(tmp_path, n_train=2, n_test=1)
    import shutil

    shutil.rmtree(tmp_path / missing)
    with pytest.raises(DataError, match=rf"{missing} does not exist"):
        load_dataset(tmp_path)


def test_missing_data_dir_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_unknown_read_mode_is_refused(tmp_path):
    make_dataset(tmp_path, n_train=1, n_test=1)
    with pytest.raises(DataError, match=r"read mode 'rgb' is not one of color, grey, unchanged"):
        load_dataset(tmp_path, mode="rgb")


def test_saved_dataset_round_trips_without_pickle(tmp_path):
    make_dataset(tmp_path / "data", n_train=2, n_test=1)
    train, test = load_dataset(tmp_path / "data")
    save_dataset(tmp_path / "images.npz", train, test, data_label="demo")
    with np.load(tmp_path / "images.npz", allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
    train2, test2, label = load_saved_dataset(tmp_path / "images.npz")
    np.testing.assert_array_equal(train2.X, train.X)
    assert train2.classes == train.classes and test2.files == test.files and label == "demo"


def test_folder_scan_counts_what_the_loader_loads_and_fingerprints_every_change(tmp_path):
    from pcann.data.images import scan_image_folders

    root = make_dataset(tmp_path, n_train=4, n_test=2)
    (root / "Data_train" / "apple" / "notes.txt").write_text("not an image")
    (root / "Data_train" / ".hidden").mkdir()
    scan = scan_image_folders(root, ["Data_train", "Data_test"])
    train, test = load_dataset(root)
    assert scan.counts == {"Data_train": len(train.y), "Data_test": len(test.y)}
    assert scan.n_classes == len(train.classes) == 3
    assert scan.first_image == root / "Data_train" / train.files[0]

    image = root / "Data_test" / "banana" / "banana_000.png"
    fingerprints = {scan.fingerprint}
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched
    fingerprints.add(scan_image_folders(root, ["Data_train", "Data_test"]).fingerprint)
    shutil.copy(image, image.with_name("banana_999.png"))  # added
    fingerprints.add(scan_image_folders(root, ["Data_train", "Data_test"]).fingerprint)
    image.unlink()  # removed
    fingerprints.add(scan_image_folders(root, ["Data_train", "Data_test"]).fingerprint)
    assert len(fingerprints) == 4
    assert scan_image_folders(root, ["Data_train", "Data_test"]).fingerprint in fingerprints


def test_demo_dataset_is_deterministic_and_in_the_real_layout(tmp_path):
    first = generate_demo_dataset(tmp_path / "a", n_train_per_class=6, n_test_per_class=2, image_size=16)
    second = generate_demo_dataset(tmp_path / "b", n_train_per_class=6, n_test_per_class=2, image_size=16)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert len(files) == 3 * (6 + 2)
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes()
    import cv2

    image = cv2.imread(str(first / files[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (16, 16, 4)  # RGBA, like the study's files as OpenCV reads them
    train, test = load_dataset(first)
    assert train.classes == DEMO_CLASSES and len(test.y) == 6


def test_demo_dataset_of_any_class_count_and_size(tmp_path):
    root = generate_demo_dataset(tmp_path, n_train_per_class=5, n_test_per_class=2, image_size=40, n_classes=14)
    train, test = load_dataset(root)
    assert len(train.classes) == 14 and train.classes == tuple(sorted(demo_classes(14)))
    assert train.classes[:2] == ("Carambula_1", "Carambula_2") and "Lychee_5" in train.classes
    assert train.X.shape == (14 * 5, 40 * 40 * 3) and np.bincount(test.y).tolist() == [2] * 14
    # every class looks different from every other: no two have the same mean image
    means = np.stack([train.X[train.y == k].mean(axis=0) for k in range(14)])
    distances = np.abs(means[:, None] - means[None]).mean(axis=2)
    assert distances[~np.eye(14, dtype=bool)].min() > 1.0


def test_demo_dataset_regenerated_smaller_leaves_no_stale_class_or_image(tmp_path):
    generate_demo_dataset(tmp_path, n_train_per_class=6, n_test_per_class=2, image_size=16, n_classes=5)
    generate_demo_dataset(tmp_path, n_train_per_class=5, n_test_per_class=2, image_size=16)
    train, _ = load_dataset(tmp_path)
    assert train.classes == DEMO_CLASSES and len(train.y) == 15
    listed = (tmp_path / "MANIFEST.sha256").read_text().splitlines()
    assert len(listed) == sum(1 for _ in tmp_path.rglob("*.png")) == 3 * (5 + 2)


def test_demo_class_count_out_of_range_is_refused():
    with pytest.raises(ValueError, match="n_classes must be between 2 and"):
        demo_classes(1)


def test_demo_data_is_not_trivially_separable_by_two_components(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    from support import build_features

    generate_demo_dataset(tmp_path, n_train_per_class=60, n_test_per_class=20)
    train, test = load_dataset(tmp_path)
    f = build_features(train, test, protocol="train-only")
    accuracy = KNeighborsClassifier(5).fit(f.X_train, f.y_train).score(f.X_test, f.y_test)
    assert 0.45 < accuracy < 0.98  # learnable, but PCA(2) leaves classes overlapping


def test_real_dataset_shape(fruits_dir):
    train, test = load_dataset(fruits_dir)
    assert train.classes == ("Carambula", "Lychee", "Pear")
    assert train.X.shape == (1470, 3072) and test.X.shape == (498, 3072)
    assert np.bincount(train.y).tolist() == [490] * 3 and np.bincount(test.y).tolist() == [166] * 3


def test_loading_on_several_threads_equals_one_thread_and_names_the_first_bad_file(tmp_path):
    """Threads decode runs of files into their own rows: the array is the one-thread array,
    and of two unreadable files the first in folder order is the one reported."""
    make_dataset(tmp_path, n_train=40, n_test=5)
    one = load_split(tmp_path / "Data_train", threads=1)
    several = load_split(tmp_path / "Data_train", threads=3)
    np.testing.assert_array_equal(several.X, one.X)
    assert several.files == one.files
    files = [tmp_path / "Data_train" / name for name in one.files]
    for bad in (files[100], files[20]):  # in different runs of rows, the later one written first
        bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=str(files[20]).replace(".", r"\.")):
        load_split(tmp_path / "Data_train", threads=3)
