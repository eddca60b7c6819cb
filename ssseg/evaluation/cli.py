"""The ``ssseg eval`` sub-command (stub: filled in by the evaluation work)."""


def addevalparser(commands):
    """Add the ``eval`` sub-command to ``commands`` (argparse sub-parsers)."""
    commands.add_parser('eval', help='evaluate a checkpoint on COCO images or DAVIS videos')


def runeval(args) -> int:
    """Run ``ssseg eval``; returns the exit status."""
    raise NotImplementedError
