"""Atomic file writes: a reader, or a kill at any moment, sees the old file or the new one, never half of one."""

import json
import os
import tempfile


def write_text(path, text, encoding="utf-8"):
    """Writes `text` to `path` through a temporary file in the same folder, fsynced, then renamed over it."""
    write_bytes(path, text.encode(encoding))


def write_json(path, data, indent=1):
    write_text(path, json.dumps(data, indent=indent))


def write_bytes(path, data):
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    # The rename itself is durable only once the folder's entry is on disk (POSIX).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
