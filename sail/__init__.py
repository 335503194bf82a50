"""sail: the SAIL-VL recipe, stage by stage, as notebooks backed by this package."""

import warnings

# In a Jupyter kernel without ipywidgets, importing tqdm.auto (as transformers and datasets do)
# warns once and falls back to tqdm's text bar, which is the bar sail wants there anyway.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
