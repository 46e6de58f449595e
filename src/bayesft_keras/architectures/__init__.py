"""The architecture zoo: standard networks built from ReRAM layers, with named dropout sites.

>>> model = build("vgg11", dropout={"stage1": 0.3, "output": 0.1},
...               noise=LogNormalDrift(0.8), input_shape=(32, 32, 3))
>>> sites("vgg11")
['stage1', 'stage2', 'stage3', 'fc1', 'fc2', 'output']
"""

from bayesft_keras.architectures.common import Architecture
from bayesft_keras.architectures.flops import flops
from bayesft_keras.architectures.registry import Blueprint
from bayesft_keras.architectures.registry import available
from bayesft_keras.architectures.registry import blueprint
from bayesft_keras.architectures.registry import build
from bayesft_keras.architectures.registry import default_input_shape
from bayesft_keras.architectures.registry import dropout_layers
from bayesft_keras.architectures.registry import get
from bayesft_keras.architectures.registry import sites
from bayesft_keras.architectures.site_dropout import SiteDropout

__all__ = [
    "SiteDropout",
    "Architecture",
    "Blueprint",
    "available",
    "blueprint",
    "build",
    "default_input_shape",
    "dropout_layers",
    "flops",
    "get",
    "sites",
]
