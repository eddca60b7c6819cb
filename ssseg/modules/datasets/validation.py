"""Checks of training data before anything trains: every problem is reported with the file it is in."""
from typing import Sequence, Tuple

MAX_LISTED = 5


class DatasetError(ValueError):
    """Bad training or evaluation data; the message names the file(s) and what is wrong with each."""


def checkpositiveint(name: str, value) -> int:
    """``value`` if it is an int >= 1, else a ValueError naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'{name} must be an int >= 1, got {value!r}')
    return value


def formatproblems(problems: Sequence[Tuple[str, str]], what: str) -> str:
    """One line listing the first problems by file: ``"bad data in X (2 problems): a.png: ...; b.json: ..."``."""
    listed = '; '.join(f'{path}: {message}' for path, message in problems[:MAX_LISTED])
    more = f'; and {len(problems) - MAX_LISTED} more' if len(problems) > MAX_LISTED else ''
    count = f'{len(problems)} problem{"s" if len(problems) != 1 else ""}'
    return f'bad data in {what} ({count}): {listed}{more}'


def checkdataset(dataset) -> None:
    """Read every file of ``dataset`` once and raise if any is bad.

    Args:
        dataset: a :class:`ssseg.modules.datasets.base.ClipDataset`.
    Raises:
        DatasetError: one line naming each bad file (the first few) and what is wrong with it.
    """
    problems = dataset.problems()
    if problems:
        raise DatasetError(formatproblems(problems, dataset.describe()))
