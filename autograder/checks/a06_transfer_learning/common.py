"""Shared, non-secret helpers of the 06_transfer_learning checks.

Every model a check needs is built by the grader *inside* the namespace that uses it (with
``ns.exec``), so that the submission's functions get a model that lives with them, and the
reference gets its own copy of the same weights. Checks that depend on the AlexNet weights say in
their messages which weights were used: the real ImageNet checkpoint or the random stand-in.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np
import torch

from autograder.authoring.grader_code import built_here, built_in
from data_scripts.alexnet_standin import weights_origin
from data_scripts.paths import alexnet_checkpoint_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The linear probe of the hidden train_head check (the notebook uses the same settings).
PROBE_EPOCHS, PROBE_LR = 40, 3e-4
PROBE_MARGIN = 0.05          # the student's held-out accuracy may be at most this much below the reference's
IMAGENET_FLOOR = 0.65        # and, with the real ImageNet weights only, at least this
PROBE_TRAIN = (20000, 400)   # (first index, count) in Fashion-MNIST's training split
PROBE_HELD_OUT = (5000, 500)  # (first index, count) in its test split


def weights_used() -> str:
    """Which AlexNet weights this grading run uses, for check messages."""
    origin = weights_origin()
    if origin == "imagenet":
        return "weights used: the real ImageNet AlexNet checkpoint"
    if origin == "stand-in":
        return ("weights used: the STAND-IN random AlexNet checkpoint (not ImageNet; the same file for "
                "your code and for the reference)")
    return f"weights used: none found at {alexnet_checkpoint_path()} (torchvision will try to download them)"


ALEXNET_SRC = """
try:
    grader_alexnet
except NameError:
    import torchvision as grader_tv
    grader_alexnet = grader_tv.models.alexnet(weights=grader_tv.models.AlexNet_Weights.IMAGENET1K_V1)
grader_alexnet.eval()
"""


class WeightsUnavailable(RuntimeError):
    """The grader could not build AlexNet with its weights where the code runs: not the student's fault."""


def _build_alexnet(ns) -> None:
    from autograder.authoring.api import StudentError

    try:
        ns.exec(ALEXNET_SRC, keep=("grader_alexnet",))  # built once per namespace, seen by every check
    except StudentError as err:
        raise WeightsUnavailable(
            f"the grader could not load AlexNet_Weights.IMAGENET1K_V1 in the {ns.label} ({err.type_name}: "
            f"{err.message[:200]}); {weights_used()}. The weights file must be installed (and visible to the "
            "sandbox) before grading: this is a problem of the grading setup, not of your code.") from None


def alexnet(ns):
    """A handle to a pretrained AlexNet that the grader builds inside ``ns`` (once per namespace)."""
    _build_alexnet(ns)
    return ns.eval("grader_alexnet")


@contextmanager
def fresh_alexnet(ns):
    """A grader-built, unfrozen copy of the pretrained AlexNet inside ``ns``; its memory is freed afterwards."""
    _build_alexnet(ns)
    ns.exec("import copy as grader_copy\n"
            "grader_fresh = grader_copy.deepcopy(grader_alexnet).requires_grad_(True).eval()")
    try:
        yield ns.eval("grader_fresh")
    finally:
        try:   # the copy is the grader's own: drop its parameters' storage (handles are kept until the end)
            ns.exec("for grader_p in grader_fresh.parameters():\n"
                    "    grader_p.data = grader_p.data.new_empty(0)\n"
                    "grader_fresh = None")
        except Exception:  # noqa: BLE001 - the submission may have died; nothing to free then
            pass


_SUMS: dict = {}


def checkpoint_sums() -> dict[str, float]:
    """{parameter name: float64 sum} of the AlexNet checkpoint file torchvision loads (cached per file version)."""
    path = alexnet_checkpoint_path()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SUMS:
        state = torch.load(path, map_location="cpu", weights_only=True)
        _SUMS.clear()
        _SUMS[key] = {k: float(v.double().sum()) for k, v in state.items()}
    return _SUMS[key]


SUMS_EXPR = "{k: float(v.double().sum()) for k, v in grader_m.state_dict().items()}"


def expect_module(value, what: str):
    """``value`` must be an object left in the namespace (a model), not plain data such as None."""
    from autograder.authoring.api import CheckFailure, Handle, describe_value

    if not isinstance(value, Handle):
        raise CheckFailure(f"{what} should return a model (an nn.Module), got {describe_value(value)}")
    return value


def tensor_digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:12]


def weights_fingerprint(ref) -> str:
    """origin + a hash of conv1's weights: a cache key that changes whenever the weights do."""
    alexnet(ref)
    return f"{weights_origin()}-{tensor_digest(ref.eval('grader_alexnet.features[0].weight.detach().clone()'))}"


TINY_SRC = """
import torch as grader_torch


class GraderTinyNet(grader_torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = grader_torch.nn.Sequential(
            grader_torch.nn.Conv2d(3, 4, 3, stride=2), grader_torch.nn.BatchNorm2d(4), grader_torch.nn.ReLU(),
            grader_torch.nn.Dropout(0.5), grader_torch.nn.MaxPool2d(2))
        self.classifier = grader_torch.nn.Sequential(grader_torch.nn.Flatten(), grader_torch.nn.Linear(4 * 3 * 4, 5))

    def forward(self, x):
        return self.classifier(self.features(x))


grader_torch.manual_seed(1234)
grader_tiny = GraderTinyNet()
with grader_torch.no_grad():
    grader_tiny.features[1].running_mean.uniform_(-0.5, 0.5)
    grader_tiny.features[1].running_var.uniform_(0.5, 2.0)
grader_tiny.train()
"""
TINY_INPUT = (3, 15, 19)   # (C, H, W): features give (4, 3, 4)


def tiny_net(ns):
    """A handle to a small seeded net with .features (conv, BatchNorm, ReLU, Dropout, pool), in training mode."""
    return built_in(ns, TINY_SRC, "grader_tiny")


def tiny_net_here():
    """The same small net, built in the grader's own process (an oracle for public checks)."""
    return built_here(TINY_SRC, "grader_tiny")


def photo() -> np.ndarray:
    """matplotlib's sample photograph (600, 512, 3) uint8."""
    import matplotlib.pyplot as plt
    from matplotlib import cbook

    return np.array(plt.imread(cbook.get_sample_data("grace_hopper.jpg")))


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def photo_batch(n_random: int = 2) -> torch.Tensor:
    """(1 + n_random, 3, 224, 224): the photograph and uniform noise images, normalised with torch built-ins."""
    img = torch.from_numpy(photo()[44:556]).permute(2, 0, 1)[None].float() / 255
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False,
                                          antialias=True)
    return normalise(torch.cat([img, torch.rand(n_random, 3, 224, 224)]))


def trainable_names(description: dict) -> list[str]:
    return [p["name"] for p in description["parameters"] if p["requires_grad"]]


def first_names(names: list[str], most: int) -> str:
    """``a, b, c...``: the first ``most`` names of a list for a message, with ``...`` when there are more."""
    return ", ".join(names[:most]) + ("..." if len(names) > most else "")


def all_training_flags(description: dict, prefix: str = "model") -> list[tuple[str, bool]]:
    """(path, training) for a module and every submodule of a describe() result."""
    out = [(prefix, description.get("training"))]
    for name, child in description.get("children", []):
        out += all_training_flags(child, f"{prefix}.{name}")
    return out


def blobs(n: int, d: int, k: int, spread: float = 1.0):
    """Gaussian blobs: (n, d) features around k well separated centres, and (n,) labels."""
    centres = torch.randn(k, d) * 3.0
    labels = torch.arange(n) % k
    feats = centres[labels] + spread * torch.randn(n, d)
    return feats, labels


def accuracy_of(ns, head, feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of a head (a handle in ``ns``) on features: argmax of its scores, computed under no_grad."""
    expect_module(head, "train_head")
    ns.exec("import torch as grader_torch\n"
            "with grader_torch.no_grad():\n"
            "    grader_pred = grader_head(grader_x).argmax(dim=1)", grader_head=head, grader_x=feats)
    pred = ns.eval("grader_pred")
    if type(pred) is not torch.Tensor or tuple(pred.shape) != tuple(labels.shape):
        from autograder.authoring.api import CheckFailure

        raise CheckFailure(f"the head should give (N, num_classes) scores for N={len(labels)} feature vectors")
    return float((pred == labels).float().mean())


def probe_data(ref) -> dict:
    """Fashion-MNIST features for the linear-probe check, computed once with the reference and cached.

    Train: PROBE_TRAIN images of the training split; held-out: PROBE_HELD_OUT of the test split;
    preprocessed and extracted with the reference's functions on the grader's AlexNet, then divided
    by the std of the training features (as the notebook does). The cache key includes the weights.
    """
    import torchvision

    from data_scripts.paths import data_dir

    key = f"probe_features_{weights_fingerprint(ref)}"

    def compute():
        model = alexnet(ref)
        out = {}
        for name, train, (first, count) in (("train", True, PROBE_TRAIN), ("held_out", False, PROBE_HELD_OUT)):
            ds = torchvision.datasets.FashionMNIST(data_dir(), train=train, download=False)
            images = ds.data[first:first + count]
            chunks = []
            for s in range(0, count, 128):
                x = images[s:s + 128, None].float() / 255
                chunks.append(ref.extract_features(model, ref.preprocess(x), batch_size=64))
            out[f"{name}_features"] = torch.cat(chunks)
            out[f"{name}_labels"] = ds.targets[first:first + count].clone()
        scale = out["train_features"].std()
        out["train_features"] = out["train_features"] / scale
        out["held_out_features"] = out["held_out_features"] / scale
        return out

    return ref.memo(key, compute)


def reference_probe_accuracy(ref, data: dict) -> float:
    key = f"probe_ref_accuracy_{weights_fingerprint(ref)}_{PROBE_EPOCHS}_{PROBE_LR:g}"

    def compute():
        torch.manual_seed(0)
        head = ref.train_head(data["train_features"], data["train_labels"], 10, PROBE_EPOCHS, PROBE_LR)
        return accuracy_of(ref, head, data["held_out_features"], data["held_out_labels"])

    return ref.memo(key, compute)


# ---------------------------------------------------------------------------------------------- what a module is
STRUCTURE_SRC = """
def grader_structure(m):
    import torch as grader_t
    import torchvision as grader_tv
    nn = grader_t.nn
    known = (("AlexNet", grader_tv.models.AlexNet), ("Sequential", nn.Sequential), ("Linear", nn.Linear),
             ("ReLU", nn.ReLU), ("Dropout", nn.Dropout), ("Conv2d", nn.Conv2d))

    def kind(x):
        for name, cls in known:
            if isinstance(x, cls):
                return name
        return type(x).__name__ if isinstance(x, nn.Module) else "not a module"

    classifier = getattr(m, "classifier", None)
    return {"kind": kind(m), "type": type(m).__name__, "is_module": isinstance(m, nn.Module),
            "classifier": [kind(c) for c in classifier.children()] if isinstance(classifier, nn.Module) else None}
"""


def structure(ns, handle) -> dict:
    """What ``handle`` is, asked with ``isinstance`` where it lives (subclasses count): ``kind`` ("AlexNet",
    "Linear", ...), ``type`` (its class name) and the kinds of the children of its ``.classifier``."""
    ns.exec(STRUCTURE_SRC)
    return ns.eval("grader_structure(grader_m)", grader_m=handle)


# ---------------------------------------------------------------------------------------------- penultimate features
TINY_ALEX_SRC = """
import torch as grader_torch


class GraderTinyAlexNet(grader_torch.nn.Module):
    '''AlexNet's layout in miniature: features (with BatchNorm), an average pool, a 7-layer classifier.'''

    def __init__(self):
        super().__init__()
        nn = grader_torch.nn
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 5))

    def forward(self, x):
        return self.classifier(grader_torch.flatten(self.avgpool(self.features(x)), 1))


grader_torch.manual_seed(4321)
grader_tiny_alex = GraderTinyAlexNet()
with grader_torch.no_grad():
    grader_tiny_alex.features[1].running_mean.uniform_(-0.5, 0.5)
    grader_tiny_alex.features[1].running_var.uniform_(0.5, 2.0)
    grader_tiny_alex.classifier[1].bias.uniform_(0.0, 0.5)     # most units of the first hidden layer alive
    grader_tiny_alex.classifier[4].bias.uniform_(-0.3, 0.3)    # the last ReLU sets some of its inputs to 0
grader_tiny_alex.train()
"""
TINY_ALEX_INPUT = (3, 15, 19)   # features give (4, 3, 4): the average pool matters, (4, 2, 2) -> 16 numbers
TINY_ALEX_PENULTIMATE = 12


def tiny_alexnet(ns):
    """A handle to the small AlexNet-shaped net (BatchNorm in features, dropout in the classifier), in training mode."""
    return built_in(ns, TINY_ALEX_SRC, "grader_tiny_alex")


def tiny_alexnet_here():
    return built_here(TINY_ALEX_SRC, "grader_tiny_alex")


def penultimate_oracle(model, x: torch.Tensor) -> torch.Tensor:
    """What classifier[6] sees: classifier[:6] of the flattened, average-pooled features, in eval mode."""
    model.eval()
    with torch.no_grad():
        return model.classifier[:6](torch.flatten(model.avgpool(model.features(x)), 1))


# ---------------------------------------------------------------------------------------------- the fine-tuned model
#: The notebook's whole model: its locked cell builds `finetuned` with train_new_head() (a frozen AlexNet whose new
#: classifier[6] was trained on penultimate features). The grader evaluates it on test images it prepares itself.
FINETUNED = "finetuned"
FINETUNED_PUBLIC = (6400, 200)    # (first index, count) in Fashion-MNIST's test split
FINETUNED_HIDDEN = (6600, 400)
FINETUNED_MARGIN = 0.05           # the student's accuracy may be at most this much below the reference's
FINETUNED_FLOOR = 0.5             # public: far above chance (0.1), with either kind of weights


def fmnist_inputs(first: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-split images as stored, uint8 (count, 28, 28), and their labels.

    The grader's ``grader_predict`` prepares them where the model runs (grey to 3 channels, 224 x 224
    bilinear and antialiased, ImageNet statistics), a batch at a time: only the 28 x 28 bytes cross the
    sandbox's pipe (0.3 MB for 400 images instead of 230 MB of prepared ones).
    """
    import torchvision

    from data_scripts.paths import data_dir

    ds = torchvision.datasets.FashionMNIST(data_dir(), train=False, download=False)
    return ds.data[first:first + count].clone(), ds.targets[first:first + count].clone()


PREDICT_SRC = """
def grader_predict(model, images, mean, std, batch_size=50):
    import torch as grader_t
    model.eval()
    out = []
    with grader_t.no_grad():
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size, None].float().div(255).expand(-1, 3, -1, -1)
            x = grader_t.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False,
                                                   antialias=True)
            out.append(model((x - mean) / std).argmax(dim=1))
    return grader_t.cat(out)
"""


def whole_model_accuracy(ns, model_expr: str, images: torch.Tensor, labels: torch.Tensor,
                         timeout: float = 300) -> float:
    """Accuracy of the namespace's model ``model_expr`` on test images (uint8, N x 28 x 28) that the grader's
    code prepares there, in eval mode without gradients; the labels never leave the grader."""
    from autograder.authoring.api import CheckFailure

    ns.exec(PREDICT_SRC)
    pred = ns.eval(f"grader_predict({model_expr}, grader_images, grader_mean, grader_std)", grader_images=images,
                   grader_mean=torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                   grader_std=torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), timeout=timeout)
    if type(pred) is not torch.Tensor or tuple(pred.shape) != tuple(labels.shape):
        raise CheckFailure(f"`{model_expr}` should map images ({len(images)}, 3, 224, 224) to (N, 10) scores")
    return float((pred == labels).float().mean())


def expect_finetuned(sub):
    """The notebook's `finetuned` model; when it is missing, rerun its recipe to say why (a stub says so)."""
    from autograder.authoring.api import CheckFailure

    if not sub.has(FINETUNED):
        if sub.has("train_new_head") and not sub.has("grader_rebuilt"):
            sub.exec("grader_rebuilt = train_new_head()", timeout=600)   # a stub raises NotImplementedError here
        raise CheckFailure(f"there is no variable named `{FINETUNED}`: run the cell that trains the new head, which "
                           f"keeps the whole model in `{FINETUNED}`")
    return expect_module(sub.eval(FINETUNED), f"`{FINETUNED}`")


def reference_finetuned_accuracy(ref) -> float:
    """The reference's train_new_head() model on the hidden test images (cached per weights and notebook)."""
    key = f"finetuned_accuracy_{weights_fingerprint(ref)}_{FINETUNED_HIDDEN[0]}_{FINETUNED_HIDDEN[1]}"

    def compute():
        ref.exec("grader_ref_finetuned = train_new_head()")
        x, y = fmnist_inputs(*FINETUNED_HIDDEN)
        return whole_model_accuracy(ref, "grader_ref_finetuned", x, y)

    return float(ref.memo(key, compute))
