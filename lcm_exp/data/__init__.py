"""Image-text data: webdataset pipeline (webdataset_pipeline.build_dataloader), transforms, shard tools.

Import the submodules directly; this package imports nothing so config validation stays light (spec.py has
no torch/PIL import).
"""
