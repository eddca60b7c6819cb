"""The Python blocks of the README, the getting-started page, the SAMV2 model zoo page and the fine-tuning page run
as written, in order, like a notebook's cells (each page in a namespace of its own).

The model zoo page (docs/modelzoo/samv2/README.md) reads ``images/truck.jpg``, ``images/groceries.jpg``,
``images/cars.jpg``, ``videos/bedroom/`` and ``videos/bedroom.mp4`` relative to where it runs; the README reads
``truck.jpg`` and ``sam2.1_hiera_tiny.pt``. The blocks run in a subprocess whose working folders hold synthetic
stand-ins for those files and whose TORCH_HOME holds a random-weight checkpoint, so nothing is downloaded. For
speed the test (not the page) swaps every model of the model zoo page for SAM 2.1 Hiera-T, thins the automatic-mask
grids, drops the thresholds of the options example (random weights pass none, and the saving of real masks should
run too) and moves the correction frame into the short clip; each substitution must match the page, so an edit of
the page cannot silently skip one. After each block, every file the block names (a quoted name ending in .png,
.json or .mp4; '{...}' fields and f-string fields match anything) must have been written by that block.
Bash blocks (set-up and command line) are not run here.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import cv2
import pytest

from helpers import syntheticimage

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(REPO, 'docs', 'modelzoo', 'samv2', 'README.md')
OUTPUT_SUFFIXES = ('.png', '.json', '.mp4')
NUM_FRAMES = 4
# (image path, height, width): sizes keep every coordinate of the page inside the image
IMAGES = (('images/truck.jpg', 1200, 1800), ('images/groceries.jpg', 534, 800), ('images/cars.jpg', 750, 1125))
VIDEO_SIZE = (540, 960)
# data the page reads (written by _writedata), not outputs its blocks write
INPUT_FILES = {path for path, _, _ in IMAGES} | {'videos/bedroom.mp4'}
# (pattern, replacement, why): regular expressions applied to every block; each must match the page
SUBSTITUTIONS = (
    (r'use_default_samv21?_(?:t|s|bplus|l)=True', 'use_default_samv21_t=True', 'every model becomes the tiny one'),
    (r"'samv21?_hiera_(?:tiny|small|baseplus|large)'", "'samv21_hiera_tiny'", 'config names too'),
    (r'sam2(?:\.1)?_hiera_(?:tiny|small|base_plus|large)\.pt', 'sam2.1_hiera_tiny.pt', 'and checkpoint files'),
    (r'points_per_side=(?:32|64)\b', 'points_per_side=4',
     'the grids: 32 x 32 and 64 x 64 clicks take minutes on a CPU'),
    (r'pred_iou_thresh=0\.7\b', 'pred_iou_thresh=0.0', 'random weights reach no IoU threshold'),
    (r'stability_score_thresh=0\.92\b', 'stability_score_thresh=0.0', 'nor a stability threshold: keep masks to save'),
    (r'ann_frame_idx = 150\b', f'ann_frame_idx = {NUM_FRAMES - 1}', 'the correction frame, inside the short clip'),
)

# Runs in the subprocess: argv[1] is a JSON list of {'page', 'cwd', 'line', 'code', 'outputs'}; each page runs in
# a namespace of its own, in its folder; stops at the first failure.
_DRIVER = textwrap.dedent('''
    import glob, json, os, sys, time, traceback

    def snapshot(pattern):
        result = {}
        for path in glob.glob(pattern):
            info = os.stat(path)
            result[path] = (info.st_ino, info.st_mtime_ns, info.st_size)
        return result

    with open(sys.argv[1], encoding='utf-8') as file:
        blocks = json.load(file)
    page = None
    for number, block in enumerate(blocks, 1):
        if block['page'] != page:
            page, namespace = block['page'], {'__name__': '__main__'}
            os.chdir(block['cwd'])
        where = f"block {number} ({page} line {block['line']})"
        before = {pattern: snapshot(pattern) for pattern in block['outputs']}
        start = time.perf_counter()
        try:
            # blank lines in front, so that tracebacks give the page's line numbers
            exec(compile('\\n' * (block['line'] - 1) + block['code'], page, 'exec'), namespace)
        except BaseException:
            print(f'FAILED {where}:', file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        missing = [pattern for pattern in block['outputs']
                   if not any(before[pattern].get(path) != key for path, key in snapshot(pattern).items())]
        if missing:
            print(f'FAILED {where}: ran, but wrote no file matching {missing}', file=sys.stderr)
            sys.exit(1)
        print(f"ok {where} {time.perf_counter() - start:.1f} s, wrote {block['outputs']}", flush=True)
''')


def _pythonblocks(text):
    """[(line number of the block's first code line, code)] of every ```python block, in page order."""
    blocks = []
    for match in re.finditer(r'^```python[ \t]*\n(.*?)^```[ \t]*$', text, flags=re.S | re.M):
        blocks.append((text.count('\n', 0, match.start(1)) + 1, match.group(1)))
    return blocks


def _fieldstoglob(text):
    return re.sub(r'\{[^{}]*\}', '*', text)


def _outputnames(code):
    """Glob patterns of the output files a block names: string literals (not comments) ending in an
    output suffix, other than the page's input files; '{...}' fields of str.format patterns and f-string
    fields become '*'."""
    tree = ast.parse(code)
    names, inside = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and id(node) not in inside:
            inside.update(id(child) for child in ast.walk(node) if child is not node)
            parts = [part.value if isinstance(part, ast.Constant) else '*' for part in node.values]
            names.append(''.join(parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            names.append(_fieldstoglob(node.value))
    return sorted({name for name in names if name.endswith(OUTPUT_SUFFIXES) and name not in INPUT_FILES})


def _substitute(blocks):
    """Apply SUBSTITUTIONS to every block; each must match at least once somewhere on the page."""
    counts = [0] * len(SUBSTITUTIONS)
    result = []
    for line, code in blocks:
        for i, (pattern, replacement, _) in enumerate(SUBSTITUTIONS):
            code, count = re.subn(pattern, replacement, code)
            counts[i] += count
        result.append((line, code))
    unmatched = [SUBSTITUTIONS[i][0] for i, count in enumerate(counts) if count == 0]
    assert not unmatched, f'substitutions that no longer match {PAGE} (update this test with the page): {unmatched}'
    return result


def _writedata(root):
    """Synthetic files at the page's data paths: three images and a short clip, as numbered JPEG frames and as an
    .mp4 (the streaming example's source)."""
    for seed, (path, height, width) in enumerate(IMAGES, 1):
        os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
        assert cv2.imwrite(os.path.join(root, path), syntheticimage(height, width, seed=seed)[..., ::-1])
    clip = os.path.join(root, 'videos', 'bedroom')
    os.makedirs(clip)
    scene = syntheticimage(*VIDEO_SIZE, seed=len(IMAGES) + 1)
    writer = cv2.VideoWriter(clip + '.mp4', cv2.VideoWriter_fourcc(*'mp4v'), 24, VIDEO_SIZE[::-1])
    for frame_idx in range(NUM_FRAMES):
        frame = scene.copy()
        frame[:, 12 * frame_idx:] = scene[:, :VIDEO_SIZE[1] - 12 * frame_idx]  # the scene pans to the right
        assert cv2.imwrite(os.path.join(clip, f'{frame_idx:05d}.jpg'), frame[..., ::-1])
        writer.write(frame[..., ::-1])
    writer.release()


def _pageblocks():
    with open(PAGE, encoding='utf-8') as file:
        return _pythonblocks(file.read())


def test_outputnames():
    code = textwrap.dedent('''
        showmasks(image, masks, scores, savepath='truck_point_{}.png')  # not 'commented.png'
        for idx in range(2):
            saveoverlay(img, masks, f'batch_{idx}.png')
            saveoverlay(img, masks, f'tracked_{idx:05d}.png')
        savecocojson(masks, 'cars.json', image_size=(2, 2))
        image = load('images/truck.jpg')
        stream = VideoStream('videos/bedroom.mp4')  # an input, not an output
    ''')
    assert _outputnames(code) == ['batch_*.png', 'cars.json', 'tracked_*.png', 'truck_point_*.png']


def test_page_blocks_parse_and_substitutions_match():
    blocks = _pageblocks()
    assert len(blocks) >= 10, f'expected the page to hold its examples, found {len(blocks)} python blocks'
    for line, code in _substitute(blocks):
        try:
            ast.parse(code)
        except SyntaxError as error:
            pytest.fail(f'{PAGE} line {line + (error.lineno or 1) - 1}: {error.msg}')
    named = [name for _, code in blocks for name in _outputnames(code)]
    assert len(named) >= 10, f'the blocks should save what they show, found only {named}'


def _pageblocks_of(path, cwd):
    """The page's python blocks as the driver takes them, run in ``cwd``."""
    with open(path, encoding='utf-8') as file:
        return [(os.path.relpath(path, REPO), str(cwd), line, code) for line, code in _pythonblocks(file.read())]


def test_docs_blocks_run_in_order(tmp_path, makeckpt, torchhome):
    """The README's and the getting-started page's blocks as written, then the model zoo page's (with the
    substitutions above), in one subprocess: each page in a namespace and folder of its own. The README's
    folder holds a synthetic truck.jpg and a random checkpoint at the file name it loads."""
    ckpt = makeckpt('samv21_hiera_tiny')  # TORCH_HOME/hub/checkpoints/sam2.1_hiera_tiny.pt, what every block loads
    readme, zoo = tmp_path / 'readme', tmp_path / 'zoo'
    readme.mkdir()
    zoo.mkdir()
    assert cv2.imwrite(str(readme / 'truck.jpg'), syntheticimage(*IMAGES[0][1:], seed=1)[..., ::-1])
    shutil.copy(ckpt, readme / 'sam2.1_hiera_tiny.pt')
    _writedata(str(zoo))
    blocks = (_pageblocks_of(os.path.join(REPO, 'README.md'), readme)
              + _pageblocks_of(os.path.join(REPO, 'docs', 'getting_started.md'), readme))
    assert len(blocks) >= 4, f'expected the README and getting-started examples, found {len(blocks)} python blocks'
    blocks += [(os.path.relpath(PAGE, REPO), str(zoo), line, code) for line, code in _substitute(_pageblocks())]
    finetune = tmp_path / 'finetune'
    finetune.mkdir()
    blocks += _pageblocks_of(os.path.join(REPO, 'docs', 'finetuning.md'), finetune)
    blocks = [{'page': page, 'cwd': cwd, 'line': line, 'code': code, 'outputs': _outputnames(code)}
              for page, cwd, line, code in blocks]
    blocksfile = tmp_path / 'blocks.json'
    blocksfile.write_text(json.dumps(blocks), encoding='utf-8')
    driver = tmp_path / 'driver.py'
    driver.write_text(_DRIVER, encoding='utf-8')
    env = dict(os.environ, TORCH_HOME=str(torchhome), MPLBACKEND='Agg',
               PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    result = subprocess.run([sys.executable, str(driver), str(blocksfile)], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (f'a python block failed\n--- stdout\n{result.stdout}\n'
                                    f'--- stderr (last 6000 characters)\n{result.stderr[-6000:]}')
    ran = [line for line in result.stdout.splitlines() if line.startswith('ok block ')]
    assert len(ran) == len(blocks), result.stdout


def test_reliability_table_names_existing_tests():
    """Every test docs/reliability.md cites as proof exists (``file.py::name``, or ``::name`` in the same file)."""
    text = open(os.path.join(REPO, 'docs', 'reliability.md'), encoding='utf-8').read()
    cited, missing = 0, []
    for cell in re.findall(r'tests/[^|]*', text):
        current = None
        for ref in re.findall(r'(tests/[\w/]+\.py)?::(\w+)', cell):
            current = ref[0] or current
            source = open(os.path.join(REPO, current), encoding='utf-8').read()
            cited += 1
            if not re.search(rf'^def {ref[1]}\(', source, re.M):
                missing.append(f'{current}::{ref[1]}')
    assert cited > 100 and not missing, missing
