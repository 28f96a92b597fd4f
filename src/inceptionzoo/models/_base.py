"""The model contract shared by every Inception family: head, classifier reset, feature taps, intermediates,
gradient checkpointing, parameter groups and the minimum input size.

A family's model class builds its layers as named attributes (the names its checkpoints use), writes its own
scriptable ``forward``, and calls ``InceptionNet.finish_init`` once its layers exist.
"""

from typing import Any

import torch
from timm.layers import create_classifier
from timm.models._features import feature_take_indices  # not re-exported by timm.models or timm.layers
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._features import check_feature_indices
from .._validation import check_head_arguments, check_image_input, check_model_arguments, replace_config
from ..sizes import minimum_input_size

__all__ = ["CIFAR10_CFG", "InceptionNet"]

# the input check is a leaf of torch.fx graphs (fx cannot trace its data-dependent raises); fx patches the name in
# this module's globals, so every model calls it here, through InceptionNet.check_input
torch.fx.wrap("check_image_input")

# preprocessing and head of the CIFAR-size models: 10 classes, 32x32 input, CIFAR-10's per-channel statistics
CIFAR10_CFG = {
    "num_classes": 10,
    "input_size": (3, 32, 32),
    "crop_pct": 1.0,
    "mean": (0.4914, 0.4822, 0.4465),
    "std": (0.2470, 0.2435, 0.2616),
}


class InceptionNet(nn.Module):
    """Base class of the zoo's models; see docs/api.md for the contract it implements."""

    __constants__ = ("classifier_name",)  # TorchScript reads it as a constant (forward_classifier)
    block_prefix: str = ""  # names of the Inception modules start with this ("Mixed_", "inception")
    classifier_name: str = "fc"  # the final classifier's attribute (timm's Inception-v4 calls it "last_linear")
    layer_container: str = ""  # the nn.Sequential holding the layers, where a family keeps them in one ("features")
    config_class: Any = None  # the family's config dataclass, whose default instance builds the default network

    def begin_init(self, arguments: dict[str, Any]) -> Any:
        """The opening of every family's ``__init__``, given its ``locals()``: check the arguments, initialise the
        module, apply keyword config overrides to ``config`` (or the family's default) and keep the head
        arguments. Returns the config the layers are built from."""
        check_model_arguments(type(self), arguments)
        nn.Module.__init__(self)
        config = replace_config(arguments["config"] or self.config_class(), arguments["config_overrides"])
        self.config = config
        self.num_classes = arguments["num_classes"]
        self.in_chans = arguments["in_chans"]
        self.drop_rate = arguments["drop_rate"]
        if "aux_logits" in arguments:
            self.aux_logits = arguments["aux_logits"]
        return config

    def finish_init(
        self,
        num_features: int,
        num_classes: int,
        global_pool: str,
        drop_rate: float,
        feature_info: list[dict[str, Any]],
        aux_taps: dict[str, str],
    ) -> None:
        """Create the classifier and derive the feature taps, parameter groups and minimum input sizes.

        ``aux_taps`` maps each auxiliary head's attribute name to the layer whose output it reads.
        """
        self.num_features = self.head_hidden_size = num_features
        check_head_arguments(num_classes, global_pool)
        self.global_pool, self.head_drop, classifier = create_classifier(
            num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate
        )
        setattr(self, self.classifier_name, classifier)
        self.grad_checkpointing = False
        # an empty buffer that follows the weights through .to() / .half(), so forward can name a dtype mismatch
        self.register_buffer("dtype_reference", torch.empty(0), persistent=False)
        # layers in forward order (aux heads and the head excluded), and where the feature taps are
        head = {"global_pool", "head_drop", self.classifier_name, *aux_taps}
        if self.layer_container:
            container = getattr(self, self.layer_container)
            self.layer_names = [f"{self.layer_container}.{name}" for name, _ in container.named_children()]
        else:
            self.layer_names = [name for name, _ in self.named_children() if name not in head]
        self.feature_info = feature_info
        self.feature_ends = [self.layer_names.index(info["module"]) for info in feature_info]
        self.aux_taps = {name: tap for name, tap in aux_taps.items() if getattr(self, name, None) is not None}
        self.declared_aux_heads = tuple(aux_taps)  # built or not (aux_logits=False), for checkpoint loading

        layers = [self.get_submodule(name) for name in self.layer_names]
        height, width = minimum_input_size(layers)
        self.features_min_size = (height, width)
        for aux_name, tap in self.aux_taps.items():
            before = layers[: self.layer_names.index(tap) + 1]
            aux_height, aux_width = minimum_input_size([*before, getattr(self, aux_name)])
            height, width = max(height, aux_height), max(width, aux_width)
        self.min_input_size = (height, width)
        self.min_height, self.min_width = height, width

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Any:
        """Map a parameter name to its group, for layer-wise learning-rate decay: 0 for the stem, then one group per
        Inception module (per grid stage with ``coarse=True``), the classifier last. Aux heads join their tap."""
        blocks = [n for n in self.layer_names if n.startswith(self.block_prefix)]
        stages = list(dict.fromkeys(n[:-1] for n in blocks))  # "Mixed_5b" -> "Mixed_5", "inception3a" -> "inception3"
        first_block = self.layer_names.index(blocks[0])

        def matcher(name: str) -> float:
            top = name.split(".")[0] if not self.layer_container else ".".join(name.split(".")[:2])
            top = self.aux_taps.get(top, top)
            if top in blocks:
                return 1 + (stages.index(top[:-1]) if coarse else blocks.index(top))
            if top in self.layer_names:
                index = self.layer_names.index(top)
                if index < first_block:
                    return 0
                # a layer between modules (a pool or a norm) joins the module before it
                previous = [n for n in self.layer_names[:index] if n in blocks][-1]
                return 1 + (stages.index(previous[:-1]) if coarse else blocks.index(previous))
            return float("inf")

        return matcher

    def _stem_then_layer_groups(self, stem_layers: int, coarse: bool) -> Any:
        """timm's groups for a network whose container runs a stem, then one layer per group: the first
        ``stem_layers`` layers are group 0, each later layer its own group (with ``coarse=True``, one group per
        feature tap's stage), the classifier last."""
        stem = self.layer_names[:stem_layers]

        def matcher(name: str) -> float:
            layer = ".".join(name.split(".")[:2])
            if layer in stem:
                return 0
            if layer in self.layer_names:
                index = self.layer_names.index(layer)
                if coarse:  # a stage ends at each feature tap
                    return 1 + sum(index > end for end in self.feature_ends)
                return index - len(stem) + 1
            return float("inf")

        return matcher

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them (saves memory)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def run_layers(self, start: str, end: str, x: torch.Tensor) -> torch.Tensor:
        """Run the layers from ``start`` to ``end`` (inclusive) in order, checkpointing them when enabled."""
        names = self.layer_names[self.layer_names.index(start) : self.layer_names.index(end) + 1]
        for name in names:
            layer = self.get_submodule(name)
            if self.grad_checkpointing and torch.is_grad_enabled() and any(p.requires_grad for p in layer.parameters()):
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x

    @torch.jit.ignore
    def classifier_names(self) -> list[str]:
        """The module names of every classifier: the head's ``fc`` and each auxiliary head's."""
        return [self.classifier_name, *(f"{aux}.{getattr(self, aux).classifier_name}" for aux in self.aux_taps)]

    @torch.jit.ignore
    def aux_head_names(self) -> list[str]:
        """The attribute names of the auxiliary heads this family has when built with ``aux_logits=True``
        (``AuxLogits``; ``aux1``, ``aux2``), whether this model has them or not: a checkpoint's keys under them are
        dropped when the model was built without them."""
        return list(self.declared_aux_heads)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The final classifier (``fc``; ``nn.Identity`` after ``reset_classifier(0)``), as in timm."""
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier and every auxiliary head's classifier for ``num_classes``; 0 removes them."""
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        check_head_arguments(num_classes, global_pool)
        self.num_classes = num_classes
        self.global_pool, classifier = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        setattr(self, self.classifier_name, classifier)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        for aux_name in self.aux_taps:
            getattr(self, aux_name).reset_classifier(num_classes)

    def check_input(self, x: torch.Tensor, aux_heads: bool = False) -> None:
        """Raise an error in words unless ``x`` is a batch this model takes: its channels, its weights' dtype and at
        least ``features_min_size`` (``min_input_size`` with ``aux_heads=True``, for a forward that runs them)."""
        height, width = self.min_input_size if aux_heads else self.features_min_size
        check_image_input(x, self.in_chans, height, width, self.dtype_reference)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout and classify the map of ``forward_features``; ``pre_logits=True`` stops before the
        classifier."""
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.forward_classifier(x)

    def forward_classifier(self, x: torch.Tensor) -> torch.Tensor:
        """The final classifier (``get_classifier()``, the child named ``classifier_name``) on pooled features; a
        family whose logits differ from the classifier's output (a scale) overrides this, not ``forward_head``.

        TorchScript cannot look a module up by a name held in a variable, so the children are searched by name:
        eager mode, fx and torch.export see one call of the classifier, and TorchScript, to which the child names
        and ``classifier_name`` are constants, compiles the search down to that one call."""
        for name, module in self.named_children():
            if name == self.classifier_name:
                return module(x)
        raise AttributeError("the model has no module named by its classifier_name")

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the network and also return the feature maps at the ``feature_info`` taps (timm's API).

        ``indices``: the last n taps if an int, these taps if a list, all if None. ``norm`` is accepted for
        timm compatibility (these networks have no final norm layer). Auxiliary heads are not run.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        self.check_input(x)
        indices = check_feature_indices(self.feature_info, indices, "indices")
        take_indices, max_index = feature_take_indices(len(self.feature_ends), indices)
        take_ends = {self.feature_ends[i] for i in take_indices}
        names = self.layer_names[: self.feature_ends[max_index] + 1] if stop_early else self.layer_names
        intermediates = []
        for i, name in enumerate(names):
            x = self.get_submodule(name)(x)
            if i in take_ends:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the layers after the last tap in ``indices`` (and the head), for a lean feature backbone."""
        indices = check_feature_indices(self.feature_info, indices, "indices")
        take_indices, max_index = feature_take_indices(len(self.feature_ends), indices)
        for name in self.layer_names[self.feature_ends[max_index] + 1 :]:
            parent, _, child = name.rpartition(".")
            setattr(self.get_submodule(parent) if parent else self, child, nn.Identity())
        if max_index < len(self.feature_ends) - 1:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
            prune_head = True
        if prune_head:
            for aux_name in self.aux_taps:
                setattr(self, aux_name, None)
            self.aux_taps = {}
            self.aux_logits = False
            self.reset_classifier(0, "")
        return take_indices
