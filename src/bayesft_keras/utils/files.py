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


def check_writable(path, argument, folder=True):
    """Raises `ValueError` (one line, naming `argument`) unless `path` can be written; returns it.

    Meant for output paths given on a command line, checked before any work,
    so that a long run never ends on an unwritable folder. Nothing is
    created: a folder that does not exist yet is checked through its nearest
    existing parent, which must be a folder this process can create files in
    (tried with a temporary file, so that read-only mounts, permissions and
    ACLs all count).

    Args:
        path: the folder (`folder=True`) or file that will be written.
        argument: the argument's name in the message, e.g. "--dir".
        folder: whether `path` is a folder (else a file in a folder).
    """
    path = os.fspath(path)
    shown = f"{argument} {path}"
    if os.path.exists(path):
        if folder and not os.path.isdir(path):
            raise ValueError(f"Cannot write to {shown}: it exists and is not a folder.")
        if not folder and os.path.isdir(path):
            raise ValueError(f"Cannot write to {shown}: it is a folder, not a file.")
        if not folder and not os.access(path, os.W_OK):
            raise ValueError(f"Cannot write to {shown}: the file is read-only.")
    parent = path if folder else (os.path.dirname(os.path.abspath(path)) or ".")
    while not os.path.exists(parent):
        above = os.path.dirname(os.path.abspath(parent))
        if above == os.path.abspath(parent):
            break
        parent = above
    if not os.path.isdir(parent):
        raise ValueError(f"Cannot write to {shown}: {parent} is not a folder.")
    try:
        handle, probe = tempfile.mkstemp(dir=parent, prefix=".write-check.", suffix=".tmp")
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(f"Cannot write to {shown}: {reason} in {parent}.") from None
    os.close(handle)
    os.unlink(probe)
    return path
