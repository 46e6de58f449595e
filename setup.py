"""Kept for tools that still run `python setup.py ...`: the metadata is in pyproject.toml."""

from setuptools import setup

setup()
