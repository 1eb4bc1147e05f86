"""What every stage builds from a preset: its noise schedule, its data splits."""
from __future__ import annotations


from ..data import DataConfig, Splits, make_datasets
from ..diffusion import NoiseSchedule
from ..presets import Preset


def schedule_of(preset: Preset) -> NoiseSchedule:
    return NoiseSchedule(preset.schedule)


def splits_of(preset: Preset, data_dir: str | None, seed: int = 0, batch_size: int = 4) -> Splits:
    """Train/val/test crops at the preset's HR size (scale = hr/lr) from `data_dir` or the built-in set."""
    return make_datasets(DataConfig(data_dir=data_dir, scale=preset.hr_size // preset.lr_size, hr_crop=preset.hr_size, batch_size=batch_size, seed=seed,
                                    patches_per_image=4))

