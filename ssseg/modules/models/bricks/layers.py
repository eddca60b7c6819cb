"""Small layers shared by several modules: an MLP stack, channel-first LayerNorm, activations, stochastic depth."""
from typing import Type, Union

import torch
import torch.nn as nn
from torchvision.ops import StochasticDepth

_ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU, 'glu': nn.GLU}


def BuildActivation(activation: Union[str, Type[nn.Module]]) -> nn.Module:
    """Return an activation module from a name or an nn.Module class.

    Args:
        activation: 'relu', 'gelu' or 'glu', or an nn.Module class (instantiated without arguments).

    Returns:
        A new instance of the activation module.

    Raises:
        ValueError: ``activation`` is a string naming none of the known activations.
    """
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}')
        return _ACTIVATIONS[activation]()
    return activation()


class MLP(nn.Module):
    """``num_layers`` Linear layers with an activation between them; (..., in_dim) -> (..., out_dim).

    Args:
        input_dim: width of the input's last axis.
        hidden_dim: width between the layers.
        output_dim: width of the output's last axis.
        num_layers: number of Linear layers.
        activation: name or class of the activation between layers (see :func:`BuildActivation`).
        sigmoid_output: apply a sigmoid to the output.
    """

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers, activation='relu', sigmoid_output=False):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(dims[:-1], dims[1:]))
        self.act = BuildActivation(activation)
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layers to the last axis.

        Args:
            x: (..., input_dim) floating tensor.

        Returns:
            (..., output_dim) floating tensor, in (0, 1) when ``sigmoid_output``.
        """
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        x = self.layers[-1](x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor.

    Args:
        num_channels: C, the width of the learned per-channel ``weight`` and ``bias``.
        eps: added to the variance before the square root.
    """

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize each pixel over its channels, then scale and shift per channel.

        Args:
            x: (B, C, H, W) floating tensor.

        Returns:
            (B, C, H, W) floating tensor.
        """
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class DropPath(StochasticDepth):
    """Stochastic depth of a residual branch: in training, each sample's branch is zeroed with probability
    ``drop_prob`` and the others scaled by 1 / (1 - drop_prob) (torchvision's, per row); the identity in eval.

    Args:
        drop_prob: probability of dropping a sample's branch, in [0, 1).

    Raises:
        ValueError: ``drop_prob`` is outside [0, 1).
    """

    def __init__(self, drop_prob=0.0):
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f'drop_prob must be a probability in [0, 1), got {drop_prob!r}')
        super().__init__(drop_prob, 'row')
