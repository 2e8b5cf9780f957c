"""The bottom layer: the registry, image geometry and the one [0, 1] check every consumer uses."""

import math

import pytest
import torch

from liccs.core import Registry, check_images, check_range, crop_to, pad_to_multiple, resize_center_crop
from liccs.core.errors import DuplicateNameError, InputError, UnknownNameError


def test_registry_lists_the_valid_names_and_refuses_duplicates():
    r: Registry[int] = Registry("thing")
    r.register("a", 1)
    r.register("b", 2)
    assert r.names() == ["a", "b"] and "a" in r and len(r) == 2 and r.get("b") == 2
    with pytest.raises(DuplicateNameError):
        r.register("a", 3)
    with pytest.raises(UnknownNameError, match="a, b"):
        r.get("c")


@pytest.mark.parametrize("bad, what", [
    (torch.full((1, 3, 4, 4), 1.01), "max 1.01"),
    (torch.full((1, 3, 4, 4), -0.5), "min -0.5"),
    (torch.full((1, 3, 4, 4), math.nan), "NaN"),
])
def test_check_images_names_the_tensor_and_the_values(bad, what):
    with pytest.raises(InputError, match="my images must lie in \\[0, 1\\]") as e:
        check_images(bad, "my images")
    assert what in str(e.value)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4).double(),
                                 torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "not a tensor"])
def test_check_images_refuses_other_shapes_and_dtypes(bad):
    with pytest.raises(InputError, match="float32 tensor \\[B, 3, H, W\\]"):
        check_images(bad)


def test_check_images_accepts_the_bounds_and_empty_batches():
    check_images(torch.tensor([0.0, 1.0]).repeat(1, 3, 2, 1))
    check_images(torch.zeros(0, 3, 4, 4))
    check_range(torch.tensor([-2.0, 3.0]), "x", (-2.0, 3.0))


def test_pad_then_crop_is_the_identity_and_pads_by_replication():
    x = torch.rand(2, 3, 70, 65)
    xp, size = pad_to_multiple(x, 64)
    assert xp.shape[-2:] == (128, 128) and size == (70, 65)
    assert torch.equal(crop_to(xp, size), x) and torch.equal(xp[..., 127, :65], x[..., 69, :])


def test_resize_center_crop_nearest_then_area_gives_back_the_pixels():
    x = torch.rand(1, 3, 32, 32)
    up = resize_center_crop(x, 64, 64, "nearest")
    assert up.shape[-2:] == (64, 64)
    assert torch.allclose(resize_center_crop(up, 32, 32, "area"), x)
    assert resize_center_crop(torch.rand(1, 3, 40, 60), 32, 24).shape[-2:] == (24, 24)


def test_a_value_a_hair_past_the_bound_prints_with_enough_digits():
    with pytest.raises(InputError, match=r"max 1\.00000\d+"):
        check_images(torch.full((1, 3, 2, 2), 1.0000001))


def test_progress_in_a_log_is_one_plain_line_per_finished_bar():
    import io

    from liccs.core.progress import tqdm

    log = io.StringIO()  # not a terminal
    for _ in tqdm(range(50), desc="stage", file=log):
        pass
    with tqdm(total=3, desc="inner", file=log, leave=False) as bar:  # a nested bar leaves nothing
        bar.update(3)
        bar.set_postfix(done=3)
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1 and text.startswith("stage: 100%") and "50/50" in text
