"""WavAlign: adaptive hybrid RL/SFT post-training for end-to-end spoken dialogue models."""

import os

# pyarrow (datasets, parquet sources) bundles jemalloc, whose background thread starts with the import; the world's
# and the judges' worker pools fork, and a fork taken while that thread holds one of its locks can leave the child
# waiting for ever. Set before pyarrow is imported (any `wavalign` entry point imports this first); a value the
# user set is kept.
os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")

__version__ = "0.1.0"
