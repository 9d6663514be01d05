"""photons records (see nanodomains.records.base for the conventions)."""

from __future__ import annotations

__all__: list[str] = []
