"""Search space: presets (typed configs), slots of choices, architectures and subnet.json."""
from ..presets import Preset, get_preset, list_presets, register_preset

__all__ = ["Preset", "get_preset", "list_presets", "register_preset"]
