"""Quiet third-party output for the command line: imported first by ``evalgate.cli.main``.

evalgate shows its own rich progress bars; the tqdm bars of HF libraries (weight loading, Parquet
writing, GGUF conversion) and a known transformers deprecation warning would bury them. Users can
turn the bars back on by setting ``TQDM_DISABLE=0``.
"""

import os
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
