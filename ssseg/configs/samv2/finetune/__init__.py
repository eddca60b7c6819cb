"""Fine-tuning configs: a model config (``SEGMENTOR_CFG``, through ``_base_``) plus ``TRAIN_CFG``."""
