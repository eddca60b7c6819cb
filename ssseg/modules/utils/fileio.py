"""Files that appear all at once: a writer fills a temporary file beside the target, which is then renamed over it."""
import json
import os
import uuid
from typing import Any, Callable, Optional, Union

import cv2
import numpy as np


def writeatomically(path: Union[str, os.PathLike], writer: Callable[[str], Any]) -> str:
    """Create or replace ``path`` all at once: ``writer(temp_path)`` writes a temporary file beside it.

    The temporary file keeps ``path``'s extension (OpenCV picks its encoder from it), is flushed to disk
    and then renamed over ``path``. If the writer raises or returns False, the temporary file is removed,
    ``path`` is left as it was, and the error propagates.

    Args:
        path: the file to create or replace.
        writer: called with the temporary file's path; False as its result means failure.
    Returns:
        ``path`` (as a str).
    Raises:
        OSError: the writer returned False (and the writer's own errors, or those of creating the file).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    temp = os.path.join(folder, f'.{stem}.{uuid.uuid4().hex}.tmp{ext}')
    # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide permissions, as for a plain open()
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        if writer(temp) is False:
            raise OSError(f'could not write {path!r} (the writer reported failure)')
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def writebytes(path: Union[str, os.PathLike], data: bytes) -> str:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the file to create or replace.
        data: the bytes to write.
    Returns:
        ``path`` (as a str).
    """
    def writer(temp):
        with open(temp, 'wb') as file:
            file.write(data)
    return writeatomically(path, writer)


def writejson(path: Union[str, os.PathLike], data: Any, indent: Optional[int] = None) -> str:
    """Write ``data`` as JSON (UTF-8) to ``path`` atomically.

    Args:
        path: the file to create or replace.
        data: a JSON-serializable object.
        indent: ``json.dump``'s indent.
    Returns:
        ``path`` (as a str).
    """
    def writer(temp):
        with open(temp, 'w', encoding='utf-8') as file:
            json.dump(data, file, indent=indent)
    return writeatomically(path, writer)


def writeimage(path: Union[str, os.PathLike], image: np.ndarray) -> str:
    """Write an image array with OpenCV atomically (format from the extension).

    Args:
        path: the file to create or replace.
        image: an (H, W) or (H, W, 3 or 4) array in BGR(A) channel order, of a dtype the format supports (e.g.
            uint8, or uint16 for PNG).
    Returns:
        ``path`` (as a str).
    Raises:
        OSError: OpenCV could not write it.
    """
    return writeatomically(path, lambda temp: cv2.imwrite(temp, image))
