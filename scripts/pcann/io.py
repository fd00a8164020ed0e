"""Atomic, pickle-free file output.

Every result is written to a temporary file in its destination folder and then renamed over the
destination, so a killed job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from pcann import PcannError


class OutputError(PcannError, OSError):
    """The results folder cannot be written (read-only, full, missing)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp)
    try:
        # mkstemp makes the file private (0600); a result gets the mode open() would give it
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to ``path`` atomically; object arrays are refused (they would need pickle)."""
    for name, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store strings as a str array instead")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_npz(path: str | os.PathLike, keys=None, mmap: bool = False) -> dict[str, np.ndarray]:
    """Read the arrays ``keys`` (default: every array) of an ``.npz`` file, never unpickling
    anything; the others are not read at all (the images of a large dataset are gigabytes).

    ``mmap=True`` maps numeric arrays stored uncompressed (as :func:`save_npz` writes them)
    read-only instead of reading them: jobs that share the images then share the system's page
    cache rather than each holding, and first reading, its own copy."""
    with np.load(path, allow_pickle=False) as archive:
        names = archive.files if keys is None else list(keys)
        mapped = _mapped_members(archive.zip, path, names) if mmap else {}
        return {name: mapped[name] if name in mapped else archive[name] for name in names}


def _mapped_members(archive, path, names) -> dict[str, np.ndarray]:
    """Read-only memory maps of the uncompressed, numeric members ``names`` of the npz file
    ``path``, whose ``zipfile.ZipFile`` is ``archive``."""
    import struct
    import zipfile

    mapped = {}
    with open(path, "rb") as handle:
        for name in names:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            # the member's data follows its local header, whose name and extra field lengths
            # may differ from the central directory's
            handle.seek(info.header_offset)
            local = handle.read(30)
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            handle.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                continue
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            if dtype.hasobject or dtype.kind not in "biuf" or 0 in shape:
                continue
            mapping = np.memmap(handle.name, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                                order="F" if fortran else "C")
            mapped[name] = mapping.view(np.ndarray)  # a plain array; the mapping lives as its base
    return mapped


def save_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")


def save_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV with a fixed float format, so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def _csv_cell(value) -> str:
    if isinstance(value, float) or isinstance(value, np.floating):
        return "" if math.isnan(value) else "%.10g" % value
    return str(value)


def save_columns_csv(path: str | os.PathLike, columns: dict) -> None:
    """Write equal-length columns (name -> values) as CSV, formatted as :func:`save_csv` formats a
    DataFrame (floats ``%.10g``, NaN empty), without importing pandas."""
    names = list(columns)
    rows = zip(*(columns[name] for name in names))
    text = ",".join(names) + "\n" + "".join(",".join(map(_csv_cell, row)) + "\n" for row in rows)
    save_text(path, text)


def save_records_csv(path: str | os.PathLike, columns, records) -> None:
    """Write records (mappings) as CSV with the given columns, text quoted where it needs to be
    (a reason with commas), numbers as :func:`save_columns_csv` writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_csv_cell(record[column]) for column in columns])
    save_text(path, buffer.getvalue())


def load_columns_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a numeric CSV written by :func:`save_columns_csv` (or :func:`save_csv`) back into
    float columns (empty cells become NaN), without importing pandas."""
    lines = Path(path).read_text().splitlines()
    names = lines[0].split(",")
    values = np.array(
        [[float(cell) if cell else math.nan for cell in line.split(",")] for line in lines[1:]],
        dtype=np.float64,
    ).reshape(len(lines) - 1, len(names))
    return {name: values[:, i] for i, name in enumerate(names)}
