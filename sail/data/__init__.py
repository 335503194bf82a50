"""Data: world sources standing for the paper's pools, readers for real image–text formats, the
curation funnel, the distribution-balanced reference subset and data cards."""

from sail.data.balance import (
    BalancedSubset,
    balanced_subset,
    category_of,
    distribution,
    image_features,
    plot_distribution,
    simple_features,
)
from sail.data.cards import funnel_fields, read_front_matter, write_data_card
from sail.data.curation import FunnelConfig, FunnelResult, decode, load_rgb, plot_funnel, plot_recall, run_funnel
from sail.data.readers import Item, read_hf, read_image_folder, read_webdataset, write_webdataset
from sail.data.sources import DEFECT_KINDS, SOURCES, build_pool, load_defects, source_records

__all__ = [
    "BalancedSubset",
    "balanced_subset",
    "category_of",
    "distribution",
    "funnel_fields",
    "image_features",
    "plot_distribution",
    "read_front_matter",
    "simple_features",
    "write_data_card",
    "DEFECT_KINDS",
    "FunnelConfig",
    "FunnelResult",
    "Item",
    "SOURCES",
    "build_pool",
    "decode",
    "load_defects",
    "load_rgb",
    "plot_funnel",
    "plot_recall",
    "read_hf",
    "read_image_folder",
    "read_webdataset",
    "run_funnel",
    "source_records",
    "write_webdataset",
]
