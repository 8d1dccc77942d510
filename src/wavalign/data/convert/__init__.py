"""Converters from public speech-dialogue layouts to the template's reference schema, one module per layout
(docs/data.md has the mapping table and where each layout was read from)."""

from __future__ import annotations

from types import ModuleType

from wavalign.data.convert import emilia, instructs2s_200k, ultrachat_slam_omni, ultravoice, voiceassistant_400k

LAYOUTS: dict[str, ModuleType] = {
    m.NAME: m for m in (voiceassistant_400k, ultrachat_slam_omni, instructs2s_200k, ultravoice, emilia)
}
