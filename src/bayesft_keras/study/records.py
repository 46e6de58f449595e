"""Per-run records: one JSON file per finished (variant, seed), read back to resume a study.

Files are written atomically (`bayesft_keras.utils.files`), so an interrupted study
never leaves a half-written record.
"""

import json
import os

from bayesft_keras.utils import files

RECORD_FORMAT = "bayesft-keras/study-run"
RECORD_VERSION = 1


def make(variant, seed, config, parameters, training, evaluation_seconds, report):
    """The record of one finished run (`report` a `DriftReport`)."""
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "component": variant.component,
        "variant": variant.name,
        "label": variant.label,
        "value": variant.value,
        "settings": variant.kwargs(),
        "seed": seed,
        "config": config,
        "parameters": int(parameters),
        "training": training,
        "evaluation_seconds": evaluation_seconds,
        "report": report.to_dict(),
    }


def save(path, record):
    """Stores `record` (or any JSON data, e.g. `study.json`) at `path`, atomically."""
    files.write_json(path, record)


def load(path, variant, seed, config):
    """A finished run's record, or None when there is none yet; raises if it is from other settings."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read the finished run {path}: {e}. Delete it to re-run it.") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path} is not a study run record; delete it or use another `out` folder.")
    stored = record.get("config", {})
    changed = [f"{key}: {stored.get(key)!r} there, {value!r} now" for key, value in config.items()
               if stored.get(key) != value]
    if record.get("settings") != variant.kwargs():
        changed.append(f"settings: {record.get('settings')!r} there, {variant.kwargs()!r} now")
    if changed:
        raise ValueError(
            f"The finished run {path} was made with other settings ({'; '.join(changed)}). "
            "Use another `out` folder, or delete that folder to start over."
        )
    if record.get("seed") != seed:
        raise ValueError(f"{path} holds seed {record.get('seed')!r}, not {seed}; delete it to re-run it.")
    return record
