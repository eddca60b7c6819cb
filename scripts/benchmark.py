"""Speed of ssseg's SAMV2 side by side with Meta's sam2 package, on one checkpoint and image, in one run.

Prints, for each measurement, the median time of ours and of the official package and their ratio
(ours / official; below 1 is faster), and checks that both gave the same outputs. Each side runs in
its own fresh processes (the packages never share allocator state or warm-up), alternating with the other.

    python scripts/benchmark.py --cfg samv21_hiera_tiny --image ../shared/data/images/truck.jpg

Without ``--ckpt`` a random-weight checkpoint in Meta's format is written by Meta's own package
(timings do not depend on the weights' values). Needs ``sam2==1.1.0`` (see README).
"""
import argparse
import datetime
import os
import tempfile

import torch
from benchmark_common import ROOT, loadimage, machine
from benchmark_image import amgchild, amgrows, flopschild, flopsrows, imagechild, imagerows
from benchmark_stream import streamchild, streammemorychild, streammemoryrows, streamrows
from benchmark_training import trainingchild, trainingrows
from benchmark_video import videochild, videomemorychild, videomemoryrows, videorows


def parseargs():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfg', default='samv21_hiera_tiny', help='config name, e.g. samv21_hiera_tiny')
    parser.add_argument('--ckpt', default=None, help="checkpoint in Meta's format (default: random weights)")
    parser.add_argument('--image', default=os.path.join(ROOT, '..', 'shared', 'data', 'images', 'truck.jpg'),
                        help='RGB image (default: the docs truck image; a synthetic 1800x1200 image if absent)')
    parser.add_argument('--repeats', type=int, default=7, help='timed runs of setimage (predict runs 4x as many)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    parser.add_argument('--markdown', action='store_true', help='print the table as markdown')
    parser.add_argument('--tasks', default='image,amg',
                        help='comma-separated: image (predictor), flops (encoder GFLOP/s vs matmul peak), '
                             'amg (mask generator), video (s/frame), videomemory (long video RSS), stream '
                             '(trackframe s/frame vs the official protocol), streammemory (long stream, ours only), '
                             "training (fine-tuning it/s and peak RSS vs Meta's training package)")
    parser.add_argument('--amg-image', default=os.path.join(ROOT, '..', 'shared', 'data', 'images', 'cars.jpg'),
                        help='image for the mask generator (default: the docs cars image)')
    parser.add_argument('--amg-grids', default='16,32,16all',
                        help="points_per_side values to time (32 is the default); suffix 'all' keeps every candidate")
    parser.add_argument('--flops-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--image-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--image-child-output', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--amg-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video', default=os.path.join(ROOT, '..', 'shared', 'data', 'videos', 'bedroom'),
                        help='JPEG frame folder for video timing (default: the docs bedroom clip; synthetic if absent)')
    parser.add_argument('--video-frames', type=int, default=6, help='frames of the clip to propagate through')
    parser.add_argument('--video-repeats', type=int, default=2, help='runs of each side per video measurement (median)')
    parser.add_argument('--video-tuned-official', action='store_true',
                        help='also time the official predictor with glibc tuned by environment as ours tunes it')
    parser.add_argument('--video-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-child-folder', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-child-output', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-objects', type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument('--video-object-counts', default='1,3',
                        help='comma-separated numbers of objects for video (with more than one, ours also runs '
                             'one object at a time, batch_objects=False)')
    parser.add_argument('--video-child-one-at-a-time', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--video-memory-frames', type=int, default=600,
                        help='length of the synthetic video for videomemory')
    parser.add_argument('--video-memory-size', type=int, default=256,
                        help='model input size for videomemory (both sides)')
    parser.add_argument('--video-memory-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-memory-child-folder', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--stream-frames', type=int, default=10000, help='length of the synthetic streammemory stream')
    parser.add_argument('--stream-window', type=int, default=1000, help='streammemory samples every this many frames')
    parser.add_argument('--stream-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--stream-memory-child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--train-repeats', type=int, default=3, help='timed training iterations (after 1 warm-up)')
    parser.add_argument('--train-image-size', type=int, default=512, help='model input size for training (both sides)')
    parser.add_argument('--train-frames', type=int, default=4, help='frames of the training clip')
    parser.add_argument('--training-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--training-scenario', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--training-frozen', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--training-prompts', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--precision', default='float32', choices=('float32', 'bfloat16'),
                        help="ours' precision for image, amg and video (official stays float32); with bfloat16 "
                             'the last column gives the mask IoU against the official float32 output')
    return parser.parse_args()



def main():
    args = parseargs()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.image_child:
        return imagechild(args)
    if args.flops_child:
        return flopschild(args)
    if args.amg_child:
        return amgchild(args)
    if args.video_memory_child:
        return videomemorychild(args)
    if args.video_child:
        return videochild(args)
    if args.stream_child:
        return streamchild(args)
    if args.stream_memory_child:
        return streammemorychild(args)
    if args.training_child:
        return trainingchild(args)
    from ssseg.testing import writerandomcheckpoint

    tasks = set(args.tasks.split(','))
    tmpdir = tempfile.TemporaryDirectory()
    ckpt = args.ckpt or writerandomcheckpoint(args.cfg, os.path.join(tmpdir.name, 'random.pt'))
    rows = []
    if 'image' in tasks:
        rows += imagerows(args, ckpt)
    if 'flops' in tasks:
        rows += flopsrows(args, ckpt)
    if 'amg' in tasks:
        rows += amgrows(args, ckpt)
    if 'video' in tasks:
        rows += videorows(args, ckpt)
    if 'videomemory' in tasks:
        rows += videomemoryrows(args, ckpt)
    if 'stream' in tasks:
        rows += streamrows(args, ckpt)
    if 'streammemory' in tasks:
        rows += streammemoryrows(args)
    if 'training' in tasks:
        rows += trainingrows(args, ckpt)
    images = [f'{name} ({image.shape[1]}x{image.shape[0]}) for {task}'
              for task, path in (('image', args.image), ('amg', args.amg_image))
              if task in tasks for image, name in [loadimage(path)]]
    if tasks & {'video', 'stream'}:
        images.append(f'{os.path.basename(args.video)} (first {args.video_frames} frames) for video and stream')
    if 'training' in tasks:
        images.append(f'random {args.train_image_size}x{args.train_image_size} batches for training (float32)')
    print(f'# {args.cfg}, ours {args.precision} / official float32, CPU; {"; ".join(images)}; '
          f'{machine()}; {datetime.date.today().isoformat()}')
    printtable(rows, '' if 'training' in tasks else ' (s)', args.markdown)  # training rows name their units


def printtable(rows, unit, markdown):
    """Print (measurement, ours, official, ratio, same outputs?) rows as markdown or aligned text."""
    header = ('measurement', f'ours{unit}', f'official{unit}', 'ours/official', 'same outputs?')
    if markdown:
        print('| ' + ' | '.join(header) + ' |')
        print('|' + '---|' * len(header))
        for name, mine, official, ratio, same in rows:
            print(f'| {name} | {mine:.3f} | {official:.3f} | {ratio:.2f} | {same} |')
    else:
        print(f'{header[0]:<30}{header[1]:>10}{header[2]:>14}{header[3]:>15}  {header[4]}')
        for name, mine, official, ratio, same in rows:
            print(f'{name:<30}{mine:>10.3f}{official:>14.3f}{ratio:>15.2f}  {same}')


if __name__ == '__main__':
    main()
