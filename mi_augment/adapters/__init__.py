"""Thin adapters that make mi_augment's transforms native in other libraries' pipelines.

Each lives in its own module and is imported on use, so an ecosystem that is not installed costs nothing:
``mi_augment.adapters.kornia``, ``mi_augment.adapters.albumentations``.
"""
