"""Image-folder datasets: ``<data_dir>/<split folder>/<class>/<image>``.

The class of an image is the name of its folder. Classes are the sorted sub-folder names and the
files of a class are read in sorted order, so a dataset always loads in the same order.

Images are read with OpenCV. The default mode, ``color``, is ``cv2.imread`` with its default
flags: three channels, alpha dropped, which is what the reference study did. ``grey`` gives one
channel and ``unchanged`` keeps whatever the file stores (e.g. 4 channels for grey+alpha PNGs as
OpenCV expands them, 16-bit samples). Within one dataset every image must have the same shape.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcann import DataError

logger = logging.getLogger(__name__)

#: File suffixes OpenCV can decode that we treat as images (case-insensitive).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
)
#: Files that operating systems and tools drop into folders; skipped silently apart from a warning.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})
READ_MODES = ("color", "grey", "unchanged")


@dataclass(frozen=True)
class ImageSet:
    """One split of an image-folder dataset, flattened to one row per image."""

    X: np.ndarray  # (n_images, n_features), the decoder's dtype (uint8 for 8-bit files)
    y: np.ndarray  # (n_images,) int64 index into ``classes``
    classes: tuple[str, ...]
    files: tuple[str, ...]  # paths relative to the split folder, in row order
    image_shape: tuple[int, ...]  # (height, width) or (height, width, channels)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


def _cv2_flag(mode: str) -> int:
    import cv2

    flags = {
        "color": cv2.IMREAD_COLOR,
        "grey": cv2.IMREAD_GRAYSCALE,
        "unchanged": cv2.IMREAD_UNCHANGED,
    }
    if mode not in flags:
        raise DataError(f"read mode {mode!r} is not one of {', '.join(READ_MODES)}")
    return flags[mode]


def is_image_file(path: Path) -> bool:
    """True for a file name that the loader reads as an image (not hidden, not a system file)."""
    return is_image_name(path.name)


def is_image_name(name: str) -> bool:
    """:func:`is_image_file` for a bare file name."""
    return (
        not name.startswith(".")
        and name.lower() not in SYSTEM_FILES
        and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
    )


@dataclass(frozen=True)
class FolderScan:
    """What planning needs to know of the image folders, without reading an image."""

    counts: dict[str, int]  # split folder -> its number of images
    n_classes: int  # class folders with images in the first folder
    fingerprint: str  # of every image's path, size and modification time
    first_image: Path | None  # the first image of the first folder, for the image size


def class_folders(split_dir: str | os.PathLike) -> tuple[dict[str, list[os.DirEntry]], list[os.DirEntry]]:
    """The one listing of a split folder: ``({class: its image entries}, skipped)``, classes and
    images sorted by name; hidden folders, files beside the class folders and non-image files
    inside them are the skipped entries. Used by planning (:func:`scan_image_folders`) and
    loading (:func:`scan_split`)."""
    images: dict[str, list[os.DirEntry]] = {}
    skipped: list[os.DirEntry] = []
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            images[entry.name] = []
            for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
                (images[entry.name] if item.is_file() and is_image_name(item.name) else skipped).append(item)
        else:
            skipped.append(entry)
    return images, skipped


def files_under(folder: str | os.PathLike) -> list[Path]:
    """Every file under ``folder``, any depth, sorted; hidden files and folders left out. The one
    recursive listing, of the folders new images are classified from."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def scan_image_folders(data_dir: str | os.PathLike, folders) -> FolderScan:
    """Count the images of each split folder of ``data_dir`` (the images :func:`scan_split` finds)
    and fingerprint them: adding, removing, replacing or touching one image changes the
    fingerprint. One ``stat`` per file, so a folder of 90,000 images takes a fraction of a second.
    """
    import hashlib

    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    classes: dict[str, set] = {}
    first_image = None
    for folder in folders:
        count = 0
        classes[folder] = set()
        for name, items in class_folders(os.path.join(data_dir, folder))[0].items():
            for item in items:
                stat = item.stat()
                digest.update(f"{folder}/{name}/{item.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                count += 1
                classes[folder].add(name)
                if first_image is None:
                    first_image = Path(item.path)
        counts[folder] = count
    return FolderScan(counts, len(classes[folders[0]]) if folders else 0, digest.hexdigest(), first_image)


def scan_split(split_dir: str | os.PathLike) -> tuple[dict[str, list[Path]], list[Path]]:
    """List the image files of each class folder and the entries skipped as non-images.

    Returns ``({class: sorted image paths}, skipped)``. Errors name the folder at fault.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        what = "is not a folder" if split_dir.exists() else "does not exist"
        raise DataError(f"{split_dir} {what}; expected a folder with one sub-folder per class")
    entries, skipped_entries = class_folders(split_dir)
    images = {name: [Path(item.path) for item in items] for name, items in entries.items()}
    skipped = [Path(entry.path) for entry in skipped_entries]
    if not images:
        raise DataError(f"{split_dir} has no class sub-folders; expected <class>/<image> inside it")
    for name, files in images.items():
        if not files:
            raise DataError(
                f"class folder {split_dir / name} contains no images "
                f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
    if skipped:
        logger.warning(
            "skipped %d non-image entries in %s: %s",
            len(skipped),
            split_dir,
            ", ".join(str(p.relative_to(split_dir)) for p in skipped),
        )
    return images, skipped


def read_image(path: Path, mode: str = "color") -> np.ndarray:
    """Decode one image file; a corrupt or truncated file is a :class:`DataError` naming it."""
    import cv2

    # imdecode on the bytes we read ourselves: imread would return None for a path with
    # non-ASCII characters on some platforms, hiding the real problem.
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(raw, _cv2_flag(mode)) if raw.size else None
    if image is None:
        raise DataError(f"{path} is not a readable image (corrupt, truncated or not an image file)")
    if _is_truncated_png(path, raw):
        raise DataError(f"{path} is a truncated PNG (no IEND chunk); re-export or remove it")
    return image


def _is_truncated_png(path: Path, raw: np.ndarray) -> bool:
    # libpng decodes a PNG cut inside its last IDAT chunk with only a warning and zero-filled
    # rows; checking for the IEND trailer catches that silent corruption.
    return path.suffix.lower() == ".png" and raw[-12:].tobytes()[4:8] != b"IEND"


def _label_order(split_dir: Path, found: dict, classes: tuple[str, ...] | None) -> tuple[str, ...]:
    """The classes of a split folder in label order: its own (at least 2), or the training
    folder's ``classes``, of which it may lack some but add none."""
    if classes is None:
        classes = tuple(found)
        if len(classes) < 2:
            raise DataError(
                f"{split_dir} has {len(classes)} class folder ({', '.join(classes)}); "
                "a classifier needs at least 2 classes"
            )
        return classes
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(
            f"{split_dir} has class folder(s) {', '.join(unknown)} that the training folder "
            f"does not have (training classes: {', '.join(classes)})"
        )
    return tuple(classes)


def load_split(
    split_dir: str | os.PathLike,
    mode: str = "color",
    classes: tuple[str, ...] | None = None,
    expected_shape: tuple[int, ...] | None = None,
    threads: int = 1,
) -> ImageSet:
    """Load one split folder, decoding on ``threads`` threads.

    ``classes`` fixes the label order (the training classes when loading a test folder): a class
    folder not in it is an error. ``expected_shape`` is the image shape every file must have.
    """
    _cv2_flag(mode)  # validate the mode before touching any file
    split_dir = Path(split_dir)
    found, _ = scan_split(split_dir)
    classes = _label_order(split_dir, found, classes)
    files = [path for name in classes for path in found.get(name, [])]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(found.get(n, [])) for n in classes])
    first = read_image(files[0], mode)
    reference = "the training images have"
    if expected_shape is None:
        expected_shape, reference = first.shape, f"the first image {files[0]} has"
    # One array for the whole split, filled in place: no list of images and no stacked copy, so
    # loading needs the memory of the images once. Decoding runs on ``threads`` threads (OpenCV
    # releases the interpreter while it decodes).
    X = np.empty((len(files), first.size), dtype=first.dtype)

    def check(path: Path, image: np.ndarray) -> np.ndarray:
        if image.shape != tuple(expected_shape):
            raise DataError(
                f"{path} has shape {_describe(image.shape)} but {reference} "
                f"{_describe(expected_shape)}; all images of a dataset must share size and "
                "channel count"
            )
        if image.dtype != first.dtype:
            raise DataError(f"{path} has sample type {image.dtype}, the others {first.dtype}")
        return image.reshape(-1)

    X[0] = check(files[0], first)

    def decode(rows: range) -> None:
        for row in rows:
            X[row] = check(files[row], read_image(files[row], mode))

    # each thread decodes a run of files straight into its rows: one task per run, not per file,
    # keeps the interpreter's share of the work small
    threads = max(1, threads)
    with ThreadPoolExecutor(threads) as pool:
        tasks = [pool.submit(decode, rows) for rows in _runs(len(files), threads)]
    errors = [task.exception() for task in tasks if task.exception() is not None]
    if errors:  # the first bad file in folder order, as a one-thread load would report it
        raise errors[0]
    return ImageSet(
        X=X,
        y=labels,
        classes=tuple(classes),
        files=tuple(str(path.relative_to(split_dir)) for path in files),
        image_shape=tuple(expected_shape),
    )


def _runs(n_files: int, threads: int, per_thread: int = 16) -> list[range]:
    """Rows 1 to ``n_files - 1`` (row 0 is read first, for the shape) in about ``per_thread``
    runs per thread, so that threads finishing early pick up more."""
    size = max(1, -(-(n_files - 1) // (threads * per_thread)))
    return [range(start, min(start + size, n_files)) for start in range(1, n_files, size)]


def _describe(shape: tuple[int, ...]) -> str:
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    return f"{height}x{width} with {channels} channel{'s' if channels != 1 else ''}"


def load_dataset(
    data_dir: str | os.PathLike,
    train_folder: str = "Data_train",
    test_folder: str = "Data_test",
    mode: str = "color",
    threads: int = 1,
) -> tuple[ImageSet, ImageSet]:
    """Load the training and test folders of a dataset with one class order and image shape."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist or is not a folder")
    train = load_split(data_dir / train_folder, mode, threads=threads)
    test = load_split(
        data_dir / test_folder, mode, classes=train.classes, expected_shape=train.image_shape, threads=threads
    )
    missing = sorted(set(train.classes) - {train.classes[i] for i in np.unique(test.y)})
    if missing:
        logger.warning("test folder has no images of class(es) %s", ", ".join(missing))
    return train, test


def save_dataset(path: str | os.PathLike, train: ImageSet, test: ImageSet, data_label: str = "") -> None:
    """Write both splits to one pickle-free ``.npz`` (``data_label`` marks demo data)."""
    from pcann.io import save_npz

    save_npz(
        path,
        X_train_folder=train.X,
        y_train_folder=train.y,
        X_test=test.X,
        y_test=test.y,
        classes=np.asarray(train.classes, dtype=str),
        train_files=np.asarray(train.files, dtype=str),
        test_files=np.asarray(test.files, dtype=str),
        image_shape=np.asarray(train.image_shape, dtype=np.int64),
        data_label=np.asarray(data_label, dtype=str),
    )


#: The arrays of each split in the file :func:`save_dataset` writes.
SAVED_SPLITS = {
    "train": ("X_train_folder", "y_train_folder", "train_files"),
    "test": ("X_test", "y_test", "test_files"),
}


def load_saved_dataset(
    path: str | os.PathLike, splits=("train", "test"), mmap: bool = False
) -> tuple[ImageSet | None, ImageSet | None, str]:
    """Inverse of :func:`save_dataset`: ``(train, test, data_label)``; a split not in ``splits``
    is not read and comes back as ``None``. ``mmap=True`` maps the images read-only instead of
    reading them (see :func:`pcann.io.load_npz`)."""
    from pcann.io import load_npz

    keys = ["classes", "image_shape", "data_label"] + [k for s in splits for k in SAVED_SPLITS[s]]
    arrays = load_npz(path, keys, mmap=mmap)
    classes = tuple(str(c) for c in arrays["classes"])
    shape = tuple(int(s) for s in arrays["image_shape"])
    loaded = {
        split: ImageSet(arrays[X], arrays[y], classes, tuple(map(str, arrays[files])), shape)
        for split, (X, y, files) in SAVED_SPLITS.items()
        if split in splits
    }
    return loaded.get("train"), loaded.get("test"), str(arrays["data_label"])
