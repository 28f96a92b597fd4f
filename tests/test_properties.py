"""Property-based tests over what callers pass: ``create_model`` arguments, and inputs of every shape, dtype and
layout. Each case either works or raises one of the library's own errors, raised by inceptionzoo's code (not from
deep inside torch or timm) with a message that names what was wrong.

One case is left to torch on purpose: a training-mode forward of a single image small enough that a BatchNorm
layer sees one value per channel, which torch itself refuses in words ("Expected more than 1 value per channel
when training"); training-mode cases below use at least two images.
"""

import math
import traceback
from pathlib import Path

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import inceptionzoo
from conftest import MODEL_NAMES

PACKAGE = Path(inceptionzoo.__file__).resolve().parent
LIBRARY_ERRORS = (
    TypeError,
    ValueError,
    FileNotFoundError,
    inceptionzoo.CheckpointError,
    inceptionzoo.WeightsDownloadError,
)
# the CIFAR-size models build in milliseconds; the others are sampled less often to keep the tests quick
SMALL = [name for name in MODEL_NAMES if name.endswith("_cifar")]
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def assert_library_error(error: BaseException, *words: str) -> None:
    """``error`` is one of the library's error types, raised by inceptionzoo's own code, and says something."""
    event(f"raised {type(error).__name__}")
    assert isinstance(error, LIBRARY_ERRORS), f"{type(error).__name__}: {error}"
    origin = Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve()
    assert PACKAGE in origin.parents, f"raised from {origin}, not by inceptionzoo: {type(error).__name__}: {error}"
    message = str(error)
    assert len(message) > 20, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


WRONG_KIND = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.lists(st.integers(-6, 6), max_size=3),
    st.just(object()),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)

# values a caller may mean ...
VALID = {
    "num_classes": st.integers(0, 20),
    "in_chans": st.integers(1, 5),
    "drop_rate": st.floats(0.0, 1.0),
    "global_pool": st.sampled_from(["avg", "max", "avgmax", "catavgmax", "fast", "AVG"]),
    "aux_logits": st.booleans(),
    "features_only": st.booleans(),
    "out_indices": st.one_of(st.none(), st.integers(1, 5), st.lists(st.integers(-5, 4), min_size=1, max_size=3)),
    "width_multiplier": st.floats(0.05, 0.5),
    "norm_layer": st.sampled_from(["batchnorm2d", "layernorm2d", "groupnorm1", None]),
    "act_layer": st.sampled_from(["relu", "gelu", "silu", None]),
    "norm_eps": st.floats(1e-6, 1e-2),
    "pretrained_cfg_overlay": st.sampled_from([None, {"crop_pct": 1.0}]),
}
# ... and values that are wrong: of the wrong kind, out of range, or names that do not exist
INVALID = {
    "model_name": st.one_of(st.text(max_size=12), st.integers(), st.none()),
    "num_classes": st.one_of(st.integers(-5, -1), st.floats(0.5, 9.5), WRONG_KIND),
    "in_chans": st.one_of(st.integers(-3, 0), st.floats(0.5, 4.5), WRONG_KIND),
    "drop_rate": st.one_of(st.floats(-2.0, -0.01), st.floats(1.01, 3.0), WRONG_KIND),
    "global_pool": st.one_of(st.sampled_from(["mean", "gem", "avg ", "fastmean"]), st.integers(), WRONG_KIND),
    "aux_logits": st.one_of(st.integers(0, 2), WRONG_KIND),
    "features_only": st.one_of(st.integers(0, 2), WRONG_KIND),
    "pretrained": st.one_of(st.integers(0, 2), st.just(True), WRONG_KIND),
    "out_indices": st.one_of(
        st.integers(-3, 0), st.integers(6, 9), st.just([]), st.lists(st.integers(5, 9), min_size=1)
    ),
    "width_multiplier": st.one_of(st.floats(-4.0, 0.0), WRONG_KIND),
    "norm_layer": st.one_of(st.sampled_from(["bogus", "groupnorm"]), st.integers(), st.just(object())),
    "act_layer": st.one_of(st.sampled_from(["bogus", "ReLU "]), st.integers(), st.just(object())),
    "norm_eps": st.one_of(st.floats(-1.0, 0.0), WRONG_KIND),
    "checkpoint_path": st.one_of(st.just("missing.safetensors"), st.integers(), st.lists(st.text(max_size=3))),
    "pretrained_cfg_overlay": st.one_of(st.just({"bogus": 1}), st.integers(), st.text(max_size=3)),
    "no_such_argument": st.integers(),
}


@st.composite
def create_model_calls(draw) -> tuple[str, dict]:
    """A model name and keyword arguments: valid ones, and at most one wrong one."""
    name = draw(st.sampled_from(SMALL * 5 + [name for name in MODEL_NAMES if name not in SMALL]))
    arguments = draw(st.fixed_dictionaries({}, optional=VALID))
    if name not in SMALL:  # keep the big networks small
        arguments.setdefault("width_multiplier", 0.125)
    if draw(st.booleans()):
        wrong = draw(st.sampled_from(sorted(INVALID)))
        value = draw(INVALID[wrong])
        if wrong == "model_name":
            name = value
        else:
            arguments[wrong] = value
    return name, arguments


@PROPERTY_SETTINGS
@given(call=create_model_calls())
def test_create_model_arguments_work_or_raise_the_librarys_error(call):
    name, arguments = call
    try:
        model = inceptionzoo.create_model(name, **arguments)
    except LIBRARY_ERRORS as error:
        assert_library_error(error)
        return
    # what was accepted builds a model that runs on an input of its minimum size
    event("built and ran")
    assert "no_such_argument" not in arguments
    model.eval()
    height, width = getattr(model, "min_input_size", None) or (model.min_height, model.min_width)
    with torch.no_grad():
        out = model(torch.randn(2, model.in_chans, height, width))
    outputs = out if isinstance(out, (list, tuple)) else [out]
    assert all(torch.isfinite(o).all() for o in outputs)


MODEL_NAME_MISTAKES = st.one_of(
    st.text(max_size=30),
    st.builds("{}{}".format, st.sampled_from(MODEL_NAMES), st.text(max_size=8)),
    st.builds("{}.{}".format, st.sampled_from(MODEL_NAMES), st.text(max_size=8)),
    st.builds("{}:{}".format, st.sampled_from(["hf-hub", "local-dir", "timm", "http"]), st.text(max_size=12)),
    st.sampled_from(
        ["inception_v3.", "inception_v3..x", "hf-hub:", "local-dir:", "../inception_v3", "/", "Inception_V3"]
    ),
)


@PROPERTY_SETTINGS
@given(name=MODEL_NAME_MISTAKES)
def test_any_model_name_works_or_raises_the_librarys_error(name):
    try:
        inceptionzoo.create_model(name)
    except LIBRARY_ERRORS as error:
        assert_library_error(error)
    else:
        event("built")
        from inceptionzoo._registry import canonical_model_name

        # a registered name, or an alias of one (torchvision's googlenet, timm's retired names)
        assert canonical_model_name(name).split(".")[0] in inceptionzoo.list_models()


# one model per family, CIFAR-size, built once; not conftest's shared_model, because each case changes its dtype
MODELS = {name: inceptionzoo.create_model(name).eval() for name in SMALL}
MIN_SIZES = {name: model.min_input_size for name, model in MODELS.items()}
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
NOT_FLOATS = [torch.uint8, torch.int64, torch.bool, torch.cfloat]


@st.composite
def model_inputs(draw) -> dict:
    """How to call a model and on what: a batch it can take, then, half the time, one thing about it made wrong."""
    name = draw(st.sampled_from(SMALL))
    call = draw(st.sampled_from(["forward", "forward_features", "forward_intermediates", "train"]))
    model_dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
    autocast = draw(st.booleans())  # under autocast any floating dtype but float64 is taken
    height, width = MIN_SIZES[name]
    shape = [draw(st.integers(2 if call == "train" else 0, 3)), 3]
    shape += [height + draw(st.integers(0, 24)), width + draw(st.integers(0, 24))]
    dtype = model_dtype
    if autocast and model_dtype != torch.float64:
        dtype = draw(st.sampled_from([d for d in FLOATS if d != torch.float64]))
    wrong = draw(st.sampled_from([None, None, None, "dims", "channels", "height", "width", "dtype"]))
    if wrong == "dims":
        dims = draw(st.sampled_from([1, 2, 3, 5]))
        shape = shape[:dims] if dims < 4 else [*shape, 2]
    elif wrong == "channels":
        shape[1] = draw(st.sampled_from([1, 2, 4, 5]))
    elif wrong == "height":
        shape[2] = draw(st.integers(1, height - 1))
    elif wrong == "width":
        shape[3] = draw(st.integers(1, width - 1))
    elif wrong == "dtype":
        dtype = draw(st.sampled_from(NOT_FLOATS + [d for d in FLOATS if d != dtype]))
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided"]))
    return {"name": name, "call": call, "model_dtype": model_dtype, "autocast": autocast, "shape": shape,
            "dtype": dtype, "layout": layout}  # fmt: skip


@PROPERTY_SETTINGS
@given(spec=model_inputs())
def test_any_input_works_or_raises_the_librarys_error(spec):
    model = MODELS[spec["name"]].to(spec["model_dtype"])
    x = (torch.rand(spec["shape"]) * 255).to(spec["dtype"])
    if spec["layout"] == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif spec["layout"] == "strided":
        x = torch.repeat_interleave(x, 2, dim=-1)[..., ::2]
    call = spec["call"]
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec["autocast"]):
            if call == "train":
                out = model.train()(x)
            elif call == "forward_intermediates":
                out, _ = model.forward_intermediates(x)
            else:
                with torch.no_grad():
                    out = getattr(model, call)(x)
    except LIBRARY_ERRORS as error:
        assert_library_error(error)
        return
    finally:
        model.eval()
    event(f"ran {call}")
    # it worked: the input was a floating batch of the right shape, in the weights' dtype or under autocast
    height, width = MIN_SIZES[spec["name"]]
    assert x.dim() == 4 and x.shape[1] == 3 and x.shape[2] >= height and x.shape[3] >= width
    assert x.is_floating_point()
    assert x.dtype == spec["model_dtype"] or (spec["autocast"] and torch.float64 not in (x.dtype, spec["model_dtype"]))
    assert out.shape[0] == x.shape[0] and torch.isfinite(out.float()).all()
