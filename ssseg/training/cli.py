"""The ``ssseg train`` sub-command (stub: filled in by the fine-tuning work)."""


def addtrainparser(commands):
    """Add the ``train`` sub-command to ``commands`` (argparse sub-parsers)."""
    commands.add_parser('train', help='fine-tune SAMV2 on COCO images or DAVIS videos')


def runtrain(args) -> int:
    """Run ``ssseg train``; returns the exit status."""
    raise NotImplementedError
