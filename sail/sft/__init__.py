"""Supervised fine-tuning: SFT data from the world, the judge, three-tier data evaluation, the curriculum."""
