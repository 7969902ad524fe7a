"""Environment for notebooks run under nbval: kernels inherit it from this pytest process."""
import os

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars redraw with timings: never reproducible
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning goes to stderr
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
