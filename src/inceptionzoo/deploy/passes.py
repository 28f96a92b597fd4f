"""The inference fast path: ``optimize_for_inference(model)`` returns a copy that computes the same function faster.

Four rewrites, each exact up to floating-point rounding:

1. BatchNorm folded into the convolution before it (torch's ``fuse_conv_bn_eval``), removing a memory pass per layer;
   also across a max pool (convolutions, pool, norm), where every channel's scale is positive.
2. The ReLU after each convolution runs inside it, as a oneDNN post-op (``ConvReLU2d``), removing another pass.
3. The 1x1 convolutions that open an Inception module's branches all read the module's input; they are merged into
   one convolution whose output is split by channel (a torch.fx pass). One large matrix product runs much closer to
   the CPU's peak than three or four thin ones, the "horizontal fusion" of inference compilers.
4. channels_last memory layout (what oneDNN's convolutions want), optionally bf16 weights and activations, and
   optionally ``torch.compile`` (which does 2 itself, so it gets the graph without it).
"""

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

from ..layers import ConvNormAct, ParallelBranches

__all__ = [
    "ConvReLU2d",
    "InferenceModel",
    "fold_batchnorm",
    "fuse_relu",
    "keep_model_attributes",
    "merge_parallel_convolutions",
]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``ConvNormAct``'s BatchNorm into its convolution, in place; ``model`` must be in eval mode."""
    if model.training:
        raise ValueError("fold_batchnorm needs an eval-mode model (call model.eval()): it uses the running statistics")
    for module in model.modules():
        if isinstance(module, ConvNormAct) and isinstance(module.bn, nn.BatchNorm2d):
            if module.bn.running_mean is None:
                continue  # no running statistics to fold (track_running_stats=False)
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
        if isinstance(module, nn.Sequential):
            _fold_batchnorm_after_max_pool(module)
    return model


def _fold_batchnorm_after_max_pool(sequence: nn.Sequential) -> None:
    """Fold a BatchNorm that follows ``convolutions -> MaxPool2d`` (``InceptionConvGroup``'s order) into those
    convolutions: a max pool commutes with a per-channel affine map whose scale is positive, so the fold is exact
    there; a norm with a scale of zero or below is left in place. torch's fusion has no such pass."""
    children = list(sequence.named_children())
    for (_, producer), (_, pool), (norm_name, norm) in zip(children, children[1:], children[2:], strict=False):
        if not (isinstance(pool, nn.MaxPool2d) and isinstance(norm, nn.BatchNorm2d) and norm.running_mean is not None):
            continue
        convolutions = _final_convolutions(producer)
        if convolutions is None or sum(conv.out_channels for conv in convolutions) != norm.num_features:
            continue
        weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
        if not bool((weight > 0).all()):
            continue
        start = 0
        for conv in convolutions:
            end = start + conv.out_channels
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, norm.running_mean[start:end], norm.running_var[start:end], norm.eps,
                weight[start:end], None if norm.bias is None else norm.bias[start:end],
            )  # fmt: skip
            start = end
        setattr(sequence, norm_name, nn.Identity())


def _final_convolutions(module: nn.Module) -> list[nn.Conv2d] | None:
    """The convolutions whose outputs, concatenated in order, are ``module``'s output, when nothing (no norm, no
    activation) follows them; otherwise None."""
    if isinstance(module, nn.Conv2d):
        return [module]
    if isinstance(module, ConvNormAct):
        plain = isinstance(module.bn, nn.Identity) and isinstance(module.act, nn.Identity)
        return [module.conv] if plain else None
    if isinstance(module, nn.Sequential) and len(module):
        return _final_convolutions(module[-1])
    if isinstance(module, ParallelBranches):
        found = [_final_convolutions(branch) for branch in module.children()]
        return None if any(f is None for f in found) else [conv for f in found for conv in f]
    return None


class ConvReLU2d(nn.Conv2d):
    """A convolution followed by ReLU, computed in one oneDNN call (ReLU as a post-op) on CPU where oneDNN runs it;
    elsewhere, and for layouts or dtypes oneDNN does not take, the two ordinary ops."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "ConvReLU2d":
        fused = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None, conv.padding_mode, device="meta")  # fmt: skip
        fused.weight, fused.bias = conv.weight, conv.bias  # the same parameters, not copies
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_runs(x, self.weight) and isinstance(self.padding, tuple):
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "relu", [], ""
            )
        return torch.relu(self._conv_forward(x, self.weight, self.bias))


def _onednn_runs(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dtype == weight.dtype
        and not torch.jit.is_scripting()
        and x.dim() == 4
    )


def fuse_relu(graph: fx.GraphModule) -> int:
    """Replace each convolution whose only use is a ReLU (``nn.ReLU``, ``F.relu`` or ``torch.relu``), possibly
    through ``nn.Identity`` left by BatchNorm folding, by one ``ConvReLU2d``; returns how many. In place."""
    modules = dict(graph.named_modules())

    def only_user(node: fx.Node) -> fx.Node | None:
        return next(iter(node.users)) if len(node.users) == 1 else None

    def is_module(node: fx.Node | None, kind: type) -> bool:
        return node is not None and node.op == "call_module" and isinstance(modules[node.target], kind)

    fused = 0
    for node in list(graph.graph.nodes):
        if not is_module(node, nn.Conv2d) or type(modules[node.target]) is not nn.Conv2d:
            continue
        user, passed = only_user(node), []
        while is_module(user, nn.Identity):
            passed.append(user)
            user = only_user(user)
        relu = is_module(user, nn.ReLU) or (
            user is not None and user.op == "call_function" and user.target in (F.relu, torch.relu, torch.relu_)
        )
        if not relu:
            continue
        parent, _, name = node.target.rpartition(".")
        setattr(graph.get_submodule(parent) if parent else graph, name, ConvReLU2d.from_conv(modules[node.target]))
        user.replace_all_uses_with(node)
        for dead in [user, *reversed(passed)]:
            graph.graph.erase_node(dead)
        fused += 1
    graph.graph.lint()
    graph.delete_all_unused_submodules()
    graph.recompile()
    return fused


def _is_pointwise_conv(module: nn.Module) -> bool:
    return (
        type(module) in (nn.Conv2d, ConvReLU2d)
        and module.kernel_size == (1, 1)
        and module.stride == (1, 1)
        and module.padding in ((0, 0), "valid")
        and module.dilation == (1, 1)
        and module.groups == 1
    )


def merge_parallel_convolutions(graph: fx.GraphModule) -> int:
    """Merge the 1x1 convolutions that read the same tensor into one, followed by a split; returns how many merged.

    Works on a traced model (``torch.fx.symbolic_trace``), in place.
    """
    modules = dict(graph.named_modules())
    groups: dict[tuple[fx.Node, type], list[fx.Node]] = {}
    for node in graph.graph.nodes:
        if node.op == "call_module" and _is_pointwise_conv(modules[node.target]) and len(node.args) == 1:
            groups.setdefault((node.args[0], type(modules[node.target])), []).append(node)
    merged = 0
    for (source, kind), convs in groups.items():
        if len(convs) < 2:
            continue
        layers = [modules[node.target] for node in convs]
        weight = torch.cat([layer.weight for layer in layers])
        biases = [layer.weight.new_zeros(layer.out_channels) if layer.bias is None else layer.bias for layer in layers]
        fused = kind(weight.shape[1], weight.shape[0], 1, bias=True).to(weight.device, weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(weight)
            fused.bias.copy_(torch.cat(biases))
        name = f"{convs[0].target.replace('.', '_')}_merged"
        graph.add_submodule(name, fused)
        sizes = [layer.out_channels for layer in layers]
        with graph.graph.inserting_before(convs[0]):
            merged_node = graph.graph.call_module(name, (source,))
            parts = graph.graph.call_function(torch.split, (merged_node, sizes), {"dim": 1})
            for index, node in enumerate(convs):
                part = graph.graph.call_function(operator.getitem, (parts, index))
                node.replace_all_uses_with(part)
        for node in convs:
            graph.graph.erase_node(node)
        merged += len(convs)
    graph.graph.lint()
    graph.delete_all_unused_submodules()
    graph.recompile()
    return merged


def keep_model_attributes(target: nn.Module, source: nn.Module | None) -> None:
    """Copy the attributes people read from zoo models (``pretrained_cfg``, ``num_classes``, ...) onto a rewritten,
    quantized or exported stand-in for it."""
    for name in ("pretrained_cfg", "default_cfg", "num_classes", "num_features", "min_input_size", "in_chans"):
        if source is not None and hasattr(source, name):
            setattr(target, name, getattr(source, name))


class InferenceModel(nn.Module):
    """A rewritten model that takes and returns what the original does: float inputs in any layout, float outputs."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None, source: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        keep_model_attributes(self, source)

    def forward(self, x: torch.Tensor) -> Any:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is not None:
            x = x.to(self.dtype)
        out = self.model(x)
        if self.dtype is None:
            return out
        if isinstance(out, tuple):
            return type(out)(*(o.float() if isinstance(o, torch.Tensor) else o for o in out))
        return out.float()
