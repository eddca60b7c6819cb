"""Prompts from the command line (``--point X,Y[,LABEL]``, ``--box X1,Y1,X2,Y2``) or a JSON file.

Coordinates are pixels of the original image or frame, x to the right and y down; labels are 1 for
foreground and 0 for background. Everything here raises ValueError naming the flag or file entry.
"""
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union


def _numbers(text, name, counts):
    """Comma-separated finite numbers from ``text``; their count must be one of ``counts``."""
    parts = [part.strip() for part in str(text).split(',')]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = None
    if values is None or len(values) not in counts or not all(math.isfinite(v) for v in values):
        forms = ' or '.join({2: 'X,Y', 3: 'X,Y,LABEL', 4: 'X1,Y1,X2,Y2'}[c] for c in counts)
        raise ValueError(f'{name} must be {forms} (finite numbers), got {text!r}')
    return values


def parsepoint(text: Union[str, Sequence[float]], name: str = '--point') -> Tuple[List[float], int]:
    """One point prompt from a flag's text or a JSON list.

    Args:
        text: 'X,Y' or 'X,Y,LABEL' (pixels of the original image), or such a list of numbers.
        name: the flag or file entry named in errors.
    Returns:
        ([x, y], label): float pixel coordinates and 1 (foreground, the default) or 0 (background).
    Raises:
        ValueError: not two or three finite numbers, or a LABEL other than 0 and 1.
    """
    values = _numbers(text, name, (2, 3)) if isinstance(text, str) else _aslist(text, name, (2, 3))
    label = 1 if len(values) == 2 else values[2]
    if label not in (0, 1):
        raise ValueError(f'{name}: LABEL must be 1 (foreground) or 0 (background), got {text!r}')
    return values[:2], int(label)


def parsebox(text: Union[str, Sequence[float]], name: str = '--box') -> List[float]:
    """One box prompt from a flag's text or a JSON list.

    Args:
        text: 'X1,Y1,X2,Y2' (pixels of the original image, corners top-left and bottom-right), or such a list.
        name: the flag or file entry named in errors.
    Returns:
        [x1, y1, x2, y2] as floats.
    Raises:
        ValueError: not four finite numbers, or X2 <= X1 or Y2 <= Y1.
    """
    values = _numbers(text, name, (4,)) if isinstance(text, str) else _aslist(text, name, (4,))
    if values[2] <= values[0] or values[3] <= values[1]:
        raise ValueError(f'{name} must be X1,Y1,X2,Y2 with X2 > X1 and Y2 > Y1, got {text!r}')
    return values


def _aslist(value, name, counts):
    """A JSON list of numbers (the same forms as the flags)."""
    def finite(v):
        try:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        except OverflowError:  # a JSON integer too large for a float
            return False
    if not isinstance(value, (list, tuple)) or len(value) not in counts or not all(finite(v) for v in value):
        raise ValueError(f'{name} must be a list of {" or ".join(map(str, counts))} finite numbers, got {value!r:.100}')
    return [float(v) for v in value]


def imageprompts(points: Optional[Sequence], boxes: Optional[Sequence], name: str = 'prompts') -> Dict[str, list]:
    """Checked prompts for one image; points may go with at most one box (one object), several boxes
    segment one object each.

    Args:
        points: 'X,Y[,LABEL]' strings or [x, y(, label)] lists, in pixels; None or empty for none.
        boxes: 'X1,Y1,X2,Y2' strings or lists, in pixels; None or empty for none.
        name: where the prompts came from, named in errors.
    Returns:
        {'points': [[x, y], ...], 'labels': [0 or 1, ...], 'boxes': [[x1, y1, x2, y2], ...]}.
    Raises:
        ValueError: a malformed point or box, no prompt at all, or points with several boxes.
    """
    parsed = [parsepoint(p, f'{name}: point {i}' if not isinstance(p, str) else '--point')
              for i, p in enumerate(points or [])]
    boxes = [parsebox(b, f'{name}: box {i}' if not isinstance(b, str) else '--box') for i, b in enumerate(boxes or [])]
    if not parsed and not boxes:
        raise ValueError(f'{name}: give at least one point (--point X,Y[,LABEL]) or box (--box X1,Y1,X2,Y2)')
    if parsed and len(boxes) > 1:
        raise ValueError(f'{name}: points go with at most one box (one object), got {len(parsed)} points and '
                         f'{len(boxes)} boxes')
    return {'points': [p for p, _ in parsed], 'labels': [label for _, label in parsed], 'boxes': boxes}


def readjson(path: str, name: str = '--prompts') -> Any:
    """The parsed contents of a JSON file.

    Args:
        path: the file's path.
        name: the flag named in errors.
    Returns:
        The decoded JSON value.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not UTF-8 JSON.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{name}: no such file: {path!r}')
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'{name}: {path!r} is not valid JSON ({error})') from None


def imagepromptsfromfile(data: Any, image_names: Sequence[str], path: str) -> Dict[str, Dict[str, list]]:
    """Per-image prompts from a prompts file.

    Args:
        data: the file's JSON: one {'points': ..., 'boxes': ...} for every image, or a dict from image
            file name to such an entry.
        image_names: the file names of the images to prompt.
        path: the file's path, named in errors.
    Returns:
        {image name: checked prompts as from ``imageprompts``}.
    Raises:
        ValueError: not a JSON object, an image without an entry, or a malformed entry.
    """
    if not isinstance(data, dict):
        raise ValueError(f'--prompts {path!r} must hold a JSON object, got {type(data).__name__}')
    if set(data) <= {'points', 'boxes'}:
        shared = imageprompts(data.get('points'), data.get('boxes'), f'--prompts {path!r}')
        return {name: shared for name in image_names}
    missing = [name for name in image_names if name not in data]
    if missing:
        raise ValueError(f'--prompts {path!r} has no entry for {len(missing)} image(s), e.g. {missing[0]!r}; '
                         'give {"points": ..., "boxes": ...} for all images or one entry per image file name')
    result = {}
    for name in image_names:
        entry = data[name]
        if not isinstance(entry, dict) or not set(entry) <= {'points', 'boxes'}:
            raise ValueError(f'--prompts {path!r}: entry {name!r} must be {{"points": [[x, y, label], ...], '
                             f'"boxes": [[x1, y1, x2, y2], ...]}}, got {entry!r:.100}')
        result[name] = imageprompts(entry.get('points'), entry.get('boxes'), f'--prompts {path!r}, {name!r}')
    return result


def videoprompts(events: Iterable[Tuple[str, Any]], data: Optional[Any] = None,
                 path: Optional[str] = None) -> List[Dict[str, Any]]:
    """Video prompts grouped per (frame, object), from the flags and an optional prompts file.

    Args:
        events: ('frame', N), ('obj', ID), ('point', 'X,Y[,L]') and ('box', 'X1,Y1,X2,Y2') in command line
            order: a point or box belongs to the latest --frame (default 0) and --obj, and every --obj
            needs a point or box before the next --obj.
        data: a prompts file's JSON, a list of {"frame": N, "obj": ID, "points": [[x, y, label], ...],
            "box": [x1, y1, x2, y2]}; None for none.
        path: the prompts file's path, named in errors.
    Returns:
        [{'frame': int, 'obj': int, 'points': [[x, y], ...], 'labels': [...], 'box': [x1, y1, x2, y2] or None}]
        sorted by (frame, obj); coordinates in pixels of the original frames.
    Raises:
        ValueError: a malformed flag or entry, an object without a prompt, or two boxes for one object
            and frame.
    """
    groups = {}
    _flagprompts(groups, events)
    if data is not None:
        _fileprompts(groups, data, path)
    empty = [key for key, entry in groups.items() if not entry['points'] and entry['box'] is None]
    if not groups or empty:
        raise ValueError('video prompts: give at least one --point or --box after --obj ID (or a --prompts file)'
                         + (f'; object {empty[0][1]} on frame {empty[0][0]} has none' if empty else ''))
    return [groups[key] for key in sorted(groups)]


def _addprompt(groups, frame, obj, point=None, box=None, where='--obj'):
    """Add a point ([x, y], label) or a box to the prompts of (frame, obj) in ``groups``."""
    entry = groups.setdefault((frame, obj), {'frame': frame, 'obj': obj, 'points': [], 'labels': [], 'box': None})
    if point is not None:
        entry['points'].append(point[0])
        entry['labels'].append(point[1])
    if box is not None:
        if entry['box'] is not None:
            raise ValueError(f'{where}: object {obj} has two boxes on frame {frame}; give one box per object '
                             'and frame')
        entry['box'] = box


def _flagprompts(groups, events):
    """The --frame/--obj/--point/--box flags, in command line order, into ``groups``."""
    frame, obj, unprompted = 0, None, None
    for kind, value in list(events) + [('end', None)]:
        # an --obj followed by no point or box is a slip (its prompts went to another object), not a no-op
        if kind in ('obj', 'end') and unprompted is not None:
            raise ValueError(f'--obj {unprompted} has no --point or --box after it')
        if kind == 'frame':
            frame = _nonnegativeint(value, '--frame')
        elif kind == 'obj':
            obj = unprompted = _nonnegativeint(value, '--obj')
        elif kind != 'end':
            if obj is None:
                raise ValueError(f'--{kind} {value!r} needs an object first: --obj ID before the points and boxes '
                                 'of each object')
            _addprompt(groups, frame, obj, point=parsepoint(value) if kind == 'point' else None,
                       box=parsebox(value) if kind == 'box' else None)
            unprompted = None


def _fileprompts(groups, data, path):
    """The entries of a video prompts file into ``groups``."""
    if not isinstance(data, list):
        raise ValueError(f'--prompts {path!r} must hold a JSON list of {{"frame", "obj", "points", "box"}} '
                         f'entries, got {type(data).__name__}')
    for i, entry in enumerate(data):
        where = f'--prompts {path!r}, entry {i}'
        if not isinstance(entry, dict) or 'obj' not in entry or not set(entry) <= {'frame', 'obj', 'points', 'box'}:
            raise ValueError(f'{where} must be {{"frame": N, "obj": ID, "points": [[x, y, label], ...], '
                             f'"box": [x1, y1, x2, y2]}}, got {entry!r:.100}')
        frame = _nonnegativeint(entry.get('frame', 0), f'{where}: frame')
        obj = _nonnegativeint(entry['obj'], f'{where}: obj')
        for j, point in enumerate(entry.get('points') or []):
            _addprompt(groups, frame, obj, point=parsepoint(point, f'{where}: point {j}'), where=where)
        if entry.get('box') is not None:
            _addprompt(groups, frame, obj, box=parsebox(entry['box'], f'{where}: box'), where=where)


# object ids and frame numbers are stored as int32 by the model and in the outputs
MAX_ID = 2 ** 31 - 1


def _nonnegativeint(value, name):
    """``value`` (a flag's text or a JSON number) as an int in [0, MAX_ID]; ValueError naming ``name`` otherwise."""
    try:
        number = int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is inf, which has no int
        number = None
    if number is None or not 0 <= number <= MAX_ID:
        raise ValueError(f'{name} must be an int in 0..{MAX_ID}, got {value!r:.40}')
    return number
