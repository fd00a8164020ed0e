"""The embedded demo dataset: small, deterministic, fruit-like images.

A fresh clone has no data, so the workflow generates this set when no ``data_dir`` is configured.
It mimics the study's images (grey fruit on a white background, saved as RGBA PNGs) in the same
``Data_train/<Class>/*.png`` layout, and is deliberately hard enough that two principal components
do not separate the classes perfectly: sizes, positions, brightness and outlines vary and overlap.
It is NOT the study's data; everything computed from it is labelled as demo data.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from pcann.io import atomic_path

logger = logging.getLogger(__name__)

#: The study's three fruits: the demo set's classes by default, and the shapes of every class.
DEMO_CLASSES = ("Carambula", "Lychee", "Pear")
#: The most classes the generator makes (Fruits-360, the study's source, has 131).
MAX_DEMO_CLASSES = 1000


def demo_classes(n_classes: int = len(DEMO_CLASSES)) -> tuple[str, ...]:
    """Class names of a demo set: the study's three fruits, or with more (or fewer) classes,
    ``<fruit>_<variant>``: each class a fruit shape in a look of its own (tone, size)."""
    if n_classes == len(DEMO_CLASSES):
        return DEMO_CLASSES
    if not 2 <= n_classes <= MAX_DEMO_CLASSES:
        raise ValueError(f"n_classes must be between 2 and {MAX_DEMO_CLASSES}; got {n_classes}")
    width = len(str((n_classes - 1) // len(DEMO_CLASSES) + 1))
    return tuple(
        f"{DEMO_CLASSES[index % 3]}_{index // 3 + 1:0{width}d}" for index in range(n_classes)
    )


def _look(name: str) -> tuple[str, float, float]:
    """``(fruit, tone shift, size factor)`` of a class: the study's fruits keep their own look,
    and each further variant of a fruit is darker or lighter, smaller or larger."""
    kind, _, variant = name.partition("_")
    v = int(variant) - 1 if variant else 0
    if v == 0:
        return kind, 0.0, 1.0
    return kind, 9.0 * ((v * 4) % 9 - 4), 1.0 + 0.05 * ((v * 3) % 7 - 3)
DEMO_BANNER = "DEMO DATA: synthetic fruit-like images, not the study's dataset"
MANIFEST_NAME = "MANIFEST.sha256"


def _outline(kind: str, rng: np.random.Generator, size: int, size_factor: float = 1.0) -> np.ndarray:
    """Polygon of one fruit silhouette in pixel coordinates, jittered per image."""
    angles = np.linspace(0.0, 2.0 * np.pi, 200, endpoint=False)
    scale = size * rng.uniform(0.28, 0.42) * size_factor
    rotation = rng.uniform(0, 2 * np.pi)
    if kind == "Carambula":  # five-lobed star fruit
        radius = 1.0 + rng.uniform(0.15, 0.35) * np.cos(5 * (angles + rotation))
        x, y = radius * np.cos(angles), radius * np.sin(angles)
    elif kind == "Lychee":  # round, slightly bumpy
        radius = 0.85 + rng.uniform(0.0, 0.08) * np.sin(11 * angles + rotation)
        x, y = radius * np.cos(angles), radius * np.sin(angles)
    else:  # Pear: a wider bottom and a narrower top
        x, y = np.cos(angles), np.sin(angles)
        y = y * 1.25
        x = x * (0.75 + 0.35 * (y / 1.25 + 1.0) / 2.0 * rng.uniform(0.8, 1.2))
        tilt = rng.uniform(-0.5, 0.5)
        x, y = x * np.cos(tilt) - y * np.sin(tilt), x * np.sin(tilt) + y * np.cos(tilt)
    centre = size / 2 + rng.normal(0.0, size * 0.06, size=2)
    return np.stack([centre[0] + scale * x, centre[1] + scale * y], axis=1)


@lru_cache(maxsize=4)
def _diagonal(big: int) -> np.ndarray:
    """``1 - (x + y)`` over a ``big`` x ``big`` canvas, coordinates in [0, 1): the highlight."""
    yy, xx = np.mgrid[0:big, 0:big] / big
    return 1.0 - (xx + yy)


def render_fruit(name: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``size`` x ``size`` RGBA (as OpenCV's BGRA) image of a grey fruit on white, of the
    class ``name`` (see :func:`demo_classes`)."""
    import cv2

    kind, tone_shift, size_factor = _look(name)
    # draw large and shrink, for anti-aliased edges like the study's thumbnails; at least 8x
    # for the study's 32 pixels, less for large images, whose canvas would otherwise be huge
    upsample = max(1, min(8, 256 // size))
    big = size * upsample
    canvas = np.full((big, big), 255.0, dtype=np.float32)
    outline = np.round(_outline(kind, rng, size, size_factor) * upsample).astype(np.int32)
    mask = np.zeros((big, big), dtype=np.uint8)
    cv2.fillPoly(mask, [outline], 255)
    tone = {"Carambula": 150.0, "Lychee": 120.0, "Pear": 135.0}[kind] + tone_shift + rng.normal(0.0, 22.0)
    # a soft highlight makes the fruit look lit from the top left, at a random strength
    shading = tone + rng.uniform(10, 50) * _diagonal(big)
    canvas[mask > 0] = shading[mask > 0]
    grey = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    grey = np.clip(grey + rng.normal(0.0, 6.0, size=grey.shape), 0, 255).astype(np.uint8)
    alpha = np.full_like(grey, 255)
    return np.dstack([grey, grey, grey, alpha])


def generate_demo_dataset(
    out_dir: str | Path,
    n_train_per_class: int = 120,
    n_test_per_class: int = 40,
    image_size: int = 32,
    seed: int = 0,
    n_classes: int = len(DEMO_CLASSES),
    train_folder: str = "Data_train",
    test_folder: str = "Data_test",
) -> Path:
    """Write the demo dataset under ``out_dir`` (same layout as the real data); return ``out_dir``.

    ``n_classes`` classes (:func:`demo_classes`) of ``image_size`` x ``image_size`` images, so a
    set the size of Fruits-360 (131 classes, 100 x 100) is one call away. The same arguments
    always give byte-identical files. Demo images left by an earlier call with other arguments
    are removed first, and ``MANIFEST.sha256`` (written last, in the real data's format) lists
    every file, so its presence marks a complete set.
    """
    import cv2

    out_dir = Path(out_dir)
    classes = demo_classes(n_classes)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for folder in (train_folder, test_folder):
        if (out_dir / folder).is_dir():
            for class_dir in sorted(p for p in (out_dir / folder).iterdir() if p.is_dir()):
                for stale in sorted(class_dir.glob(f"{class_dir.name}_*.png")):
                    stale.unlink()
                if class_dir.name not in classes and not any(class_dir.iterdir()):
                    class_dir.rmdir()
    written = []
    for split, folder, count in (
        ("train", train_folder, n_train_per_class),
        ("test", test_folder, n_test_per_class),
    ):
        for class_index, kind in enumerate(classes):
            # one independent stream per split and class: changing a count leaves others alone
            rng = np.random.default_rng([seed, class_index, 0 if split == "train" else 1])
            class_dir = out_dir / folder / kind
            class_dir.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image = render_fruit(kind, rng, image_size)
                ok, encoded = cv2.imencode(".png", image)
                if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGRA array
                    raise RuntimeError(f"OpenCV could not encode demo image {kind} {index}")
                path = class_dir / f"{kind}_{split}_{index}.png"
                with atomic_path(path) as tmp:
                    tmp.write_bytes(encoded.tobytes())
                written.append((hashlib.sha256(encoded.tobytes()).hexdigest(), path.relative_to(out_dir)))
    manifest = "".join(f"{digest}  {path.as_posix()}\n" for digest, path in sorted(written, key=lambda w: w[1].as_posix()))
    with atomic_path(out_dir / MANIFEST_NAME) as tmp:
        tmp.write_text(manifest)
    logger.warning("%s written to %s", DEMO_BANNER, out_dir)
    return out_dir
