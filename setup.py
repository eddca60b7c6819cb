import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, 'requirements.txt')) as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith('#')]
version = {}
with open(os.path.join(here, 'ssseg', '__init__.py')) as f:
    exec(f.read(), version)

setup(
    name='ssseg',
    version=version['__version__'],
    description='A config-driven PyTorch segmentation toolbox; SAM 2 / SAM 2.1 as the SAMV2 segmentor',
    long_description=open(os.path.join(here, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ssseg', 'ssseg.*']),
    python_requires='>=3.9',
    install_requires=requirements,
    extras_require={'test': ['pytest', 'hypothesis', 'ruff', 'hydra-core>=1.3.2', 'iopath>=0.1.10', 'setuptools',
                             # Meta's training package (the fine-tuning oracle) imports these
                             'tensordict', 'tensorboard']},
    entry_points={'console_scripts': ['ssseg = ssseg.inference:main']},
    license='Apache-2.0',
)
