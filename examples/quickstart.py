"""A first tour of inceptionzoo, offline: build models by name, check them against timm and torchvision,
extract features, and save/load a checkpoint.

    python examples/quickstart.py
"""

import tempfile
from pathlib import Path

import timm
import torch
import torchvision

import inceptionzoo


def main() -> None:
    torch.manual_seed(0)
    print("registered models:", ", ".join(inceptionzoo.list_models()))
    print("with published weights:", ", ".join(inceptionzoo.list_pretrained()) or "none yet")

    model = inceptionzoo.create_model("inception_v3", num_classes=10).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"\ninception_v3 for 10 classes: {params:,} parameters, minimum input {model.min_input_size}")
    with torch.no_grad():
        print("logits:", tuple(model(torch.randn(2, 3, 299, 299)).shape))

    # the same weights give the same logits in timm and torchvision
    theirs = timm.create_model("inception_v3", num_classes=10)
    theirs.load_state_dict(model.state_dict())
    tv = torchvision.models.inception_v3(
        weights=None, num_classes=10, aux_logits=False, transform_input=False, init_weights=False
    )
    tv.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        ours = model(x)
        for label, other in (("timm", theirs.eval()), ("torchvision", tv.eval())):
            diff = ((other(x) - ours).abs().max() / ours.abs().max()).item()
            print(f"max relative difference to {label}: {diff:.1e}")

    # feature maps at every grid size
    backbone = inceptionzoo.create_model("inception_v3", features_only=True, out_indices=(2, 3, 4)).eval()
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 299, 299))
    print("\nfeature maps:", [tuple(m.shape) for m in maps])
    print("channels:", backbone.feature_info.channels(), "reductions:", backbone.feature_info.reduction())

    # a training-mode model with its auxiliary head returns the same type in train and eval mode
    with_aux = inceptionzoo.create_model("inception_v3", aux_logits=True, num_classes=10)
    out = with_aux.train()(torch.randn(2, 3, 299, 299))
    print("\nwith aux_logits=True:", type(out).__name__, tuple(out.logits.shape), tuple(out.aux_logits.shape))

    # weights round-trip through a local safetensors file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inception_v3.safetensors"
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
        reloaded = inceptionzoo.create_model("inception_v3", num_classes=10, checkpoint_path=path).eval()
        with torch.no_grad():
            same = torch.equal(reloaded(x), ours)
        print("\nreloaded from", path.name, "gives identical logits:", same)

    # errors say what is wrong
    for call in (
        lambda: inceptionzoo.create_model("inceptoin_v3"),
        lambda: model(torch.randn(1, 3, 64, 64)),
    ):
        try:
            call()
        except ValueError as error:
            print("error:", error)


if __name__ == "__main__":
    main()
