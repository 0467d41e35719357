"""Small default torch modules, sized at fit time from the data.

The estimators pass ``n_features_in`` (and, for classifiers heads,
``n_classes``) to a module whose ``__init__`` accepts them, unless the user
sets them through ``module__n_features_in`` / ``module__n_classes``.
"""

import torch
from torch import nn

__all__ = ["MLP", "EmbeddingMLP"]


class EmbeddingMLP(nn.Module):
    """Multi-layer perceptron that maps rows to an embedding.

    The default module of :class:`~skmeta.PrototypicalClassifier`.

    Parameters
    ----------
    n_features_in : int
        Number of input features.

    hidden_units : tuple of int, default=(64,)
        Width of each hidden layer.

    embedding_dim : int, default=32
        Size of the embedding (the output).

    activation : type of torch.nn.Module, default=torch.nn.ReLU
        Non-linearity after each hidden layer.

    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    skip : bool, default=False
        Append the input, times a learned scale (``skip_scale``, starting at
        1), to the embedding: ``[net(X), skip_scale * X]``. Prototypes then
        also live in the input space, where a group's own class means can
        separate directions that the learned part, trained on the other
        groups, has folded together. The embedding has ``embedding_dim +
        n_features_in`` dimensions.

    Examples
    --------
    >>> import torch
    >>> from skmeta.modules import EmbeddingMLP
    >>> EmbeddingMLP(n_features_in=4, embedding_dim=8)(torch.zeros(2, 4)).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        n_features_in,
        hidden_units=(64,),
        embedding_dim=32,
        activation=nn.ReLU,
        dropout=0.0,
        skip=False,
    ):
        super().__init__()
        self.skip = skip
        if skip:
            self.skip_scale = nn.Parameter(torch.ones(()))
        layers, width = [], n_features_in
        for units in hidden_units:
            layers += [nn.Linear(width, units), activation()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        self.net = nn.Sequential(*layers, nn.Linear(width, embedding_dim))

    def forward(self, X):
        out = self.net(X)
        if self.skip:
            out = torch.cat([out, self.skip_scale * X], dim=-1)
        return out


class MLP(EmbeddingMLP):
    """Multi-layer perceptron that returns class logits.

    The default module of :class:`~skmeta.MAMLClassifier`: an
    :class:`EmbeddingMLP` whose output has one unit per class.

    Parameters
    ----------
    n_features_in : int
        Number of input features.

    n_classes : int
        Number of classes (size of the output layer).

    hidden_units : tuple of int, default=(64,)
        Width of each hidden layer.

    activation : type of torch.nn.Module, default=torch.nn.ReLU
        Non-linearity after each hidden layer.

    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    Examples
    --------
    >>> import torch
    >>> from skmeta.modules import MLP
    >>> MLP(n_features_in=4, n_classes=3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        n_features_in,
        n_classes,
        hidden_units=(64,),
        activation=nn.ReLU,
        dropout=0.0,
    ):
        super().__init__(
            n_features_in,
            hidden_units=hidden_units,
            embedding_dim=n_classes,
            activation=activation,
            dropout=dropout,
            skip=False,
        )
