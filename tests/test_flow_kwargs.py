"""Executor kwargs from the flow YAML's ${{ ENV.X }}: unset or empty means the default."""

import pytest

from executors.docs import MAX_IMAGE_BYTES
from executors.flow_kwargs import flow_kwarg
from executors.loader import ImageLoader
from executors.normalizer import ImageNormalizer
from executors.normalizer.executor import DEFAULT_MAX_SIDE


@pytest.mark.parametrize(
    "value", [None, "", "  ", "$NORMALIZE_RESIZE", "${{ ENV.NORMALIZE_RESIZE }}"], ids=["none", "empty", "blank", "unset-jina", "unset-placeholder"]
)
def test_unset_or_empty_means_the_default(value):
    assert flow_kwarg("resize", value, None, int) is None
    assert flow_kwarg("store_path", value, "workspace") == "workspace"


@pytest.mark.parametrize("value", ["96", 96, " 96 "])
def test_a_value_is_cast(value):
    assert flow_kwarg("resize", value, None, int) == 96


def test_a_bad_value_names_the_argument():
    with pytest.raises(ValueError, match="'resize': 'big' is not a valid int"):
        flow_kwarg("resize", "big", None, int)


def test_executors_read_their_kwargs_through_it():
    """What Jina hands the executors for `jina flow --uses flows/index.yml` with a variable unset."""
    normalizer = ImageNormalizer(resize="$NORMALIZE_RESIZE", max_side="", decode_threads=None)
    assert (normalizer.resize, normalizer.max_side) == (None, DEFAULT_MAX_SIDE)
    normalizer.close()
    assert ImageNormalizer(resize="96").resize == 96
    assert ImageLoader(max_file_bytes="").max_file_bytes == MAX_IMAGE_BYTES
