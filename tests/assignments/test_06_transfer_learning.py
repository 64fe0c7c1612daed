"""06_transfer_learning: realistic wrong implementations lose points on the intended checks, and
other correct implementations get full marks.

Every function is graded on its own cell only (``check_code(..., cells=[cell])``), on top of the
reference notebook's namespace, with the STAND-IN AlexNet weights of the ``standin_torch_home``
fixture (the real torchvision loading path runs on them). The hidden train_head check computes its
Fashion-MNIST features once per content hash and caches them (``ref.memo``); the first test that
needs them pays for that.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from autograder.grading.from_source import check_code

AID = "06_transfer_learning"


@dataclass(frozen=True)
class Variant:
    label: str
    source: str
    fails: tuple[str, ...]           # checks that must fail
    passes: tuple[str, ...] = ()     # checks that must still pass (one behaviour per check)


def src(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def grade(source: str, cell: str):
    return check_code(AID, source, cells=[cell])


def assert_loses_points(results, variant: Variant):
    assert results, "no checks ran"
    errors = {n: r.message for n, r in results.items() if r.status == "error"}
    assert not errors, f"checks broke on {variant.label}: {errors}"
    status = {n: r.status for n, r in results.items()}
    for name in variant.fails:
        assert status.get(name) == "failed", f"{variant.label}: {name} should fail, got {status.get(name)}"
        assert results[name].message.strip(), f"{variant.label}: {name} failed without a message"
    for name in variant.passes:
        assert status.get(name) == "passed", f"{variant.label}: {name} should pass, got {status.get(name)}: " \
                                             f"{results[name].message if name in results else ''}"
    earned = sum(r.points for r in results.values())
    assert earned < sum(r.max_points for r in results.values())


def assert_full_marks(results, label: str):
    assert results
    bad = {n: f"{r.status}: {r.message[:300]}" for n, r in results.items() if not r.passed}
    assert not bad, f"{label} should get full marks: {bad}"


# ================================================================================================ load_alexnet
LOAD_CELL = "test_load_alexnet"
WRONG_LOAD = [
    Variant("training mode (no .eval())", src("""
        def load_alexnet(pretrained=True):
            return torchvision.models.alexnet(weights=AlexNet_Weights.IMAGENET1K_V1 if pretrained else None)
    """), fails=("test_load_alexnet_is_in_eval_mode",),
        passes=("test_load_alexnet_has_the_checkpoint_weights", "test_load_alexnet_without_pretrained_weights")),
    Variant("never loads the weights", src("""
        def load_alexnet(pretrained=True):
            return torchvision.models.alexnet().eval()
    """), fails=("test_load_alexnet_has_the_checkpoint_weights",), passes=("test_load_alexnet_is_in_eval_mode",)),
    Variant("ignores pretrained=False", src("""
        def load_alexnet(pretrained=True):
            return torchvision.models.alexnet(weights=AlexNet_Weights.IMAGENET1K_V1).eval()
    """), fails=("test_load_alexnet_without_pretrained_weights",),
        passes=("test_load_alexnet_has_the_checkpoint_weights",)),
    Variant("one cached global model", src("""
        _ALEXNETS = {}
        def load_alexnet(pretrained=True):
            if pretrained not in _ALEXNETS:
                _ALEXNETS[pretrained] = torchvision.models.alexnet(
                    weights=AlexNet_Weights.IMAGENET1K_V1 if pretrained else None).eval()
            return _ALEXNETS[pretrained]
    """), fails=("test_load_alexnet_returns_a_new_model_each_call",),
        passes=("test_load_alexnet_has_the_checkpoint_weights",)),
]
RIGHT_LOAD = [
    ("DEFAULT weights, train(False)", src("""
        def load_alexnet(pretrained=True):
            model = torchvision.models.alexnet(weights=AlexNet_Weights.DEFAULT if pretrained else None)
            model.train(False)
            return model
    """)),
    ("state dict loaded by hand", src("""
        def load_alexnet(pretrained=True):
            model = torchvision.models.AlexNet()
            if pretrained:
                state = torch.hub.load_state_dict_from_url(AlexNet_Weights.IMAGENET1K_V1.url, progress=False)
                model.load_state_dict(state)
            return model.eval()
    """)),
    # issue 18: a subclass of torchvision's AlexNet is an AlexNet
    ("an AlexNet subclass", src("""
        class CourseAlexNet(torchvision.models.AlexNet):
            pass  # AlexNet with a name of our own
        def load_alexnet(pretrained=True):
            model = CourseAlexNet(num_classes=1000)
            if pretrained:
                model.load_state_dict(AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False))
            return model.eval()
    """)),
]


@pytest.mark.parametrize("variant", WRONG_LOAD, ids=lambda v: v.label)
def test_wrong_load_alexnet_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, LOAD_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_LOAD, ids=[r[0] for r in RIGHT_LOAD])
def test_other_correct_load_alexnet_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, LOAD_CELL), label)


# ================================================================================================ to_nchw
NCHW_CELL = "test_to_nchw"
CHECK_IMG = """
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(img))
    if t.ndim != 3 or t.shape[-1] != 3:
        raise ValueError("expected (H, W, 3)")
    if t.dtype != torch.uint8:
        raise TypeError("expected uint8")
"""
WRONG_NCHW = [
    Variant("reshape instead of permute", src("def to_nchw(img):" + CHECK_IMG + """
    return t.reshape(1, 3, t.shape[0], t.shape[1]).float() / 255
    """), fails=("test_to_nchw_small_example", "test_to_nchw_non_square_images", "test_to_nchw_matches_reference"),
        passes=("test_to_nchw_rejects_channels_first", "test_to_nchw_rejects_float_images")),
    Variant("forgets / 255", src("def to_nchw(img):" + CHECK_IMG + """
    return t.permute(2, 0, 1).unsqueeze(0).float()
    """), fails=("test_to_nchw_small_example", "test_to_nchw_non_square_images", "test_to_nchw_matches_reference")),
    Variant("float64 from numpy division", src("def to_nchw(img):" + CHECK_IMG + """
    return torch.from_numpy(t.numpy() / 255).permute(2, 0, 1).unsqueeze(0)
    """), fails=("test_to_nchw_small_example", "test_to_nchw_non_square_images")),
    Variant("no batch axis", src("def to_nchw(img):" + CHECK_IMG + """
    return t.permute(2, 0, 1).float() / 255
    """), fails=("test_to_nchw_small_example", "test_to_nchw_non_square_images", "test_to_nchw_matches_reference")),
    Variant("no input validation", src("""
        def to_nchw(img):
            t = torch.as_tensor(np.array(img))
            return t.permute(2, 0, 1).unsqueeze(0).float() / 255
    """), fails=("test_to_nchw_rejects_channels_first", "test_to_nchw_rejects_float_images"),
        passes=("test_to_nchw_small_example", "test_to_nchw_non_square_images")),
]
RIGHT_NCHW = [
    ("torchvision to_tensor", src("""
        import torchvision.transforms.functional as TF
        def to_nchw(img):
            a = np.asarray(img)
            if a.ndim != 3 or a.shape[-1] != 3:
                raise ValueError(f"need (H, W, 3), got {a.shape}")
            if a.dtype != np.uint8:
                raise TypeError(f"need uint8, got {a.dtype}")
            return TF.to_tensor(a.copy())[None]
    """)),
    ("movedim and div", src("""
        def to_nchw(img):
            if len(img.shape) != 3 or img.shape[2] != 3:
                raise ValueError("to_nchw: shape must be (H, W, 3)")
            if str(img.dtype) not in ("uint8", "torch.uint8"):
                raise TypeError("to_nchw: dtype must be uint8")
            t = torch.tensor(np.array(img))
            return t.movedim(-1, 0)[None].to(torch.float32).div(255)
    """)),
]


@pytest.mark.parametrize("variant", WRONG_NCHW, ids=lambda v: v.label)
def test_wrong_to_nchw_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, NCHW_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_NCHW, ids=[r[0] for r in RIGHT_NCHW])
def test_other_correct_to_nchw_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, NCHW_CELL), label)


# ================================================================================================ preprocess
PRE_CELL = "test_preprocess"


def preprocess_with(mean: str, std: str, *, mode: str = '"bilinear", align_corners=False, antialias=True',
                    grey: str = "x = x.repeat(1, 3, 1, 1)") -> str:
    return src(f"""
        def preprocess(x):
            if x.ndim != 4 or x.shape[1] not in (1, 3):
                raise ValueError("bad shape")
            if x.shape[1] == 1:
                {grey}
            x = F.interpolate(x, size=(224, 224), mode={mode})
            mean = torch.tensor({mean}).view(1, -1, 1, 1)
            std = torch.tensor({std}).view(1, -1, 1, 1)
            return (x - mean) / std
    """)


IMNET = "[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]"
NORMALISATION_CHECKS = ("test_preprocess_normalises_with_imagenet_statistics", "test_preprocess_repeats_grey_images",
                        "test_preprocess_matches_reference")
WRONG_PRE = [
    Variant("normalised with 0.5 / 0.5", preprocess_with("[0.5, 0.5, 0.5]", "[0.5, 0.5, 0.5]"),
            fails=NORMALISATION_CHECKS, passes=("test_preprocess_output_shape",)),
    Variant("not normalised", preprocess_with("[0.0, 0.0, 0.0]", "[1.0, 1.0, 1.0]"), fails=NORMALISATION_CHECKS),
    Variant("Fashion-MNIST statistics", preprocess_with("[0.2860] * 3", "[0.3530] * 3"), fails=NORMALISATION_CHECKS),
    Variant("mean and std swapped", preprocess_with(IMNET[1], IMNET[0]), fails=NORMALISATION_CHECKS),
    Variant("grey not repeated to 3 channels", src("""
        def preprocess(x):
            if x.ndim != 4 or x.shape[1] not in (1, 3):
                raise ValueError("bad shape")
            c = x.shape[1]
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
            return (x - IMAGENET_MEAN[:c].view(1, c, 1, 1)) / IMAGENET_STD[:c].view(1, c, 1, 1)
    """), fails=("test_preprocess_output_shape", "test_preprocess_repeats_grey_images",
                 "test_preprocess_matches_reference"),
        passes=("test_preprocess_normalises_with_imagenet_statistics",)),
    Variant("grey normalised with the red statistics, then repeated", src("""
        def preprocess(x):
            if x.ndim != 4 or x.shape[1] not in (1, 3):
                raise ValueError("bad shape")
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
            if x.shape[1] == 1:
                return ((x - IMAGENET_MEAN[0]) / IMAGENET_STD[0]).repeat(1, 3, 1, 1)
            return (x - IMAGENET_MEAN.view(1, 3, 1, 1)) / IMAGENET_STD.view(1, 3, 1, 1)
    """), fails=("test_preprocess_repeats_grey_images", "test_preprocess_matches_reference"),
        passes=("test_preprocess_output_shape", "test_preprocess_normalises_with_imagenet_statistics")),
    Variant("nearest-neighbour resize", preprocess_with(*IMNET, mode='"nearest"'),
            fails=("test_preprocess_matches_reference",),
            passes=("test_preprocess_normalises_with_imagenet_statistics", "test_preprocess_repeats_grey_images")),
    Variant("no shape validation", src("""
        def preprocess(x):
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
            return (x - IMAGENET_MEAN.view(1, 3, 1, 1)) / IMAGENET_STD.view(1, 3, 1, 1)
    """), fails=("test_preprocess_rejects_bad_shapes",), passes=NORMALISATION_CHECKS),
]
RIGHT_PRE = [
    ("torchvision resize and normalize", src("""
        import torchvision.transforms.functional as TF
        def preprocess(x):
            if x.dim() != 4 or x.size(1) not in (1, 3):
                raise ValueError(f"expected (N, 1|3, H, W), got {tuple(x.shape)}")
            x = x.expand(-1, 3, -1, -1)
            x = TF.resize(x, [224, 224], antialias=True)
            return TF.normalize(x, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    """)),
    ("normalise first, repeat_interleave", src("""
        def preprocess(x):
            if x.ndim != 4 or x.shape[1] not in (1, 3):
                raise ValueError("preprocess: need (N, 1, H, W) or (N, 3, H, W)")
            x = x.repeat_interleave(3 // x.shape[1], dim=1)
            x = (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
            return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    """)),
]


@pytest.mark.parametrize("variant", WRONG_PRE, ids=lambda v: v.label)
def test_wrong_preprocess_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, PRE_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_PRE, ids=[r[0] for r in RIGHT_PRE])
def test_other_correct_preprocess_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, PRE_CELL), label)


# ================================================================================================ extract_features
EXT_CELL = "test_extract_features"
WRONG_EXT = [
    Variant("no flatten", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            with torch.no_grad():
                return torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_alexnet_shape", "test_extract_features_eval_mode_and_flatten",
                 "test_extract_features_matches_reference_on_alexnet")),
    Variant("training mode (dropout and batch norm on)", src("""
        def extract_features(model, x, batch_size=64):
            with torch.no_grad():
                return torch.cat([model.features(x[i:i + batch_size]).flatten(1)
                                  for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_eval_mode_and_flatten",),
        passes=("test_extract_features_alexnet_shape", "test_extract_features_matches_reference_on_alexnet")),
    Variant("keeps the autograd graph", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            return torch.cat([model.features(x[i:i + batch_size]).flatten(1) for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_builds_no_graph",),
        passes=("test_extract_features_eval_mode_and_flatten", "test_extract_features_matches_reference_on_alexnet")),
    Variant("inference-mode tensors returned", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            with torch.inference_mode():
                return torch.cat([model.features(x[i:i + batch_size]).flatten(1)
                                  for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_builds_no_graph",), passes=("test_extract_features_eval_mode_and_flatten",)),
    Variant("everything in one batch", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            with torch.no_grad():
                return model.features(x).flatten(1)
    """), fails=("test_extract_features_works_in_batches",),
        passes=("test_extract_features_matches_reference_on_alexnet", "test_extract_features_eval_mode_and_flatten")),
    Variant("hard-coded view(-1, 9216)", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            with torch.no_grad():
                return torch.cat([model.features(x[i:i + batch_size]).view(-1, 9216)
                                  for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_eval_mode_and_flatten",),
        passes=("test_extract_features_matches_reference_on_alexnet",)),
    Variant("the whole network's ImageNet scores", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            with torch.no_grad():
                return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    """), fails=("test_extract_features_alexnet_shape", "test_extract_features_eval_mode_and_flatten",
                 "test_extract_features_matches_reference_on_alexnet")),
]
RIGHT_EXT = [
    ("inference_mode, torch.split, clone", src("""
        def extract_features(model, x, batch_size=64):
            model.eval()
            out = []
            with torch.inference_mode():
                for chunk in torch.split(x, batch_size):
                    out.append(model.features(chunk).reshape(len(chunk), -1))
                feats = torch.cat(out)
            return feats.clone()
    """)),
    ("layer by layer, preallocated", src("""
        @torch.no_grad()
        def extract_features(model, x, batch_size=64):
            model.train(False)
            result = None
            for start in range(0, x.shape[0], batch_size):
                h = x[start:start + batch_size]
                for layer in model.features:
                    h = layer(h)
                h = torch.flatten(h, 1)
                if result is None:
                    result = torch.empty(x.shape[0], h.shape[1])
                result[start:start + len(h)] = h
            return result
    """)),
]


@pytest.mark.parametrize("variant", WRONG_EXT, ids=lambda v: v.label)
def test_wrong_extract_features_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, EXT_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_EXT, ids=[r[0] for r in RIGHT_EXT])
def test_other_correct_extract_features_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, EXT_CELL), label)


# ================================================================================================ freeze_features
FREEZE_CELL = "test_freeze_features"
WRONG_FREEZE = [
    Variant("sets a model attribute", src("""
        def freeze_features(model):
            model.requires_grad = False
            return model
    """), fails=("test_freeze_features_freezes_every_parameter", "test_freeze_features_works_for_any_model"),
        passes=("test_freeze_features_returns_the_same_model",)),
    Variant("freezes model.features only", src("""
        def freeze_features(model):
            for p in model.features.parameters():
                p.requires_grad = False
            return model
    """), fails=("test_freeze_features_freezes_every_parameter", "test_freeze_features_works_for_any_model"),
        passes=("test_freeze_features_returns_the_same_model", "test_freeze_features_keeps_values_and_mode")),
    Variant("eval() instead of freezing", src("""
        def freeze_features(model):
            return model.eval()
    """), fails=("test_freeze_features_freezes_every_parameter",)),
    Variant("forgets to return", src("""
        def freeze_features(model):
            for p in model.parameters():
                p.requires_grad_(False)
    """), fails=("test_freeze_features_returns_the_same_model",),
        passes=("test_freeze_features_freezes_every_parameter",)),
    Variant("AlexNet layer indices hard-coded", src("""
        def freeze_features(model):
            for i in (0, 3, 6, 8, 10):
                model.features[i].weight.requires_grad = False
                model.features[i].bias.requires_grad = False
            for i in (1, 4, 6):
                model.classifier[i].weight.requires_grad = False
                model.classifier[i].bias.requires_grad = False
            return model
    """), fails=("test_freeze_features_works_for_any_model",),
        passes=("test_freeze_features_freezes_every_parameter",)),
    Variant("freezes a copy", src("""
        import copy
        def freeze_features(model):
            frozen = copy.deepcopy(model)
            frozen.requires_grad_(False)
            return frozen
    """), fails=("test_freeze_features_freezes_every_parameter", "test_freeze_features_returns_the_same_model")),
]
RIGHT_FREEZE = [
    ("requires_grad_ on the module", src("""
        def freeze_features(model):
            return model.requires_grad_(False)
    """)),
    ("named_parameters loop", src("""
        def freeze_features(model):
            for name, param in model.named_parameters():
                param.requires_grad = False
            return model
    """)),
]


@pytest.mark.parametrize("variant", WRONG_FREEZE, ids=lambda v: v.label)
def test_wrong_freeze_features_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, FREEZE_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_FREEZE, ids=[r[0] for r in RIGHT_FREEZE])
def test_other_correct_freeze_features_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, FREEZE_CELL), label)


# ================================================================================================ replace_classifier
REPLACE_CELL = "test_replace_classifier"
STRUCTURE = "test_replace_classifier_replaces_the_last_layer"
ONLY_HEAD = "test_replace_classifier_new_head_is_the_only_trainable_layer"
COMBINED = "test_freeze_then_replace_leaves_only_the_head_trainable"
WRONG_REPLACE = [
    Variant("replaces classifier[1]", src("""
        def replace_classifier(model, num_classes):
            model.classifier[1] = nn.Linear(4096, num_classes)
            return model
    """), fails=(STRUCTURE, ONLY_HEAD, COMBINED, "test_replace_classifier_forward_shape",
                 "test_replace_classifier_keeps_the_other_layers")),
    Variant("appends a layer", src("""
        def replace_classifier(model, num_classes):
            model.classifier.append(nn.Linear(1000, num_classes))
            return model
    """), fails=(STRUCTURE, ONLY_HEAD, COMBINED), passes=("test_replace_classifier_forward_shape",)),
    Variant("model.fc (the ResNet name)", src("""
        def replace_classifier(model, num_classes):
            model.fc = nn.Linear(4096, num_classes)
            return model
    """), fails=(STRUCTURE, ONLY_HEAD, COMBINED, "test_replace_classifier_forward_shape")),
    Variant("edits out_features of the old layer", src("""
        def replace_classifier(model, num_classes):
            model.classifier[6].out_features = num_classes
            return model
    """), fails=(STRUCTURE, "test_replace_classifier_other_class_counts")),
    Variant("replaces the whole classifier", src("""
        def replace_classifier(model, num_classes):
            model.classifier = nn.Linear(4096, num_classes)
            return model
    """), fails=(STRUCTURE, "test_replace_classifier_forward_shape", "test_replace_classifier_keeps_the_other_layers")),
    Variant("ten classes hard-coded", src("""
        def replace_classifier(model, num_classes):
            model.classifier[6] = nn.Linear(4096, 10)
            return model
    """), fails=(STRUCTURE, "test_replace_classifier_forward_shape", "test_replace_classifier_other_class_counts"),
        passes=(COMBINED,)),
    Variant("forgets to return", src("""
        def replace_classifier(model, num_classes):
            model.classifier[6] = nn.Linear(4096, num_classes)
    """), fails=("test_replace_classifier_other_class_counts",), passes=(STRUCTURE, ONLY_HEAD, COMBINED)),
]
RIGHT_REPLACE = [
    ("rebuilt Sequential", src("""
        def replace_classifier(model, num_classes):
            layers = list(model.classifier.children())
            layers[-1] = nn.Linear(layers[-1].in_features, num_classes)
            model.classifier = nn.Sequential(*layers)
            return model
    """)),
    ("negative index, bias=True", src("""
        def replace_classifier(model, num_classes):
            model.classifier[-1] = nn.Linear(in_features=4096, out_features=num_classes, bias=True)
            return model
    """)),
    ("a Linear subclass", src("""
        class Head(nn.Linear):
            pass  # the new last layer
        def replace_classifier(model, num_classes):
            model.classifier[6] = Head(model.classifier[6].in_features, num_classes)
            return model
    """)),
]


@pytest.mark.parametrize("variant", WRONG_REPLACE, ids=lambda v: v.label)
def test_wrong_replace_classifier_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, REPLACE_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_REPLACE, ids=[r[0] for r in RIGHT_REPLACE])
def test_other_correct_replace_classifier_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, REPLACE_CELL), label)


def test_wrong_freeze_also_costs_the_combined_check(standin_torch_home):
    """freeze_features + replace_classifier together: a features-only freeze leaves classifier[1] and [4] trainable."""
    wrong = WRONG_FREEZE[1]
    results = grade(wrong.source, REPLACE_CELL)
    assert results[COMBINED].status == "failed"
    assert "classifier.1" in results[COMBINED].message
    assert results[ONLY_HEAD].passed and results[STRUCTURE].passed


# ================================================================================================ train_head
HEAD_CELL = "test_train_head"
PROBE = "test_train_head_accuracy_on_alexnet_features"


def train_head_source(*, zero: str = "optimizer.zero_grad()", epochs: str = "epochs",
                      out: str = "num_classes", step: str = "optimizer.step()", ret: str = "head.eval()") -> str:
    return src(f"""
        def train_head(features, labels, num_classes, epochs, lr):
            head = nn.Linear(features.shape[1], {out})
            optimizer = torch.optim.Adam(head.parameters(), lr=lr)
            losses = []
            for _ in range({epochs}):
                order = torch.randperm(len(features))
                for start in range(0, len(features), 64):
                    idx = order[start:start + 64]
                    loss = F.cross_entropy(head(features[idx]), labels[idx])
                    {zero}
                    loss.backward()
                    {step}
                    losses.append(loss.item())
            return {ret}
    """)


WRONG_HEAD = [
    Variant("never zeroes the gradients", train_head_source(zero="pass"), fails=(PROBE,)),
    Variant("one epoch whatever `epochs` says", train_head_source(epochs="1"), fails=(PROBE,)),
    Variant("classes counted from the labels", train_head_source(out="int(labels.max()) + 1"),
            fails=("test_train_head_uses_num_classes",), passes=(PROBE, "test_train_head_returns_a_linear_layer")),
    Variant("forgets optimizer.step()", train_head_source(step="pass"),
            fails=(PROBE, "test_train_head_learns_separable_blobs"),
            passes=("test_train_head_returns_a_linear_layer",)),
    Variant("returns the losses", train_head_source(ret="losses"),
            fails=("test_train_head_returns_a_linear_layer", "test_train_head_learns_separable_blobs", PROBE,
                   "test_train_head_uses_num_classes")),
]
RIGHT_HEAD = [
    ("DataLoader and CrossEntropyLoss", src("""
        from torch.utils.data import DataLoader, TensorDataset
        def train_head(features, labels, num_classes, epochs, lr):
            head = nn.Linear(features.size(1), num_classes)
            opt = torch.optim.Adam(head.parameters(), lr=lr)
            loss_fn = nn.CrossEntropyLoss()
            loader = DataLoader(TensorDataset(features, labels), batch_size=64, shuffle=True)
            head.train()
            for epoch in range(epochs):
                for xb, yb in loader:
                    opt.zero_grad(set_to_none=True)
                    loss_fn(head(xb), yb).backward()
                    opt.step()
            head.eval()
            return head
    """)),
    ("head.zero_grad and torch.split of a permutation", src("""
        def train_head(features, labels, num_classes, epochs, lr):
            head = nn.Linear(features.shape[-1], num_classes)
            opt = torch.optim.Adam(head.parameters(), lr)
            for _ in range(epochs):
                for idx in torch.split(torch.randperm(features.shape[0]), 64):
                    head.zero_grad()
                    F.cross_entropy(head(features[idx]), labels[idx]).backward()
                    opt.step()
            return head.eval()
    """)),
]


@pytest.mark.parametrize("variant", WRONG_HEAD, ids=lambda v: v.label)
def test_wrong_train_head_loses_points(standin_torch_home, fashion_mnist_root, variant):
    results = grade(variant.source, HEAD_CELL)
    assert_loses_points(results, variant)
    if variant is WRONG_HEAD[0]:   # the accuracy check says which weights produced the features
        message = results[PROBE].message
        assert "STAND-IN" in message and "reference reaches" in message, message


@pytest.mark.parametrize("label,source", RIGHT_HEAD, ids=[r[0] for r in RIGHT_HEAD])
def test_other_correct_train_head_gets_full_marks(standin_torch_home, fashion_mnist_root, label, source):
    assert_full_marks(grade(source, HEAD_CELL), label)


# ================================================================================================ penultimate_features
PEN_CELL = "test_penultimate_features"
PEN_SHAPE, PEN_CUT = "test_penultimate_features_alexnet_shape", "test_penultimate_features_stop_just_before_the_last_layer"
PEN_GRAPH, PEN_REF = "test_penultimate_features_builds_no_graph", "test_penultimate_features_matches_reference_on_alexnet"
PEN_BATCHES = "test_penultimate_features_works_in_batches"


def penultimate_source(body: str, *, mode: str = "model.eval()", grad: str = "with torch.no_grad():") -> str:
    return src(f"""
        def penultimate_features(model, x, batch_size=64):
            {mode}
            chunks = []
            {grad}
                for start in range(0, len(x), batch_size):
                    xb = x[start:start + batch_size]
                    chunks.append({body})
            return torch.cat(chunks)
    """)


CUT = "model.classifier[:6](torch.flatten(model.avgpool(model.features(xb)), 1))"
WRONG_PEN = [
    Variant("the whole network's scores", penultimate_source("model(xb)"),
            fails=(PEN_SHAPE, PEN_CUT, PEN_REF)),
    Variant("stops before the last ReLU", penultimate_source(CUT.replace("[:6]", "[:5]")),
            fails=(PEN_CUT, PEN_REF), passes=(PEN_SHAPE, PEN_GRAPH, PEN_BATCHES)),
    Variant("one hidden layer only", penultimate_source(CUT.replace("[:6]", "[:3]")),
            fails=(PEN_CUT, PEN_REF), passes=(PEN_SHAPE,)),
    Variant("skips the average pool", penultimate_source("model.classifier[:6](torch.flatten(model.features(xb), 1))"),
            fails=(PEN_CUT,), passes=(PEN_SHAPE, PEN_REF)),
    Variant("training mode (dropout on)", penultimate_source(CUT, mode="pass"),
            fails=(PEN_CUT, PEN_REF), passes=(PEN_SHAPE, PEN_GRAPH, PEN_BATCHES)),
    Variant("keeps the autograd graph", penultimate_source(CUT, grad="if True:"),
            fails=(PEN_GRAPH,), passes=(PEN_CUT, PEN_REF)),
    Variant("everything in one batch", src("""
        def penultimate_features(model, x, batch_size=64):
            model.eval()
            with torch.no_grad():
                return model.classifier[:6](torch.flatten(model.avgpool(model.features(x)), 1))
    """), fails=(PEN_BATCHES,), passes=(PEN_CUT, PEN_REF)),
]
RIGHT_PEN = [
    ("a forward hook on the last ReLU", src("""
        def penultimate_features(model, x, batch_size=64):
            model.eval()
            grabbed = []
            handle = model.classifier[-2].register_forward_hook(lambda m, args, out: grabbed.append(out.clone()))
            try:
                with torch.no_grad():
                    for chunk in torch.split(x, batch_size):
                        model(chunk)
            finally:
                handle.remove()
            return torch.cat(grabbed)
    """)),
    ("a new Sequential without the last layer, decorator", src("""
        @torch.no_grad()
        def penultimate_features(model, x, batch_size=64):
            model.train(False)
            body = nn.Sequential(model.features, model.avgpool, nn.Flatten(),
                                 *list(model.classifier.children())[:-1])
            return torch.cat([body(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    """)),
    ("numpy bookkeeping, inference_mode and clone", src("""
        import numpy as np
        def penultimate_features(model, x, batch_size=64):
            model.eval()
            starts = np.arange(0, len(x), batch_size)
            with torch.inference_mode():
                rows = [model.classifier[:6](model.avgpool(model.features(x[int(s):int(s) + batch_size])).flatten(1))
                        for s in starts]
                out = torch.cat(rows)
            return out.clone()
    """)),
]


@pytest.mark.parametrize("variant", WRONG_PEN, ids=lambda v: v.label)
def test_wrong_penultimate_features_loses_points(standin_torch_home, variant):
    assert_loses_points(grade(variant.source, PEN_CELL), variant)


@pytest.mark.parametrize("label,source", RIGHT_PEN, ids=[r[0] for r in RIGHT_PEN])
def test_other_correct_penultimate_features_gets_full_marks(standin_torch_home, label, source):
    assert_full_marks(grade(source, PEN_CELL), label)


# ================================================================================================ the whole trained model
FIN_CELL = "test_finetuned"
FIN_FROZEN, FIN_PUBLIC = ("test_finetuned_is_the_frozen_alexnet_with_its_trained_head",
                          "test_finetuned_classifies_held_out_images")
FIN_HIDDEN = "test_finetuned_accuracy_is_close_to_the_reference"
WRONG_FINETUNED = [
    Variant("head never trained", "finetuned = replace_classifier(freeze_features(load_alexnet()), 10)\n",
            fails=(FIN_PUBLIC, FIN_HIDDEN), passes=(FIN_FROZEN,)),
    Variant("unfrozen after training", "finetuned = train_new_head().requires_grad_(True)\n",
            fails=(FIN_FROZEN,), passes=(FIN_PUBLIC, FIN_HIDDEN)),
    Variant("no model kept", "pass\n", fails=(FIN_FROZEN, FIN_PUBLIC, FIN_HIDDEN)),
]


@pytest.mark.slow
def test_reference_whole_model_gets_full_marks(standin_torch_home, fashion_mnist_root):
    results = check_code(AID, {"finetuned": "finetuned = train_new_head()\n"}, cells=[FIN_CELL])
    assert_full_marks(results, "the reference's whole model")
    assert sum(r.max_points for r in results.values()) == 4


@pytest.mark.slow
@pytest.mark.parametrize("variant", WRONG_FINETUNED, ids=lambda v: v.label)
def test_wrong_whole_model_loses_points(standin_torch_home, fashion_mnist_root, variant):
    results = check_code(AID, {"finetuned": variant.source}, cells=[FIN_CELL])
    assert_loses_points(results, variant)
    if variant is WRONG_FINETUNED[0]:   # the accuracy checks say which weights the model has
        assert "STAND-IN" in results[FIN_PUBLIC].message and "STAND-IN" in results[FIN_HIDDEN].message
    if variant is WRONG_FINETUNED[2]:
        assert "no variable named `finetuned`" in results[FIN_PUBLIC].message


def test_reference_gets_full_marks(standin_torch_home, fashion_mnist_root):
    cells = [c for c in POINTS_BY_CELL if c != FIN_CELL]   # the whole model needs training: the slow tests above
    results = check_code(AID, "", cells=cells)
    assert_full_marks(results, "the reference")
    by_cell: dict[str, float] = {}
    for r in results.values():
        by_cell[r.cell] = by_cell.get(r.cell, 0) + r.max_points
    assert by_cell == {c: POINTS_BY_CELL[c] for c in cells}


POINTS_BY_CELL = {"test_load_alexnet": 5, "test_to_nchw": 6, "test_preprocess": 7, "test_extract_features": 7,
                  "test_freeze_features": 5, "test_replace_classifier": 7, "test_train_head": 7,
                  "test_penultimate_features": 7, "test_finetuned": 4}
