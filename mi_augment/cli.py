"""The ``mi-augment`` command. Each sub-command lives in :mod:`mi_augment.commands` as a module with
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their command runs."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": ("demo", "fit the natural perturbation models on the embedded real clips and show what they do"),
    "fit": ("fit", "fit an illumination or motion model on your own video files"),
    "preview": ("preview", "show candidate crop pairs with their MI scores and the pairs a policy keeps"),
    "mine": ("mine", "mine twin patches (highest-MI partners) from videos"),
    "invariance": ("invariance", "track patches through your footage and score how well an encoder finds them again"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mi-augment",
        description="Augmentations fitted on real footage and positive pairs chosen by mutual information.",
        epilog="Start with `mi-augment demo`; `mi-augment COMMAND --help` for each command.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"mi_augment {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(f"mi_augment.commands.{module}")
        except ModuleNotFoundError:
            continue
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not hasattr(args, "_run"):
        parser.error(f"command {args.command!r} is not available in this build")
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError, RuntimeError) as exc:  # OSError: bad --out paths, full disks: one line
        print(f"mi-augment {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
