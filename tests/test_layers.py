"""The package's layers, read from its source (ast): imports go one way, the model layer stays tensors-only,
and files and functions stay a size a reader can hold in their head.

Layers, lowest first: utils (and configs) -> builders (registries) -> model (bricks -> backbones -> the SAMV2
model) -> predictors and video -> outputs -> front ends (command line, compat, testing). A module may import
modules of its own layer or below, never above.
"""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'ssseg'
SAMV2 = 'ssseg.modules.models.segmentors.samv2'
# (rank, module-name prefixes); the longest matching prefix decides, so 'x.model' beats 'x'
LAYERS = [
    (0, 'utils', ('ssseg', 'ssseg.configs', 'ssseg.modules.utils')),
    (1, 'builders', ('ssseg.modules', 'ssseg.modules.models', 'ssseg.modules.models.registries')),
    (2.0, 'model: bricks', ('ssseg.modules.models.bricks',)),
    (2.1, 'model: backbones', ('ssseg.modules.models.backbones',)),
    (2.2, 'model: segmentors', ('ssseg.modules.models.segmentors',)),
    (2.2, 'model: SAMV2', (f'{SAMV2}.model', 'ssseg.modules.models.losses')),
    (3, 'predictors, video and data', (SAMV2, f'{SAMV2}.predictors', f'{SAMV2}.video', 'ssseg.modules.datasets')),
    (4, 'outputs', (f'{SAMV2}.outputs', f'{SAMV2}.visualization')),
    (5, 'front ends', ('ssseg.inference', 'ssseg.compat', 'ssseg.testing', 'ssseg.training', 'ssseg.evaluation')),
]
MODEL_RANK = (2.0, 2.2)
# what the model layer must not touch: arrays, images and files belong to the predictors, the heap to them too
FORBIDDEN_PACKAGES = ('numpy', 'cv2', 'PIL')
FORBIDDEN_MODULES = ('ssseg.modules.utils.heap', 'ssseg.modules.utils.fileio')
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules():
    """{module name: (path, ast)} of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = (path, ast.parse(path.read_text(encoding='utf-8')))
    return modules


MODULES = _modules()


def _layer(module):
    best = None
    for rank, name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + '.')) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, rank, name)
    return best[1:] if best else None


def _imports(module, tree):
    """Absolute names of the modules a module imports (``from x import y`` counts as x.y when x.y is a module)."""
    names = []
    package = module if MODULES[module][0].name == '__init__.py' else module.rsplit('.', 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                names.append(f'{base}.{alias.name}' if f'{base}.{alias.name}' in MODULES else base)
    return names


def test_every_module_has_a_layer():
    assert [module for module in MODULES if _layer(module) is None] == []


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, (path, tree) in MODULES.items():
        rank, name = _layer(module)
        for imported in _imports(module, tree):
            if imported.startswith('ssseg') and imported in MODULES:
                their_rank, their_name = _layer(imported)
                if their_rank > rank:
                    upward.append(f'{module} ({name}) imports {imported} ({their_name})')
    assert upward == []


def test_the_check_sees_an_upward_import():
    """The direction check itself: a model module importing a predictor is caught."""
    tree = ast.parse(f'from {SAMV2}.predictors import imagepredictor\n')
    imported = _imports(f'{SAMV2}.model.samv2', tree)
    assert imported == [f'{SAMV2}.predictors.imagepredictor']
    assert _layer(imported[0])[0] > _layer(f'{SAMV2}.model.samv2')[0]


def test_model_layer_imports_no_arrays_images_files_or_allocator():
    found = []
    for module, (path, tree) in MODULES.items():
        if MODEL_RANK[0] <= _layer(module)[0] <= MODEL_RANK[1]:
            for imported in _imports(module, tree):
                if imported.split('.')[0] in FORBIDDEN_PACKAGES or imported.startswith(FORBIDDEN_MODULES):
                    found.append(f'{module} imports {imported}')
            calls = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Name) and node.func.id == 'open']
            found += [f'{module} calls open()'] * len(calls)
    assert found == []


def test_files_and_functions_stay_small():
    large = []
    for path, tree in MODULES.values():
        where = path.relative_to(PACKAGE.parent)
        lines = path.read_text(encoding='utf-8').count('\n')
        if lines > MAX_FILE_LINES:
            large.append(f'{where}: {lines} lines')
        large += [f'{where}: {node.name}() has {node.end_lineno - node.lineno + 1} lines' for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert large == [], f'files over {MAX_FILE_LINES} lines or functions over {MAX_FUNCTION_LINES}'
