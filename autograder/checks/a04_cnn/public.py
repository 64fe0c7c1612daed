"""Public checks of 04_cnn: the oracle is PyTorch itself, the grader's own copy of Fashion-MNIST,
or literal values.

The trained ``model`` is evaluated by the grader on held-out images it loads itself (a fixed
subset of the official test split), in eval mode and without gradients; the accuracy a notebook
prints is never trusted.  ``fit`` is run on a tiny "spy" model that records, for every forward
call, whether it was a training or a validation batch, the model's mode and whether autograd
was on.
"""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from autograder.api import Handle, check, expect, expect_close, expect_equal, expect_tensor, fmt_call


def _common():
    spec = importlib.util.spec_from_file_location("_a04_cnn_common", Path(__file__).with_name("common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C = _common()
P = C.P


# -- conv ---------------------------------------------------------------------------------------------

def _conv_layers(sub, *args, **kwargs):
    what = fmt_call("conv", *args, **kwargs)
    block = sub.conv(*args, **kwargs)
    expect(isinstance(block, Handle), f"{what} should return an nn.Sequential, got {C.show(block)}")
    desc = sub.describe(block)
    expect(C.is_type(desc, C.SEQUENTIAL), f"{what} should return an nn.Sequential, got a {desc['type']}")
    return what, block, desc, [child for _, child in desc["children"]]


def _first_conv(what, layers):
    expect(len(layers) >= 1 and C.is_type(layers[0], C.CONV2D),
           f"{what}: the first layer should be an nn.Conv2d, got "
           f"{[layer['type'] for layer in layers] or 'an empty Sequential'}")
    return layers[0]["attrs"]


@check(cell="test_conv", points=1, kind="shape",
       hint="nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2): pass every argument on.")
def test_conv_conv2d_channels_kernel_and_stride(sub):
    for args, kwargs in [((1, 8), {}), ((3, 16), {"ks": 5, "stride": 2}), ((6, 4), {"ks": 3, "stride": 1}),
                         ((2, 5), {"ks": 1, "stride": 3, "act": False})]:
        what, _, _, layers = _conv_layers(sub, *args, **kwargs)
        attrs = _first_conv(what, layers)
        ks, stride = kwargs.get("ks", 3), kwargs.get("stride", 2)
        for name, want in (("in_channels", args[0]), ("out_channels", args[1]), ("kernel_size", (ks, ks)),
                           ("stride", (stride, stride)), ("bias", True)):
            expect(attrs.get(name) == want, f"{what}: the Conv2d should have {name}={want}, got {attrs.get(name)}")


@check(cell="test_conv", points=1, kind="shape",
       hint="padding=ks // 2 keeps an odd kernel centred on each pixel: 1 for ks=3, 2 for ks=5, 0 for ks=1.")
def test_conv_padding_is_half_the_kernel(sub):
    for ks, stride in [(3, 2), (5, 2), (1, 1), (7, 1)]:
        what, _, _, layers = _conv_layers(sub, 2, 3, ks=ks, stride=stride)
        attrs = _first_conv(what, layers)
        expect(attrs.get("padding") == (ks // 2, ks // 2),
               f"{what}: the Conv2d should have padding={ks // 2} (ks // 2), got padding={attrs.get('padding')}")


@check(cell="test_conv", points=1, kind="behaviour",
       hint="Build the list of layers, append nn.ReLU() only `if act`, then nn.Sequential(*layers).")
def test_conv_relu_only_when_act(sub):
    for act in (True, False):
        what, _, _, layers = _conv_layers(sub, 4, 8, act=act)
        kinds = [layer["type"] for layer in layers]
        want = ["Conv2d", "ReLU"] if act else ["Conv2d"]
        expect(len(layers) == len(want) and C.is_type(layers[0], C.CONV2D)
               and (not act or C.is_type(layers[1], C.RELU)),
               f"{what} should hold exactly the layers {want}, got {kinds}")


@check(cell="test_conv", points=1, kind="numerical",
       hint="A stride-2 conv with padding ks//2 maps H to ceil(H / 2); the block is conv then ReLU.")
def test_conv_forward_matches_conv2d_and_relu(sub):
    for ni, nf, ks, stride, act, shape in [(3, 5, 3, 2, True, (2, 3, 13, 9)), (2, 4, 5, 1, False, (3, 2, 8, 11))]:
        what, block, _, _ = _conv_layers(sub, ni, nf, ks=ks, stride=stride, act=act)
        x = torch.randn(shape)
        params = sub.eval(f"{{n: p.detach().clone() for n, p in {P}m.named_parameters()}}", **{f"{P}m": block})
        expect(len(params) == 2, f"{what} should have 2 parameter tensors (the conv's weight and bias), "
                                 f"got {len(params)}")
        weight = next(v for v in params.values() if v.dim() == 4)
        bias = next(v for v in params.values() if v.dim() == 1)
        want = F.conv2d(x, weight, bias, stride=stride, padding=ks // 2)
        if act:
            want = F.relu(want)
        got = block(x)
        expect_tensor(got, want, what=f"{what} applied to x {tuple(shape)}", atol=1e-5)


# -- simple_cnn -----------------------------------------------------------------------------------------

def _model(sub):
    model = sub.simple_cnn()
    expect(isinstance(model, Handle), f"simple_cnn() should return an nn.Module, got {C.show(model)}")
    desc = sub.describe(model)
    expect(desc["is_module"], f"simple_cnn() should return an nn.Module, got a {desc['type']}")
    return model, desc


@check(cell="test_simple_cnn", points=2, kind="shape",
       hint="Stride-2 convs take 28 -> 14 -> 7 -> 4 -> 2 -> 1; the last conv has 10 output channels "
            "(one per class), then nn.Flatten() turns (N, 10, 1, 1) into (N, 10).")
def test_simple_cnn_maps_images_to_ten_logits(sub):
    model, _ = _model(sub)
    for n in (1, 5):
        x = torch.randn(n, 1, 28, 28)
        out = model(x)
        expect(type(out) is torch.Tensor, f"simple_cnn()(x ({n}, 1, 28, 28)) should return a tensor, got "
                                          f"{type(out).__name__}")
        expect(tuple(out.shape) == (n, 10), f"simple_cnn()(x ({n}, 1, 28, 28)) should return logits of shape "
                                            f"({n}, 10), got {tuple(out.shape)}")
        expect(out.dtype == torch.float32, f"simple_cnn()'s logits should be float32, got {out.dtype}")


@check(cell="test_simple_cnn", points=1, kind="shape",
       hint="Count with sum(p.numel() for p in model.parameters()); fastbook's stack has about 30,000.")
def test_simple_cnn_has_at_most_60000_parameters(sub):
    _, desc = _model(sub)
    n = desc["n_parameters"]
    expect(0 < n <= 60_000, f"simple_cnn() should have at most 60,000 parameters, it has {n:,}")


@check(cell="test_simple_cnn", points=1, kind="behaviour",
       hint="This model is all convolutions: the last conv (10 channels on a 1x1 grid) does the classifying.")
def test_simple_cnn_has_no_linear_layer(sub):
    _, desc = _model(sub)
    found = [m["type"] for m in C.walk(desc) if any(C.is_type(m, t) for t in C.LINEAR_TYPES)]
    expect(not found, f"simple_cnn() should contain no linear layer, found {found}")


@check(cell="test_simple_cnn", points=1, kind="behaviour",
       hint="Call conv(..., act=False) for the last block: cross-entropy needs raw scores that can be negative.")
def test_simple_cnn_logits_can_be_negative(sub):
    model, _ = _model(sub)
    out = model(torch.randn(16, 1, 28, 28))
    expect(type(out) is torch.Tensor and out.numel() > 0, "simple_cnn() should return a tensor of logits")
    expect(bool((out < 0).any()), f"all {out.numel()} logits of an untrained simple_cnn() are >= 0 on random "
                                  "images: is there a ReLU after the last convolution?")


# -- get_dataloaders ------------------------------------------------------------------------------------

def _loaders(sub, batch_size):
    dls = sub.get_dataloaders(batch_size)
    expect(type(dls) in (tuple, list) and len(dls) == 2,
           f"get_dataloaders({batch_size}) should return (train_dl, valid_dl), got {C.show(dls)}")
    return dls


def _first_batch(sub, dl, what):
    batch = sub.eval(f"next(iter({P}dl))", **{f"{P}dl": dl})
    expect(type(batch) in (tuple, list) and len(batch) == 2 and all(type(t) is torch.Tensor for t in batch),
           f"each batch of {what} should be a pair (images, labels) of tensors, got {C.show(batch)}")
    return batch


@check(cell="test_get_dataloaders", points=1, kind="shape",
       hint="Images (B, 1, 28, 28) float32 and labels (B,) int64; add the channel axis with unsqueeze(1).")
def test_get_dataloaders_batch_shapes(sub):
    train_dl, valid_dl = _loaders(sub, 64)
    for dl, name, exact in ((train_dl, "the training loader", True), (valid_dl, "the validation loader", False)):
        xb, yb = _first_batch(sub, dl, name)
        b = xb.shape[0] if xb.dim() > 0 else 0
        if exact:
            expect(b == 64, f"get_dataloaders(64): {name}'s batches should hold 64 images, got {b}")
        expect(tuple(xb.shape) == (b, 1, 28, 28) and b > 0,
               f"get_dataloaders(64): {name}'s images should have shape (batch, 1, 28, 28), got {tuple(xb.shape)}")
        expect(xb.dtype == torch.float32, f"get_dataloaders(64): {name}'s images should be float32, got {xb.dtype}")
        expect(tuple(yb.shape) == (b,) and yb.dtype == torch.int64,
               f"get_dataloaders(64): {name}'s labels should be int64 of shape ({b},), got "
               f"{yb.dtype} {tuple(yb.shape)}")


@check(cell="test_get_dataloaders", points=2, kind="numerical",
       hint="Scale pixels to [0, 1], then subtract the TRAINING set's mean (about 0.286) and divide by its "
            "standard deviation (about 0.353); use the same two numbers for both sets.")
def test_get_dataloaders_normalised_with_training_statistics(sub):
    _, valid_dl = _loaders(sub, 64)
    b = 64
    # The dataset's first images, whatever order the loader serves them in.
    xs = sub.eval(f"[{P}dl.dataset[i][0] for i in range({b})]", **{f"{P}dl": valid_dl})
    expect(type(xs) is list and all(type(x) is torch.Tensor and x.numel() == 28 * 28 for x in xs),
           "valid_dl.dataset[i] should be a pair (image, label) with an image of 28 x 28 pixels")
    got = torch.stack([x.reshape(1, 28, 28).to(torch.float32) for x in xs])
    _, test_x, _ = C.fashion_mnist()
    raw = test_x[:b].to(torch.float32).div(255).unsqueeze(1)
    want = C.normalise(test_x[:b])
    if not torch.allclose(got, want, atol=1e-3, rtol=0):
        mean, std = C.train_stats()
        # Which normalisation was used?  Fit got = (raw - m) / s by least squares.
        a = ((raw - raw.mean()) * (got - got.mean())).sum() / ((raw - raw.mean()) ** 2).sum()
        c = got.mean() - a * raw.mean()
        residual = float((got - (a * raw + c)).abs().max())
        if residual > 0.01:
            guess = "they are not one fixed (pixel / 255 - mean) / std of the test images, in order"
        else:
            m, s = round(float(-c / a), 4) + 0.0, round(float(1 / a), 4) + 0.0
            guess = f"they look like (pixel / 255 - {m:.4f}) / {s:.4f}"
        expect(False, f"the first {b} validation images should be (pixel / 255 - {mean:.4f}) / {std:.4f} "
                      f"(the training set's mean and std); {guess}")


@check(cell="test_get_dataloaders", points=1, kind="numerical",
       hint="Normalise the training images as well, with the same mean and std.")
def test_get_dataloaders_training_images_have_mean_0_std_1(sub):
    train_dl, _ = _loaders(sub, 500)
    xs = sub.eval(f"[b[0] for b, _ in zip({P}dl, range(16))]", **{f"{P}dl": train_dl})
    expect(all(type(x) is torch.Tensor for x in xs) and xs, "the training loader should yield image tensors")
    x = torch.cat([t.to(torch.float64).flatten() for t in xs])
    mean, std = float(x.mean()), float(x.std())
    expect(abs(mean) < 0.02 and abs(std - 1) < 0.02,
           f"over {len(xs)} training batches the pixels have mean {mean:.3f} and std {std:.3f}; "
           f"after normalising they should be about 0 and 1")


@check(cell="test_get_dataloaders", points=1, kind="behaviour",
       hint="DataLoader(train_ds, batch_size, shuffle=True): a new order every epoch; all 60,000 images.")
def test_get_dataloaders_training_set_is_shuffled(sub):
    train_dl, _ = _loaders(sub, 64)
    n = sub.eval(f"len({P}dl.dataset)", **{f"{P}dl": train_dl})
    expect_equal(n, 60_000, what="the number of training images (len(train_dl.dataset))")
    _, first = _first_batch(sub, train_dl, "the training loader")
    _, second = _first_batch(sub, train_dl, "the training loader")
    expect(not torch.equal(first, second),
           "two passes over the training loader start with the same labels: shuffle the training set")


@check(cell="test_get_dataloaders", points=1, kind="behaviour",
       hint="The validation loader is the official test split (train=False), in its original order (shuffle=False).")
def test_get_dataloaders_validation_is_the_test_split_in_order(sub):
    _, valid_dl = _loaders(sub, 256)
    labels = sub.eval(f"[y for _, y in {P}dl]", **{f"{P}dl": valid_dl})
    expect(type(labels) is list and all(type(y) is torch.Tensor for y in labels),
           "the validation loader should yield (images, labels) pairs of tensors")
    got = torch.cat([y.flatten() for y in labels]) if labels else torch.zeros(0, dtype=torch.int64)
    _, _, test_y = C.fashion_mnist()
    expect(len(got) == 10_000, f"the validation loader should hold the 10,000 images of the test split, "
                               f"got {len(got):,}")
    expect(torch.equal(got.to(torch.int64), test_y),
           "the validation labels are not those of the test split in their original order: use train=False "
           "and do not shuffle the validation loader")


# -- accuracy ---------------------------------------------------------------------------------------------

@check(cell="test_accuracy", points=1, kind="numerical",
       hint="The prediction for each row is the index of its largest logit: argmax over dim=1.")
def test_accuracy_small_example(sub):
    logits = torch.tensor([[2.0, 0.5, -1.0],
                           [0.1, 0.3, 0.2],
                           [-3.0, -2.0, -2.5],
                           [1.0, 4.0, 0.0]])
    targets = torch.tensor([0, 2, 1, 0])
    # argmax per row: 0, 1, 1, 1 -> rows 0 and 2 are right
    expect_close(sub.accuracy(logits, targets), 0.5, what=fmt_call("accuracy", logits, targets) +
                 " (predictions 0, 1, 1, 1 against targets 0, 2, 1, 0)")


@check(cell="test_accuracy", points=1, kind="behaviour",
       hint="Turn the 0-d tensor into a number with .item() (or float(...)).")
def test_accuracy_returns_a_python_float(sub):
    logits, targets = torch.randn(6, 4), torch.randint(0, 4, (6,))
    got = sub.accuracy(logits, targets)
    expect(type(got) is float, f"{fmt_call('accuracy', logits, targets)} should return a Python float, got "
                               f"{C.show(got)}")


@check(cell="test_accuracy", points=1, kind="numerical",
       hint="accuracy = (logits.argmax(dim=1) == targets).float().mean(); softmax does not change the argmax.")
def test_accuracy_matches_argmax_on_random_logits(sub):
    for n, c in [(37, 10), (10, 10), (1, 5), (300, 2)]:
        logits = torch.randn(n, c) * 3
        targets = torch.randint(0, c, (n,))
        hit = torch.rand(n) < 0.6
        targets[hit] = logits.argmax(dim=1)[hit]
        want = float((logits.argmax(dim=1) == targets).float().mean())
        expect_close(sub.accuracy(logits, targets), want, what=fmt_call("accuracy", logits, targets))


# -- fit ----------------------------------------------------------------------------------------------------

@check(cell="test_fit", points=1, kind="behaviour",
       hint='Append {"epoch": epoch, "train_loss": ..., "valid_loss": ..., "valid_acc": ...} once per epoch.')
def test_fit_returns_one_dict_per_epoch(sub):
    C.setup_spy(sub, C.spy_state(), C.spy_data(), batch_size=8)
    rows = C.history_rows(C.run_fit(sub, 3, 0.1), 3)
    epochs = [row["epoch"] for row in rows]
    expect(epochs in ([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]),
           f"the epochs should be numbered 0, 1, 2 (or 1, 2, 3), got {epochs}")
    for row in rows:
        expect(row["train_loss"] > 0 and row["valid_loss"] > 0, f"losses should be positive, got {row}")
        expect(0 <= row["valid_acc"] <= 1, f"valid_acc should be a share in [0, 1], got {row['valid_acc']}")
    expect_equal(C.history_rows(C.run_fit(sub, 0, 0.1), 0), [], what="fit(model, 0, ...)")


def _spy_calls(sub, epochs=2):
    C.setup_spy(sub, C.spy_state(), C.spy_data(n_train=24, n_valid=12), batch_size=6)
    C.run_fit(sub, epochs, 0.05)
    record = C.spy_record(sub)
    train = [r for r in record if r[0] == "train"]
    valid = [r for r in record if r[0] == "valid"]
    expect(len(train) == 4 * epochs, f"fit(model, {epochs}, ...) with 4 training batches should call the model "
                                     f"on 8 training batches, it called it on {len(train)}")
    expect(len(valid) >= 2 * epochs, f"fit(model, {epochs}, ...) with 2 validation batches should call the "
                                     f"model on at least {2 * epochs} validation batches, it called it on "
                                     f"{len(valid)}")
    return train, valid


@check(cell="test_fit", points=1, kind="behaviour",
       hint="Call model.train() at the start of every epoch (evaluation switched it to eval mode).")
def test_fit_trains_in_training_mode_with_gradients(sub):
    train, _ = _spy_calls(sub)
    bad_mode = sum(not r[1] for r in train)
    no_grad = sum(not r[2] for r in train)
    expect(bad_mode == 0, f"{bad_mode} of {len(train)} training batches ran in eval mode: call model.train() "
                          "before each epoch's training loop")
    expect(no_grad == 0, f"{no_grad} of {len(train)} training batches ran without gradients")


@check(cell="test_fit", points=1, kind="behaviour",
       hint="Call model.eval() before the validation loop.")
def test_fit_evaluates_in_eval_mode(sub):
    _, valid = _spy_calls(sub)
    bad = sum(r[1] for r in valid)
    expect(bad == 0, f"{bad} of {len(valid)} validation batches ran in training mode: call model.eval() "
                     "before validating (it matters for dropout and batch norm)")


@check(cell="test_fit", points=1, kind="behaviour",
       hint="Wrap the validation loop in `with torch.no_grad():`.")
def test_fit_evaluates_without_gradients(sub):
    _, valid = _spy_calls(sub)
    bad = sum(r[2] for r in valid)
    expect(bad == 0, f"{bad} of {len(valid)} validation batches ran with gradients enabled: validate inside "
                     "`with torch.no_grad():`")


@check(cell="test_fit", points=1, kind="behaviour",
       hint="Make the optimizer with opt_func(model.parameters(), lr=lr) and call its step() once per batch.")
def test_fit_uses_opt_func_with_lr(sub):
    C.setup_spy(sub, C.spy_state(), C.spy_data(n_train=24, n_valid=12), batch_size=6)
    C.run_fit(sub, 2, 0.125, opt=f"{P}SpyOpt")
    made = sub.eval(f"[dict(i) for i in {P}SpyOpt.made]")
    expect(len(made) >= 1, "fit did not create its optimizer with opt_func(model.parameters(), lr=lr)")
    steps = sum(int(i["steps"]) for i in made)
    expect(all(i["lr"] == 0.125 for i in made), f"opt_func should get lr=0.125, got {[i['lr'] for i in made]}")
    expect(all(i["n_params"] == 12 for i in made),
           f"opt_func should get all the model's parameters (12 numbers), got {[i['n_params'] for i in made]}")
    expect(steps == 8, f"with 4 training batches and 2 epochs the optimizer should step 8 times, it stepped "
                       f"{steps} times")


@check(cell="test_fit", points=1, kind="numerical",
       hint="train_loss: the mean of the batch losses over the epoch; valid_loss: the mean cross-entropy over "
            "all validation images; valid_acc: accuracy() over all validation images.")
def test_fit_reports_the_losses_of_a_frozen_model(sub):
    state, data = C.spy_state(), C.spy_data(n_train=24, n_valid=12)
    C.setup_spy(sub, state, data, batch_size=6)
    rows = C.history_rows(C.run_fit(sub, 2, 0.0), 2)  # lr=0: the model never changes
    xt, yt, xv, yv = data

    def logits(x):
        return x.flatten(1)[:, 1:] @ state["lin.weight"].T + state["lin.bias"]

    want = {"train_loss": float(F.cross_entropy(logits(xt), yt)), "valid_loss": float(F.cross_entropy(logits(xv), yv)),
            "valid_acc": float((logits(xv).argmax(1) == yv).float().mean())}
    for i, row in enumerate(rows):
        for key, value in want.items():
            expect_close(row[key], value, what=f"with lr=0 (the model never changes), history[{i}][{key!r}]",
                         atol=1e-4, rtol=1e-4)


@check(cell="test_fit", points=1, kind="behaviour",
       hint="Per batch: loss = F.cross_entropy(model(xb), yb); loss.backward(); opt.step(); opt.zero_grad().")
def test_fit_learns_an_easy_problem(sub):
    data = C.spy_data(n_train=60, n_valid=30, separable=True)
    C.setup_spy(sub, C.spy_state(), data, batch_size=10)
    rows = C.history_rows(C.run_fit(sub, 6, 0.1), 6)
    first, last = rows[0], rows[-1]
    expect(last["train_loss"] < 0.7 * first["train_loss"],
           f"on an easy, separable problem the training loss should fall: epoch 1 {first['train_loss']:.3f}, "
           f"epoch 6 {last['train_loss']:.3f}")
    expect(last["valid_acc"] >= 0.9, f"on an easy, separable problem valid_acc should reach 0.9 after 6 epochs, "
                                     f"got {last['valid_acc']:.3f}")


# -- the trained model ---------------------------------------------------------------------------------------

@check(cell="test_model", points=3, kind="accuracy", timeout=120,
       hint="Run the training cell after your functions pass their checks. If the model is far below 0.85, "
            "check fit (zero_grad, train/eval) and that get_dataloaders normalises with the training statistics.")
def test_model_reaches_85_percent_on_heldout_images(sub):
    acc = C.trained_model_accuracy(sub, "public")
    expect(acc >= 0.85, f"the trained `model` classifies {acc:.1%} of {C.PUBLIC_HELDOUT:,} held-out test images "
                        "correctly; it should reach at least 85%")
