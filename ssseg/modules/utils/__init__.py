from .registry import buildfromregistry
from .checkpoints import resolvecheckpoint, readstatedict, loadstatedict, loadpretrained
from .configs import availableconfigs, resolveconfigpath, loadsegmentorcfg
