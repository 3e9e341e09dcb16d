"""The recipes' training run, in five parts:

* :mod:`.cli`         :func:`make_parser` (every recipe's flags, each checked at parse time) and the argparse
                      types recipes use for their own flags (:func:`positive_int`, :func:`positive_float`, ...)
* :mod:`.folder`      the ``--out`` folder: a run there is refused unless ``--resume`` / ``--overwrite``; a lock
                      while a run is in it (:class:`FolderLock`, :func:`prepare_run_folder`)
* :mod:`.checkpoint`  atomic checkpoints, loading without code execution, schema and resume-config checks
* :mod:`.loop`        :func:`run`: build, resume, train (AMP, DDP, cosine schedule), evaluate, write results
* :mod:`.runtime`     git SHA, devices, DDP set-up, the loss-curve figure

A recipe is ``args = make_parser(...).parse_args(argv)`` then ``run(args, method_name=..., build_method=...,
build_optimizer=..., views=...)``.
"""

from __future__ import annotations

from .. import twins as _twins
from .checkpoint import (
    CHECKPOINT,
    RESULTS,
    RESUME_IGNORED_FIELDS,
    CheckpointError,
    ResumeConfigError,
    check_resume_config,
    config_differences,
    load_checkpoint,
    save_checkpoint,
    validate_checkpoint,
)
from .cli import (
    RecipeParser,
    make_parser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_positives,
    unit_interval,
)
from .folder import FolderLock, RunFolderError, prepare_run_folder
from .loop import attach_neighbours, images_per_step, run, scoring_parts
from .runtime import device_name, git_sha, plot_curves, setup_distributed, unwrap

TwinBranch = _twins.TwinBranch  # where the docs have long pointed

__all__ = ["CHECKPOINT", "RESULTS", "RESUME_IGNORED_FIELDS", "CheckpointError", "FolderLock", "RecipeParser",
           "ResumeConfigError", "RunFolderError", "TwinBranch", "attach_neighbours", "check_resume_config", "config_differences",
           "device_name", "git_sha", "images_per_step", "load_checkpoint", "make_parser", "non_negative_float",
           "non_negative_int", "plot_curves", "positive_float", "positive_int", "prepare_run_folder",
           "resolve_positives", "run", "save_checkpoint", "scoring_parts", "setup_distributed", "unit_interval",
           "unwrap", "validate_checkpoint"]
