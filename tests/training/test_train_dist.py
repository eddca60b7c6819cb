"""torchrun with 2 CPU processes (gloo, DDP) trains as 1 process does on the same global batch.

Both runs see the same clips in each iteration (the sampler's stream is split across ranks, rank 0 taking the first
clip), draw the same prompts (seeded per iteration and per object index in the global batch), and average the loss
the same way (objects counted over ranks, as Meta's loss does; DDP averages the gradients). Dropout is switched off:
each process draws its dropout masks for its own part of the batch, which cannot be the masks one process draws for
the whole batch. The weights still differ by float round-off amplified by Adam in directions whose gradient is zero
in exact arithmetic (attention key biases), hence a 1e-5 tolerance rather than bitwise equality.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from trainhelpers import REPO, runssseg

NO_DROPOUT = ['SEGMENTOR_CFG.memory_attention.layer.dropout=0.0',
              'SEGMENTOR_CFG.memory_attention.layer.self_attention.dropout=0.0',
              'SEGMENTOR_CFG.memory_attention.layer.cross_attention.dropout=0.0']


def _args(config, davisdir, work_dir, batch_size):
    return ['--cfg', config, '--work-dir', str(work_dir), '--train-videos', str(davisdir), '--max-iters', '3',
            '--batch-size', str(batch_size), '--device', 'cpu', '--cfg-options', *NO_DROPOUT]


def test_two_processes_equal_one(tmp_path, tinydavisconfig, davisdir):
    one = runssseg(['train', *_args(tinydavisconfig, davisdir, tmp_path / 'one', 2)])
    assert one.returncode == 0, one.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    two = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'dist_train.sh'), '2',
                          *_args(tinydavisconfig, davisdir, tmp_path / 'two', 1)],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    ours = [torch.load(tmp_path / name / 'model_final.pt', weights_only=True)['model'] for name in ('one', 'two')]
    for key in ours[0]:
        torch.testing.assert_close(ours[1][key], ours[0][key], rtol=1e-5, atol=1e-5, msg=key)
    lines = []
    for name in ('one', 'two'):
        with open(tmp_path / name / 'losses.jsonl', encoding='utf-8') as file:
            lines.append([json.loads(line) for line in file])
    assert [line['iter'] for line in lines[1]] == [1, 2, 3]
    for a, b in zip(*lines):
        assert b == pytest.approx(a, rel=1e-5)
