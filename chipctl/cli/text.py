"""Words for people: counts with their noun in the right number."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '0 images', '3 images' ('1 mouse', '2 mice' with `nouns`)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
