"""Stable identities of tf.data stages: the neutral counter, keyed by dataset kind."""

from __future__ import annotations

from typing import Any

from plumber.records.identity import StageCounter, StageKey
from plumber.tf.written import dataset_kind

__all__ = ["StageCounter", "StageKey", "stage_key"]


def stage_key(file: str, line: int, dataset_or_kind: Any) -> StageKey:
    kind = dataset_or_kind if isinstance(dataset_or_kind, str) else dataset_kind(dataset_or_kind)
    return (file, line, kind)
