"""The bottom layer: the name registry, image geometry and the [0, 1] check. Imports nothing else of liccs but
:mod:`liccs.core.errors`."""

from liccs.core.images import check_images, check_range, crop_to, pad_to_multiple, resize_center_crop, value_bounds
from liccs.core.registry import Registry

__all__ = ["Registry", "check_images", "check_range", "crop_to", "pad_to_multiple", "resize_center_crop",
           "value_bounds"]
