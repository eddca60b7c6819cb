"""Prompts from the command line (``--point X,Y[,LABEL]``, ``--box X1,Y1,X2,Y2``) or a JSON file.

Coordinates are pixels of the original image or frame, x to the right and y down; labels are 1 for
foreground and 0 for background. Everything here raises ValueError naming the flag or file entry.
"""
import json
import math
import os


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


def parsepoint(text, name='--point'):
    """'X,Y' or 'X,Y,LABEL' -> ([x, y], label); LABEL is 1 (foreground, the default) or 0 (background)."""
    values = _numbers(text, name, (2, 3)) if isinstance(text, str) else _aslist(text, name, (2, 3))
    label = 1 if len(values) == 2 else values[2]
    if label not in (0, 1):
        raise ValueError(f'{name}: LABEL must be 1 (foreground) or 0 (background), got {text!r}')
    return values[:2], int(label)


def parsebox(text, name='--box'):
    """'X1,Y1,X2,Y2' -> [x1, y1, x2, y2] with x2 > x1 and y2 > y1."""
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


def imageprompts(points, boxes, name='prompts'):
    """Checked prompts for one image: ``{'points': [[x, y], ...], 'labels': [...], 'boxes': [[x1, y1, x2, y2], ...]}``.

    ``points`` are 'X,Y[,LABEL]' strings or [x, y(, label)] lists, ``boxes`` 'X1,Y1,X2,Y2' strings or lists.
    Points may go with at most one box (one object); several boxes segment one object each.
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


def readjson(path, name='--prompts'):
    """The parsed JSON file at ``path``; FileNotFoundError / ValueError naming ``name`` otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{name}: no such file: {path!r}')
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'{name}: {path!r} is not valid JSON ({error})') from None


def imagepromptsfromfile(data, image_names, path):
    """Per-image prompts from a prompts file: one {'points': ..., 'boxes': ...} for every image, or a dict
    from image file name to such an entry. Returns {image name: checked prompts}."""
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


def videoprompts(events, data=None, path=None):
    """Video prompts grouped per (frame, object): a list of {'frame', 'obj', 'points', 'labels', 'box'}.

    ``events`` are ('frame', N), ('obj', ID), ('point', 'X,Y[,L]') and ('box', 'X1,Y1,X2,Y2') in command
    line order: a point or box belongs to the latest --frame (default 0) and --obj, and every --obj needs
    a point or box before the next --obj. ``data`` (a prompts file) is a list of
    {"frame": N, "obj": ID, "points": [[x, y, label], ...], "box": [x1, y1, x2, y2]}.
    """
    groups = {}

    def add(frame, obj, point=None, box=None, where='--obj'):
        entry = groups.setdefault((frame, obj), {'frame': frame, 'obj': obj, 'points': [], 'labels': [], 'box': None})
        if point is not None:
            entry['points'].append(point[0])
            entry['labels'].append(point[1])
        if box is not None:
            if entry['box'] is not None:
                raise ValueError(f'{where}: object {obj} has two boxes on frame {frame}; give one box per object '
                                 'and frame')
            entry['box'] = box

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
            add(frame, obj, point=parsepoint(value) if kind == 'point' else None,
                box=parsebox(value) if kind == 'box' else None)
            unprompted = None
    if data is not None:
        if not isinstance(data, list):
            raise ValueError(f'--prompts {path!r} must hold a JSON list of {{"frame", "obj", "points", "box"}} '
                             f'entries, got {type(data).__name__}')
        for i, entry in enumerate(data):
            where = f'--prompts {path!r}, entry {i}'
            if not isinstance(entry, dict) or 'obj' not in entry or not set(entry) <= {'frame', 'obj', 'points', 'box'}:
                raise ValueError(f'{where} must be {{"frame": N, "obj": ID, "points": [[x, y, label], ...], '
                                 f'"box": [x1, y1, x2, y2]}}, got {entry!r:.100}')
            frame_i = _nonnegativeint(entry.get('frame', 0), f'{where}: frame')
            obj_i = _nonnegativeint(entry['obj'], f'{where}: obj')
            for j, point in enumerate(entry.get('points') or []):
                add(frame_i, obj_i, point=parsepoint(point, f'{where}: point {j}'), where=where)
            if entry.get('box') is not None:
                add(frame_i, obj_i, box=parsebox(entry['box'], f'{where}: box'), where=where)
    empty = [key for key, entry in groups.items() if not entry['points'] and entry['box'] is None]
    if not groups or empty:
        raise ValueError('video prompts: give at least one --point or --box after --obj ID (or a --prompts file)'
                         + (f'; object {empty[0][1]} on frame {empty[0][0]} has none' if empty else ''))
    return [groups[key] for key in sorted(groups)]


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
