"""04_cnn: realistic wrong implementations lose points on the intended checks; other correct ones don't.

Written with the shared helper ``tests/variants.py`` (graded in batches on top of the reference
notebook's namespace, so ``torch``, ``nn``, ``F`` and the data loaders' imports are there). No variant
below calls another function of its batch (``simple_cnn`` and ``fit`` variants build their layers and
measure accuracy themselves). The reference's full marks, the points per cell and the release's zero
are the course's contract (``tests/contract/``).

The trained ``model`` is checked in ``test_04_cnn_model.py`` (it needs training).
"""

from __future__ import annotations

import textwrap

import pytest

from autograder.course import Course
from autograder.grading.from_source import namespace_with
from autograder.grading.reference import load_reference
from autograder.grading.run_checks import run_checks
from autograder.submission.namespace import InProcessNamespace
from tests.variants import VariantGrader, assert_grades, correct, wrong

AID = "04_cnn"
CELL = {"conv": "test_conv", "simple_cnn": "test_simple_cnn", "get_dataloaders": "test_get_dataloaders",
        "accuracy": "test_accuracy", "fit": "test_fit", "max_pool2d": "test_max_pool2d", "pool_cnn": "test_pool_cnn"}


# ---------------------------------------------------------------------------------------------
# conv

C_ATTRS, C_PAD = "test_conv_conv2d_channels_kernel_and_stride", "test_conv_padding_is_half_the_kernel"
C_RELU, C_FWD = "test_conv_relu_only_when_act", "test_conv_forward_matches_conv2d_and_relu"
C_REF, C_REF_FWD = "test_conv_layers_match_reference", "test_conv_forward_matches_reference_with_the_same_weights"


def conv_src(conv_line: str, tail: str = "return nn.Sequential(*layers)") -> str:
    return ("def conv(ni, nf, ks=3, stride=2, act=True):\n"
            f"    layers = [{conv_line}]\n"
            "    if act:\n"
            "        layers.append(nn.ReLU())\n"
            f"    {tail}\n")


CONV_VARIANTS = [
    wrong("conv", "padding_missing", conv_src("nn.Conv2d(ni, nf, ks, stride)"), {C_PAD, C_FWD, C_REF, C_REF_FWD},
          explains=(C_PAD, "padding=1 (ks // 2)")),
    wrong("conv", "relu_even_without_act", """
          def conv(ni, nf, ks=3, stride=2, act=True):
              return nn.Sequential(nn.Conv2d(ni, nf, ks, stride, padding=ks // 2), nn.ReLU())
          """, {C_RELU, C_FWD, C_REF, C_REF_FWD}, explains=(C_RELU, "exactly the layers ['Conv2d']")),
    wrong("conv", "stride_never_passed", conv_src("nn.Conv2d(ni, nf, ks, padding=ks // 2)"),
          {C_ATTRS, C_FWD, C_REF, C_REF_FWD}, explains=(C_ATTRS, "stride=(2, 2)")),
    wrong("conv", "padding_always_1", conv_src("nn.Conv2d(ni, nf, ks, stride, padding=1)"),
          {C_PAD, C_FWD, C_REF, C_REF_FWD}),
    wrong("conv", "returns_a_list", conv_src("nn.Conv2d(ni, nf, ks, stride, padding=ks // 2)", "return layers"),
          {C_ATTRS, C_PAD, C_RELU, C_FWD, C_REF, C_REF_FWD}),
    wrong("conv", "no_bias", conv_src("nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=False)"),
          {C_ATTRS, C_FWD, C_REF, C_REF_FWD}),
    correct("conv", "ordered_dict_inplace_relu", """
            from collections import OrderedDict
            def conv(ni, nf, ks=3, stride=2, act=True):
                parts = OrderedDict(conv=nn.Conv2d(in_channels=ni, out_channels=nf, kernel_size=(ks, ks),
                                                   stride=(stride, stride), padding=(ks // 2, ks // 2)))
                if act:
                    parts["relu"] = nn.ReLU(inplace=True)
                return nn.Sequential(parts)
            """),
    correct("conv", "sliced_list", """
            def conv(ni, nf, ks=3, stride=2, act=True):
                return nn.Sequential(*[nn.Conv2d(ni, nf, ks, stride, ks // 2), nn.ReLU()][:1 + bool(act)])
            """),
    # issue 18: an nn.Sequential subclass is an nn.Sequential (the detection-code-base pattern)
    correct("conv", "sequential_subclass", """
            class ConvBlock(nn.Sequential):
                def __init__(self, ni, nf, ks=3, stride=2, act=True):
                    super().__init__()
                    self.append(nn.Conv2d(ni, nf, ks, stride, padding=ks // 2))
                    if act:
                        self.append(nn.ReLU(inplace=True))
            def conv(ni, nf, ks=3, stride=2, act=True):
                return ConvBlock(ni, nf, ks, stride, act)
            """),
    correct("conv", "conv2d_subclass_with_same_padding", """
            class SameConv2d(nn.Conv2d):
                def __init__(self, ni, nf, ks, stride):
                    super().__init__(ni, nf, kernel_size=ks, stride=stride, padding=(ks - 1) // 2)
            def conv(ni, nf, ks=3, stride=2, act=True):
                layers = [SameConv2d(ni, nf, ks, stride)] + ([nn.ReLU()] if act else [])
                return nn.Sequential(*layers)
            """),
]

# ---------------------------------------------------------------------------------------------
# simple_cnn (self-contained: the variants do not call conv)

S_SHAPE, S_PARAMS = "test_simple_cnn_maps_images_to_ten_logits", "test_simple_cnn_has_at_most_60000_parameters"
S_LINEAR, S_NEG = "test_simple_cnn_has_no_linear_layer", "test_simple_cnn_logits_can_be_negative"
S_GRID, S_FRESH = ("test_simple_cnn_reaches_a_1x1_grid_of_10_channels_before_flatten",
                   "test_simple_cnn_returns_a_new_model_each_call")

BLOCK = """
def _blk(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2)]
    return nn.Sequential(*(layers + [nn.ReLU()] * bool(act)))
"""


def cnn_src(body: str) -> str:
    return BLOCK + "\ndef simple_cnn():\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


SIMPLE_CNN_VARIANTS = [
    wrong("simple_cnn", "relu_after_the_last_conv", cnn_src("""
          return nn.Sequential(_blk(1, 8, ks=5), _blk(8, 16), _blk(16, 32), _blk(32, 64), _blk(64, 10),
                               nn.Flatten())
          """), {S_NEG}, only=True, explains=(S_NEG, "ReLU after the last convolution")),
    wrong("simple_cnn", "linear_head", cnn_src("""
          return nn.Sequential(_blk(1, 8, ks=5), _blk(8, 16), _blk(16, 32), _blk(32, 64), nn.Flatten(),
                               nn.Linear(64 * 2 * 2, 10))
          """), {S_LINEAR, S_GRID}, only=True, explains=(S_LINEAR, "Linear")),
    wrong("simple_cnn", "stride_1_everywhere", cnn_src("""
          return nn.Sequential(_blk(1, 8, 5, 1), _blk(8, 16, 3, 1), _blk(16, 32, 3, 1), _blk(32, 64, 3, 1),
                               _blk(64, 10, 3, 1, act=False), nn.Flatten())
          """), {S_SHAPE, S_GRID}, explains=(S_SHAPE, "got (1, 7840)")),
    wrong("simple_cnn", "one_shared_model", BLOCK + textwrap.dedent("""
          _NET = nn.Sequential(_blk(1, 8, ks=5), _blk(8, 16), _blk(16, 32), _blk(32, 64),
                               _blk(64, 10, act=False), nn.Flatten())
          def simple_cnn():
              return _NET
          """), {S_FRESH}, only=True),
    wrong("simple_cnn", "too_many_channels", cnn_src("""
          return nn.Sequential(_blk(1, 16, ks=5), _blk(16, 32), _blk(32, 64), _blk(64, 128),
                               _blk(128, 10, act=False), nn.Flatten())
          """), {S_PARAMS}, only=True, explains=(S_PARAMS, "it has 108,938")),
    wrong("simple_cnn", "no_flatten", cnn_src("""
          return nn.Sequential(_blk(1, 8, ks=5), _blk(8, 16), _blk(16, 32), _blk(32, 64),
                               _blk(64, 10, act=False))
          """), {S_SHAPE, S_GRID}),
    correct("simple_cnn", "module_subclass", """
            class _Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    chans = [1, 8, 16, 32, 64]
                    self.body = nn.ModuleList(nn.Conv2d(a, b, 5 if a == 1 else 3, 2, 2 if a == 1 else 1)
                                              for a, b in zip(chans, chans[1:]))
                    self.head = nn.Conv2d(64, 10, 3, 2, 1)
                    self.flatten = nn.Flatten()
                def forward(self, x):
                    for layer in self.body:
                        x = F.relu(layer(x))
                    return self.flatten(self.head(x))
            def simple_cnn():
                return _Net()
            """),
    correct("simple_cnn", "fastbook_4_channels", cnn_src("""
            return nn.Sequential(_blk(1, 4), _blk(4, 8), _blk(8, 16), _blk(16, 32), _blk(32, 10, act=False),
                                 nn.Flatten())
            """)),
    correct("simple_cnn", "ordered_dict", """
            from collections import OrderedDict
            def simple_cnn():
                chans = [(1, 8, 5), (8, 16, 3), (16, 32, 3), (32, 64, 3)]
                layers = OrderedDict()
                for i, (a, b, k) in enumerate(chans):
                    layers[f"conv{i}"] = nn.Conv2d(a, b, k, stride=2, padding=k // 2)
                    layers[f"relu{i}"] = nn.ReLU()
                layers["head"] = nn.Conv2d(64, 10, 3, stride=2, padding=1)
                layers["flatten"] = nn.Flatten()
                return nn.Sequential(layers)
            """),
]

# ---------------------------------------------------------------------------------------------
# get_dataloaders

G_SHAPES, G_NORM = "test_get_dataloaders_batch_shapes", "test_get_dataloaders_normalised_with_training_statistics"
G_STATS, G_SHUF = ("test_get_dataloaders_training_images_have_mean_0_std_1",
                   "test_get_dataloaders_training_set_is_shuffled")
G_VALID, G_DEFAULT = "test_get_dataloaders_validation_is_the_test_split_in_order", "test_get_dataloaders_default_batch_size"
G_REF = "test_get_dataloaders_every_validation_image_matches_reference"


def loaders_src(normalise: str = "(x - mean) / std", *, train_shuffle="True", valid_shuffle="False",
                channel: str = ".unsqueeze(1)", stats: str = "train_x", bs: str = "batch_size") -> str:
    return f"""
def get_dataloaders(batch_size=256, root=DATA_DIR):
    train_ds = torchvision.datasets.FashionMNIST(root, train=True, download=False)
    valid_ds = torchvision.datasets.FashionMNIST(root, train=False, download=False)
    train_x, valid_x = train_ds.data.float() / 255, valid_ds.data.float() / 255
    mean, std = {stats}.mean(), {stats}.std()
    def norm(x):
        return ({normalise}){channel}
    return (DataLoader(TensorDataset(norm(train_x), train_ds.targets), batch_size={bs}, shuffle={train_shuffle}),
            DataLoader(TensorDataset(norm(valid_x), valid_ds.targets), batch_size=500, shuffle={valid_shuffle}))
"""


LOADER_VARIANTS = [
    wrong("get_dataloaders", "not_normalised", loaders_src("x"), {G_NORM, G_STATS, G_REF},
          explains=(G_NORM, "(pixel / 255 - 0.0000) / 1.0000")),
    wrong("get_dataloaders", "validation_statistics", loaders_src(stats="valid_x"), {G_NORM, G_REF},
          only=True, explains=(G_NORM, "(pixel / 255 - 0.2868)")),
    wrong("get_dataloaders", "validation_shuffled", loaders_src(valid_shuffle="True"), {G_VALID, G_REF},
          only=True),
    wrong("get_dataloaders", "training_not_shuffled", loaders_src(train_shuffle="False"), {G_SHUF}, only=True),
    wrong("get_dataloaders", "no_channel_axis", loaders_src(channel=""), {G_SHAPES, G_DEFAULT}),
    wrong("get_dataloaders", "each_image_standardised",
          loaders_src("(x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True)"), {G_NORM, G_REF}),
    wrong("get_dataloaders", "batch_size_ignored", loaders_src(bs="256"), {G_SHAPES}, only=True),
    wrong("get_dataloaders", "mnist_constants", loaders_src("(x - 0.1307) / 0.3081"), {G_NORM, G_STATS, G_REF}),
    correct("get_dataloaders", "torchvision_transforms", """
            import torchvision.transforms as T
            def get_dataloaders(batch_size=256, root=DATA_DIR):
                raw = torchvision.datasets.FashionMNIST(root, train=True, download=False).data.double() / 255
                tfm = T.Compose([T.ToTensor(), T.Normalize((raw.mean().item(),), (raw.std().item(),))])
                train_ds = torchvision.datasets.FashionMNIST(root, train=True, download=False, transform=tfm)
                valid_ds = torchvision.datasets.FashionMNIST(root, train=False, download=False, transform=tfm)
                return (DataLoader(train_ds, batch_size=batch_size, shuffle=True),
                        DataLoader(valid_ds, batch_size=1000))
            """),
    correct("get_dataloaders", "rounded_published_constants", loaders_src("(x - 0.2860) / 0.3530")),
]

# ---------------------------------------------------------------------------------------------
# accuracy

A_SMALL, A_FLOAT = "test_accuracy_small_example", "test_accuracy_returns_a_python_float"
A_RANDOM, A_REF = "test_accuracy_matches_argmax_on_random_logits", "test_accuracy_matches_reference"

ACCURACY_VARIANTS = [
    wrong("accuracy", "argmax_over_the_batch", """
          def accuracy(logits, targets):
              return (logits.argmax(dim=0) == targets).float().mean().item()
          """, {A_SMALL, A_RANDOM, A_REF}),
    wrong("accuracy", "returns_a_tensor", """
          def accuracy(logits, targets):
              return (logits.argmax(dim=1) == targets).float().mean()
          """, {A_FLOAT}, only=True, explains=(A_FLOAT, "tensor() float32")),
    wrong("accuracy", "softmax_over_the_batch", """
          def accuracy(logits, targets):
              probs = torch.softmax(logits, dim=0)
              return (probs.argmax(dim=1) == targets).float().mean().item()
          """, {A_RANDOM, A_REF}),
    wrong("accuracy", "count_not_share", """
          def accuracy(logits, targets):
              return float((logits.argmax(dim=1) == targets).sum())
          """, {A_SMALL, A_RANDOM, A_REF}),
    wrong("accuracy", "binary_threshold", """
          def accuracy(logits, targets):
              return ((logits.sigmoid() > 0.5).float().max(dim=1).indices == targets).float().mean().item()
          """, {A_RANDOM, A_REF}),
    correct("accuracy", "softmax_probabilities", """
            def accuracy(logits, targets):
                preds = torch.softmax(logits, dim=-1).max(dim=-1).indices
                return torch.eq(preds, targets).sum().item() / targets.numel()
            """),
    correct("accuracy", "numpy_inside", """
            import numpy as np
            def accuracy(logits, targets):
                preds = np.argmax(logits.detach().numpy(), axis=1)
                return np.mean(preds == targets.numpy())      # a numpy.float64
            """),
]

# ---------------------------------------------------------------------------------------------
# fit (self-contained: the variants measure accuracy themselves)

F_FMT, F_TRAIN = "test_fit_returns_one_dict_per_epoch", "test_fit_trains_in_training_mode_with_gradients"
F_EVAL, F_NOGRAD = "test_fit_evaluates_in_eval_mode", "test_fit_evaluates_without_gradients"
F_OPT, F_FROZEN = "test_fit_uses_opt_func_with_lr", "test_fit_reports_the_losses_of_a_frozen_model"
F_EASY, F_REF = "test_fit_learns_an_easy_problem", "test_fit_trains_like_the_reference"
F_REFHIST = "test_fit_validation_history_matches_reference"

FIT_PARTS = {
    "opt": "opt = opt_func(model.parameters(), lr=lr)",
    "train_mode": "model.train()",
    "step": "loss.backward()\n            opt.step()\n            opt.zero_grad()",
    "loss": "F.cross_entropy(model(xb), yb)",
    "train_loss": "sum(losses) / len(losses)",
    "eval_mode": "model.eval()",
    "no_grad": "with torch.no_grad():",
    "row": '{"epoch": epoch, "train_loss": train_loss, "valid_loss": total / n, "valid_acc": correct / n}',
}


def fit_src(before_loop: str = "", **parts) -> str:
    p = {**FIT_PARTS, **parts}
    return f"""
def fit(model, epochs, lr, train_dl, valid_dl, opt_func=torch.optim.SGD):
    {p['opt']}
    {before_loop}
    history = []
    for epoch in range(epochs):
        {p['train_mode']}
        losses = []
        for xb, yb in train_dl:
            loss = {p['loss']}
            {p['step']}
            losses.append(loss.item())
        train_loss = {p['train_loss']}
        {p['eval_mode']}
        total, correct, n = 0.0, 0, 0
        {p['no_grad']}
            for xb, yb in valid_dl:
                out = model(xb)
                total += F.cross_entropy(out, yb, reduction="sum").item()
                correct += (out.argmax(dim=1) == yb).sum().item()
                n += len(yb)
        history.append({p['row']})
    return history
"""


FIT_VARIANTS = [
    wrong("fit", "never_calls_eval", fit_src(eval_mode="pass"), {F_EVAL}, only=True,
          explains=(F_EVAL, "call model.eval()")),
    wrong("fit", "validates_with_gradients", fit_src(no_grad="if True:"), {F_NOGRAD}, only=True,
          explains=(F_NOGRAD, "torch.no_grad()")),
    wrong("fit", "forgets_zero_grad", fit_src(step="loss.backward()\n            opt.step()"), {F_REF, F_REFHIST}),
    wrong("fit", "train_mode_set_once", fit_src(before_loop="model.train()", train_mode="pass"), {F_TRAIN},
          only=True, explains=(F_TRAIN, "ran in eval mode")),
    wrong("fit", "new_optimizer_every_epoch",
          fit_src(opt="pass", train_mode="model.train()\n        opt = opt_func(model.parameters(), lr=lr)"),
          {F_REF}, only=True),
    wrong("fit", "keras_style_keys", fit_src(row='{"epoch": epoch, "loss": train_loss, "val_loss": total / n, '
                                                 '"val_acc": correct / n}'),
          {F_FMT, F_FROZEN, F_EASY, F_REFHIST}, explains=(F_FMT, "are missing")),
    wrong("fit", "train_loss_of_the_last_batch", fit_src(train_loss="losses[-1]"), {F_FROZEN}, only=True),
    wrong("fit", "nll_loss_on_logits", fit_src(loss="F.nll_loss(model(xb), yb)"), {F_FROZEN, F_REF}),
    wrong("fit", "always_sgd", fit_src(opt="opt = torch.optim.SGD(model.parameters(), lr=lr)"), {F_OPT, F_REF},
          only=True),
    correct("fit", "zero_grad_first_inference_mode_weighted", """
            def fit(model, epochs, lr, train_dl, valid_dl, opt_func=torch.optim.SGD):
                opt = opt_func(model.parameters(), lr)
                history = []
                for epoch in range(1, epochs + 1):
                    model.train()
                    seen, running = 0, 0.0
                    for xb, yb in train_dl:
                        model.zero_grad()
                        loss = F.cross_entropy(model(xb), yb)
                        loss.backward()
                        opt.step()
                        running += loss.item() * len(yb)
                        seen += len(yb)
                    model.eval()
                    with torch.inference_mode():
                        pairs = [(model(xb), yb) for xb, yb in valid_dl]
                    logits = torch.cat([p[0] for p in pairs])
                    targets = torch.cat([p[1] for p in pairs])
                    history.append(dict(epoch=epoch, train_loss=running / seen,
                                        valid_loss=F.cross_entropy(logits, targets).item(),
                                        valid_acc=(logits.argmax(1) == targets).float().mean().item()))
                return history
            """),
]

FIT_VARIANTS += [
    correct("fit", "numpy_numbers_and_an_extra_key",
            "import numpy as np\n" + fit_src(
                row='{"epoch": epoch, "train_loss": np.mean(losses), "valid_loss": np.float64(total / n), '
                    '"valid_acc": np.float32(correct / n), "lr": lr}')),
]

# ---------------------------------------------------------------------------------------------
# max_pool2d

M_SMALL, M_BUILTIN = "test_max_pool2d_small_example", "test_max_pool2d_matches_built_in_pooling"
M_STRIDE, M_RAISE = "test_max_pool2d_with_a_stride", "test_max_pool2d_rejects_a_window_larger_than_the_image"
M_REF, M_INPUT = "test_max_pool2d_matches_reference", "test_max_pool2d_leaves_its_input_unchanged"
M_NUMERICAL = {M_SMALL, M_BUILTIN, M_STRIDE, M_REF}

CHECK_FITS = """
    if stride is None:
        stride = kernel_size
    h, w = x.shape[-2:]
    if kernel_size > h or kernel_size > w:
        raise ValueError("the window does not fit")
"""


def pool_src(body: str, check: str = CHECK_FITS) -> str:
    lines = textwrap.dedent(check).strip() + "\n" + textwrap.dedent(body).strip() + "\n"
    return "def max_pool2d(x, kernel_size=2, stride=None):\n" + textwrap.indent(lines, "    ")


MAX_POOL_VARIANTS = [
    wrong("max_pool2d", "built_in_pooling", pool_src("return F.max_pool2d(x, kernel_size, stride)"),
          M_NUMERICAL, explains=(M_BUILTIN, "does not allow")),
    wrong("max_pool2d", "built_in_module_errors_caught", pool_src("""
          try:
              return nn.MaxPool2d(kernel_size, stride)(x)
          except RuntimeError:
              return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).amax(dim=(-2, -1))
          """), M_NUMERICAL),
    wrong("max_pool2d", "average_instead_of_maximum", pool_src(
          "return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).mean(dim=(-2, -1))"),
          M_NUMERICAL, only=True),
    wrong("max_pool2d", "stride_ignored", pool_src(
          "return x.unfold(2, kernel_size, kernel_size).unfold(3, kernel_size, kernel_size).amax(dim=(-2, -1))"),
          {M_STRIDE, M_REF}, only=True),
    wrong("max_pool2d", "no_check_of_the_window", pool_src(
          "return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).amax(dim=(-2, -1))",
          check="\nif stride is None:\n    stride = kernel_size\n"), {M_RAISE}, only=True),
    wrong("max_pool2d", "largest_absolute_value", pool_src("""
          w = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).flatten(-2)
          return w.gather(-1, w.abs().argmax(dim=-1, keepdim=True)).squeeze(-1)
          """), {M_SMALL, M_BUILTIN, M_STRIDE, M_REF}),
    wrong("max_pool2d", "reshape_only_right_for_divisible_sizes", pool_src("""
          n, c, h, w = x.shape
          k = kernel_size
          return x[..., :h - h % k, :w - w % k].reshape(n, c, h // k, k, w // k, k).amax(dim=(3, 5))
          """), {M_STRIDE, M_REF}),
    wrong("max_pool2d", "running_maximum_in_a_view_of_the_input", pool_src("""
          k, s = kernel_size, stride
          oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
          out = x[..., 0:s * (oh - 1) + 1:s, 0:s * (ow - 1) + 1:s]      # a view: the input gets overwritten
          for di in range(k):
              for dj in range(k):
                  if di or dj:
                      torch.maximum(out, x[..., di:di + s * (oh - 1) + 1:s, dj:dj + s * (ow - 1) + 1:s], out=out)
          return out
          """), {M_INPUT}),
    correct("max_pool2d", "running_maximum_of_strided_slices", pool_src("""
            k, s = kernel_size, stride
            oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
            out = None
            for di in range(k):
                for dj in range(k):
                    part = x[..., di:di + s * (oh - 1) + 1:s, dj:dj + s * (ow - 1) + 1:s]
                    out = part if out is None else torch.maximum(out, part)
            return out.clone()
            """)),
    correct("max_pool2d", "as_strided", pool_src("""
            n, c, h, w = x.shape
            k, s = kernel_size, stride
            x = x.contiguous()
            sn, sc, sh, sw = x.stride()
            win = x.as_strided((n, c, (h - k) // s + 1, (w - k) // s + 1, k, k), (sn, sc, sh * s, sw * s, sh, sw))
            return win.reshape(*win.shape[:4], k * k).max(dim=-1).values
            """)),
    correct("max_pool2d", "numpy_sliding_window_view", """
            import numpy as np
            def max_pool2d(x, kernel_size=2, stride=None):
                s = kernel_size if stride is None else stride
                if x.shape[-1] < kernel_size or x.shape[-2] < kernel_size:
                    raise ValueError(f"kernel {kernel_size} larger than the image {tuple(x.shape[-2:])}")
                win = np.lib.stride_tricks.sliding_window_view(x.numpy(), (kernel_size, kernel_size), axis=(2, 3))
                return torch.from_numpy(win[:, :, ::s, ::s].max(axis=(-2, -1)).copy())
            """),
]

# ---------------------------------------------------------------------------------------------
# pool_cnn (self-contained: nothing calls max_pool2d)

P_SHAPE, P_PARAMS = "test_pool_cnn_maps_images_to_ten_logits", "test_pool_cnn_has_the_parameters_of_the_spec"
P_FWD, P_REF = "test_pool_cnn_computes_conv_relu_pool_twice_then_linear", "test_pool_cnn_matches_reference_with_the_same_weights"
P_FRESH = "test_pool_cnn_returns_a_new_model_each_call"


def pool_cnn_src(*layers: str) -> str:
    return "def pool_cnn():\n    return nn.Sequential(\n" + "".join(f"        {l},\n" for l in layers) + "    )\n"


SPEC_LAYERS = ("nn.Conv2d(1, 4, 3, padding=1)", "nn.ReLU()", "nn.MaxPool2d(2, 2)", "nn.Conv2d(4, 8, 3, padding=1)",
               "nn.ReLU()", "nn.MaxPool2d(2, 2)", "nn.Flatten()", "nn.Linear(8 * 7 * 7, 10)")


def spec_with(**changes) -> str:
    layers = list(SPEC_LAYERS)
    for i, layer in changes.items():
        layers[int(i[1:])] = layer
    return pool_cnn_src(*[layer for layer in layers if layer])


POOL_CNN_VARIANTS = [
    wrong("pool_cnn", "average_pooling", spec_with(l2="nn.AvgPool2d(2, 2)", l5="nn.AvgPool2d(2, 2)"),
          {P_FWD, P_REF}, only=True),
    wrong("pool_cnn", "no_padding", spec_with(l0="nn.Conv2d(1, 4, 3)", l3="nn.Conv2d(4, 8, 3)",
                                              l7="nn.Linear(8 * 5 * 5, 10)"),
          {P_PARAMS, P_FWD, P_REF}, explains=(P_PARAMS, "4,266 numbers")),
    wrong("pool_cnn", "second_relu_missing", spec_with(l4=""), {P_FWD, P_REF}, only=True),
    wrong("pool_cnn", "relu_after_the_linear_layer", pool_cnn_src(*SPEC_LAYERS, "nn.ReLU()"), {P_FWD, P_REF},
          only=True),
    wrong("pool_cnn", "channels_last_flatten", textwrap.dedent("""
          class ChannelsLast(nn.Module):
              def forward(self, x):
                  return x.permute(0, 2, 3, 1).flatten(1)
          """) + spec_with(l6="ChannelsLast()"), {P_FWD, P_REF}, only=True),
    wrong("pool_cnn", "one_shared_model", "_POOL_NET = " + spec_with().split("return ", 1)[1].replace("\n    ", "\n")
          + "def pool_cnn():\n    return _POOL_NET\n", {P_FRESH}, only=True),
    correct("pool_cnn", "module_with_functional_forward", """
            class PoolNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 4, kernel_size=3, padding=1)
                    self.conv2 = nn.Conv2d(4, 8, kernel_size=3, padding=1)
                    self.fc = nn.Linear(392, 10)
                def forward(self, x):
                    x = F.max_pool2d(F.relu(self.conv1(x)), 2)
                    x = F.max_pool2d(F.relu(self.conv2(x)), 2)
                    return self.fc(torch.flatten(x, 1))
            def pool_cnn():
                return PoolNet()
            """),
    correct("pool_cnn", "ordered_dict_pool_before_relu", """
            from collections import OrderedDict
            def pool_cnn():
                # max pooling and ReLU commute, so pooling first computes the same thing (on fewer numbers)
                return nn.Sequential(OrderedDict([
                    ("conv1", nn.Conv2d(1, 4, 3, padding=1)), ("pool1", nn.MaxPool2d(2)), ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(4, 8, 3, padding=1)), ("pool2", nn.MaxPool2d(2)), ("relu2", nn.ReLU()),
                    ("flatten", nn.Flatten()), ("fc", nn.Linear(8 * 7 * 7, 10)),
                ]))
            """),
]

ALL = [CONV_VARIANTS, SIMPLE_CNN_VARIANTS, LOADER_VARIANTS, ACCURACY_VARIANTS, FIT_VARIANTS, MAX_POOL_VARIANTS,
       POOL_CNN_VARIANTS]
GRADER = VariantGrader(AID, CELL, [v for vs in ALL for v in vs])


@pytest.mark.parametrize("variant", GRADER.variants, ids=lambda v: v.id)
def test_variant(variant):
    assert_grades(GRADER.results(variant), variant)


def test_every_function_has_three_wrong_and_one_correct_variant():
    for vs in ALL:
        assert sum(bool(v.fails) for v in vs) >= 3 and sum(not v.fails for v in vs) >= 1, vs[0].function


# ---------------------------------------------------------------------------------------------
# get_dataloaders with hidden state, graded as the sandbox grades: the checks that only read the loaders
# share one result (Namespace.shared_result), made after the notebook's own calls (its cells call
# get_dataloaders() and, through train_simple_cnn, get_dataloaders(BATCH_SIZE) before any check runs).

class _SharingNamespace(InProcessNamespace):
    """Shares results between checks as the sandboxed worker does (here in the test's process)."""

    shares_results = True


HIDDEN_STATE = [
    wrong("get_dataloaders", "counter_forgets_normalising_after_the_first_call", """
          _calls = [0]
          def get_dataloaders(batch_size=256, root=DATA_DIR):
              _calls[0] += 1
              train_ds = torchvision.datasets.FashionMNIST(root, train=True, download=False)
              valid_ds = torchvision.datasets.FashionMNIST(root, train=False, download=False)
              train_x, valid_x = train_ds.data.float() / 255, valid_ds.data.float() / 255
              mean, std = (train_x.mean(), train_x.std()) if _calls[0] == 1 else (0.0, 1.0)
              return (DataLoader(TensorDataset(((train_x - mean) / std).unsqueeze(1), train_ds.targets),
                                 batch_size=batch_size, shuffle=True),
                      DataLoader(TensorDataset(((valid_x - mean) / std).unsqueeze(1), valid_ds.targets),
                                 batch_size=500))
          """, {G_NORM, G_STATS, G_REF}),
    wrong("get_dataloaders", "normalises_a_global_cache_in_place", """
          _DATA = {}
          def get_dataloaders(batch_size=256, root=DATA_DIR):
              if not _DATA:   # read the files once
                  for split, train in (("train", True), ("valid", False)):
                      ds = torchvision.datasets.FashionMNIST(root, train=train, download=False)
                      _DATA[split] = (ds.data.float().div(255).unsqueeze(1), ds.targets)
              for x, _ in _DATA.values():
                  x.sub_(0.2860).div_(0.3530)   # in place: every call normalises the cached images again
              return (DataLoader(TensorDataset(*_DATA["train"]), batch_size=batch_size, shuffle=True),
                      DataLoader(TensorDataset(*_DATA["valid"]), batch_size=500))
          """, {G_NORM, G_STATS, G_REF}),
    wrong("get_dataloaders", "validation_shuffled_shared", loaders_src(valid_shuffle="True"), {G_VALID, G_REF},
          only=True),
]


@pytest.mark.parametrize("variant", HIDDEN_STATE, ids=lambda v: v.id)
def test_hidden_state_still_loses_points_with_shared_results(variant):
    assignment = Course().get(AID)
    ns = namespace_with(AID, variant.source)
    exec("get_dataloaders()\nget_dataloaders(BATCH_SIZE)", ns)  # noqa: S102 - the notebook's own calls
    sub = _SharingNamespace(ns, label="submission")
    results, problems = run_checks([assignment.public_checks, assignment.hidden_checks], sub,
                                   load_reference(assignment), cells=[CELL["get_dataloaders"]],
                                   hidden_files={assignment.hidden_checks})
    assert not problems, problems
    shared = [c for c in sub.calls if c.op == "eval" and c.what == "get_dataloaders()"]
    assert len(shared) == 6, "the checks that only read the loaders should share one result"
    if "_calls" in ns:  # the notebook's two calls, the one shared call, the default batch size's own call
        assert ns["_calls"][0] == 4, ns["_calls"]
    assert_grades({r.name: r for r in results}, variant)
