"""Super-resolution data: DIV2K-like folders or the built-in scikit-image photos."""
from .builtin import BUILTIN_IMAGES, builtin_dataset_dir
from .files import IMAGE_EXTS, list_images, load_rgb, split_files
from .images import ImageFolderSR
from .loaders import DataConfig, Splits, make_datasets, make_loaders, resolve_hr_dir

__all__ = [
    "BUILTIN_IMAGES",
    "builtin_dataset_dir",
    "IMAGE_EXTS",
    "list_images",
    "load_rgb",
    "split_files",
    "ImageFolderSR",
    "DataConfig",
    "Splits",
    "make_datasets",
    "make_loaders",
    "resolve_hr_dir",
]
