"""Value checks shared by the guidance options (torch-free). Each returns None or a message."""
from __future__ import annotations

from typing import Any

MAX_COUNT = 4096  # source_samples, patch_count: sizes beyond this are typing mistakes
MAX_LAYER = 10_000


def count_check(name: str, v: Any) -> str | None:
    if v < 1:
        return f"{name} must be at least 1, got {v}"
    if v > MAX_COUNT:
        return f"{name} must be at most {MAX_COUNT}, got {v}"
    return None


def templates_check(name: str, v: Any) -> str | None:
    if v is not None:
        from ..templates import check_templates

        check_templates(v)  # raises its own one-line GuidanceError
    return None


def hidden_layers_check(name: str, v: Any) -> str | None:
    if v is not None and any(abs(i) > MAX_LAYER for i in v):
        return f"{name} must be hidden-state indices, got {v}"
    return None


def text_check(name: str, v: Any) -> str | None:
    if v is not None and not v.strip():
        return f"{name} is empty; leave it unset (null) instead"
    return None


def group_words(group: str) -> list[str]:
    return [w.strip() for w in group.split(",")]


def groups_check(what: str):
    def check(name: str, v: Any) -> str | None:
        for group in v:
            words = group_words(group)
            if len(words) < 2 or not all(words) or len(set(words)) != len(words):
                return (f"{what} lists two or more distinct alternatives, comma-separated "
                        f"(e.g. 'circle,square,triangle'), got {group!r}")
        return None
    return check
