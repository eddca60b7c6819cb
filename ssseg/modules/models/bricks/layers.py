"""Small layers shared by several modules: an MLP stack, channel-first LayerNorm, activations."""
import torch
import torch.nn as nn

_ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU, 'glu': nn.GLU}


def BuildActivation(activation):
    """Return an activation module from a name ('relu', 'gelu', 'glu') or an nn.Module class."""
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}')
        return _ACTIVATIONS[activation]()
    return activation()


class MLP(nn.Module):
    """``num_layers`` Linear layers with an activation between them; (..., in_dim) -> (..., out_dim)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers, activation='relu', sigmoid_output=False):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(dims[:-1], dims[1:]))
        self.act = BuildActivation(activation)
        self.sigmoid_output = sigmoid_output

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        x = self.layers[-1](x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]
