"""Public checks of 04_cnn: the oracle is PyTorch itself, the grader's own copy of Fashion-MNIST,
or literal values.

The trained ``model`` is evaluated by the grader on held-out images it loads itself (a fixed
subset of the official test split), in eval mode and without gradients; the accuracy a notebook
prints is never trusted.  ``fit`` is run on a tiny "spy" model that records, for every forward
call, whether it was a training or a validation batch, the model's mode and whether autograd
was on.
"""


import torch
import torch.nn.functional as F

from autograder.authoring.api import Handle, check, expect_raises
from autograder.authoring.compare import (
    expect,
    expect_close,
    expect_equal,
    expect_tensor,
    expect_tensor_of,
    fmt_call,
)

from . import common as C

P = C.P


# -- conv ---------------------------------------------------------------------------------------------

def _conv_layers(sub, *args, **kwargs):
    """(what, block handle, structure, describe() of each child) of ``conv(*args, **kwargs)``."""
    what = fmt_call("conv", *args, **kwargs)
    block = sub.conv(*args, **kwargs)
    expect(isinstance(block, Handle), f"{what} should return an nn.Sequential, got {C.show(block)}")
    s = C.structure(sub, block)
    expect(s["is_sequential"], f"{what} should return an nn.Sequential (or a subclass of it), got a {s['type']}")
    return what, block, s, [child for _, child in sub.describe(block)["children"]]


def _first_conv(what, s, layers):
    expect(s["children"][:1] == ["Conv2d"], f"{what}: the first layer should be an nn.Conv2d, got {C.layer_names(s)}")
    return layers[0]["attrs"]


@check(cell="test_conv", points=1, kind="shape",
       hint="Each argument of conv has a matching setting of the convolution layer, defaults included: compare "
            "the setting named in the message with what you passed on (section 2, 'A convolution block').")
def test_conv_conv2d_channels_kernel_and_stride(sub):
    for args, kwargs in [((1, 8), {}), ((3, 16), {"ks": 5, "stride": 2}), ((6, 4), {"ks": 3, "stride": 1}),
                         ((2, 5), {"ks": 1, "stride": 3, "act": False})]:
        what, _, s, layers = _conv_layers(sub, *args, **kwargs)
        attrs = _first_conv(what, s, layers)
        ks, stride = kwargs.get("ks", 3), kwargs.get("stride", 2)
        for name, want in (("in_channels", args[0]), ("out_channels", args[1]), ("kernel_size", (ks, ks)),
                           ("stride", (stride, stride)), ("bias", True)):
            expect(attrs.get(name) == want, f"{what}: the Conv2d should have {name}={want}, got {attrs.get(name)}")


@check(cell="test_conv", points=1, kind="shape",
       hint="The padding depends on the kernel size: it is what keeps an odd kernel centred on every pixel. "
            "Reread the size formula in section 2 and work it out for ks = 1, 3, 5 and 7.")
def test_conv_padding_is_half_the_kernel(sub):
    for ks, stride in [(3, 2), (5, 2), (1, 1), (7, 1)]:
        what, _, s, layers = _conv_layers(sub, 2, 3, ks=ks, stride=stride)
        attrs = _first_conv(what, s, layers)
        expect(attrs.get("padding") == (ks // 2, ks // 2),
               f"{what}: the Conv2d should have padding={ks // 2} (ks // 2), got padding={attrs.get('padding')}")


@check(cell="test_conv", points=1, kind="behaviour",
       hint="`act` decides whether the block ends with a ReLU: with act=False the block holds the convolution "
            "alone, with act=True the convolution and then the ReLU.")
def test_conv_relu_only_when_act(sub):
    for act in (True, False):
        what, _, s, _ = _conv_layers(sub, 4, 8, act=act)
        want = ["Conv2d", "ReLU"] if act else ["Conv2d"]
        expect(s["children"] == want, f"{what} should hold exactly the layers {want}, got {C.layer_names(s)}")


@check(cell="test_conv", points=1, kind="numerical",
       hint="The output is the convolution of the input with the block's own weight and bias, followed by the "
            "ReLU when act is true; if the shape is off, reread the size formula of section 2.")
def test_conv_forward_matches_conv2d_and_relu(sub):
    for ni, nf, ks, stride, act, shape in [(3, 5, 3, 2, True, (2, 3, 13, 9)), (2, 4, 5, 1, False, (3, 2, 8, 11))]:
        what, block, _, _ = _conv_layers(sub, ni, nf, ks=ks, stride=stride, act=act)
        x = torch.randn(shape)
        n = sub.eval(f"len(list({P}m.parameters()))", **{f"{P}m": block})
        convs = C.conv_parameters(sub, block)
        expect(n == 2 and len(convs) == 1 and convs[0][1] is not None,
               f"{what} should have 2 parameter tensors (one Conv2d's weight and bias), got {n}")
        weight, bias = convs[0]
        want = F.conv2d(x, weight, bias, stride=stride, padding=ks // 2)
        if act:
            want = F.relu(want)
        for training in (True, False):
            C.set_mode(sub, block, training)
            expect_tensor(block(x), want, atol=1e-5,
                          what=f"{what} applied to x {tuple(shape)} in {'training' if training else 'eval'} mode")


# -- simple_cnn -----------------------------------------------------------------------------------------

def _model(sub):
    model = sub.simple_cnn()
    expect(isinstance(model, Handle), f"simple_cnn() should return an nn.Module, got {C.show(model)}")
    desc = sub.describe(model)
    expect(C.structure(sub, model)["is_module"], f"simple_cnn() should return an nn.Module, got a {desc['type']}")
    return model, desc


@check(cell="test_simple_cnn", points=2, kind="shape",
       hint="Follow the grid size block by block (the table of section 3): how many stride-2 blocks does it take "
            "to reach 1x1, how many channels must the last one give, and what turns (N, C, 1, 1) into (N, C)?")
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
       hint="Compare your channel counts with the table of section 3 (about 30,000 parameters in all); the "
            "demo after the test cell prints the parameters of every layer.")
def test_simple_cnn_has_at_most_60000_parameters(sub):
    _, desc = _model(sub)
    n = desc["n_parameters"]
    expect(0 < n <= 60_000, f"simple_cnn() should have at most 60,000 parameters, it has {n:,}")


@check(cell="test_simple_cnn", points=1, kind="behaviour",
       hint="This network is convolutions only: the last convolution, with one channel per class on a 1x1 grid, "
            "already does the classifying (section 3).")
def test_simple_cnn_has_no_linear_layer(sub):
    model, _ = _model(sub)
    found = C.structure(sub, model)["linear"]
    expect(not found, f"simple_cnn() should contain no linear layer, found {found}")


@check(cell="test_simple_cnn", points=1, kind="behaviour",
       hint="Logits must be free to be negative, so nothing may clip the last block's output: which of its "
            "layers would do that? (section 2, the `act` switch)")
def test_simple_cnn_logits_can_be_negative(sub):
    model, _ = _model(sub)
    out = model(torch.randn(16, 1, 28, 28))
    expect(type(out) is torch.Tensor and out.numel() > 0, "simple_cnn() should return a tensor of logits")
    expect(bool((out < 0).any()), f"all {out.numel()} logits of an untrained simple_cnn() are >= 0 on random "
                                  "images: is there a ReLU after the last convolution?")


# -- get_dataloaders ------------------------------------------------------------------------------------

#: The checks below only read the loaders: they share one get_dataloaders(LOADERS_BATCH) result, each its own
#: copy (docs/AUTHORING.md, "Shared results"); the default batch size's check calls the function itself.
LOADERS_BATCH = 64


def _loaders(sub, batch_size=LOADERS_BATCH):
    dls = sub.shared_result("get_dataloaders", batch_size)
    expect(type(dls) in (tuple, list) and len(dls) == 2,
           f"get_dataloaders({batch_size}) should return (train_dl, valid_dl), got {C.show(dls)}")
    return dls


def _first_batch(sub, dl, what):
    batch = sub.eval(f"next(iter({P}dl))", **{f"{P}dl": dl})
    expect(type(batch) in (tuple, list) and len(batch) == 2 and all(type(t) is torch.Tensor for t in batch),
           f"each batch of {what} should be a pair (images, labels) of tensors, got {C.show(batch)}")
    return batch


@check(cell="test_get_dataloaders", points=1, kind="shape",
       hint="A batch of images has a channel axis, even for grey images: (B, 1, 28, 28) float32, with labels (B,) "
            "int64; compare with the shape in the message.")
def test_get_dataloaders_batch_shapes(sub):
    train_dl, valid_dl = _loaders(sub)
    for dl, name, exact in ((train_dl, "the training loader", True), (valid_dl, "the validation loader", False)):
        xb, yb = _first_batch(sub, dl, name)
        b = xb.shape[0] if xb.dim() > 0 else 0
        if exact:
            expect(b == 64, f"get_dataloaders(64): {name}'s batches should hold 64 images, got {b}")
        expect(b > 0, f"get_dataloaders(64): {name}'s images should have shape (batch, 1, 28, 28), "
                      f"got {tuple(xb.shape)}")
        expect_tensor_of(xb, (b, 1, 28, 28), torch.float32, what=f"get_dataloaders(64): {name}'s images")
        expect_tensor_of(yb, (b,), torch.int64, what=f"get_dataloaders(64): {name}'s labels")


@check(cell="test_get_dataloaders", points=2, kind="numerical",
       hint="Two numbers normalise every image of both sets: the mean and standard deviation of all the TRAINING "
            "pixels after scaling to [0, 1] (about 0.286 and 0.353). The message says which numbers yours look like.")
def test_get_dataloaders_normalised_with_training_statistics(sub):
    _, valid_dl = _loaders(sub)
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
            guess = "they are not the test images, in order, normalised with one fixed mean and standard deviation"
        else:
            m, s = round(float(-c / a), 4) + 0.0, round(float(1 / a), 4) + 0.0
            guess = f"they look like (pixel / 255 - {m:.4f}) / {s:.4f}"
        expect(False, f"the first {b} validation images should be (pixel / 255 - {mean:.4f}) / {std:.4f} "
                      f"(the training set's mean and std); {guess}")


@check(cell="test_get_dataloaders", points=1, kind="numerical",
       hint="The training images need the same normalisation as the validation images.")
def test_get_dataloaders_training_images_have_mean_0_std_1(sub):
    train_dl, _ = _loaders(sub)
    xs = sub.eval(f"[b[0] for b, _ in zip({P}dl, range(125))]", **{f"{P}dl": train_dl})  # 8,000 images
    expect(all(type(x) is torch.Tensor for x in xs) and xs, "the training loader should yield image tensors")
    x = torch.cat([t.to(torch.float64).flatten() for t in xs])
    mean, std = float(x.mean()), float(x.std())
    expect(abs(mean) < 0.02 and abs(std - 1) < 0.02,
           f"over {len(xs)} training batches the pixels have mean {mean:.3f} and std {std:.3f}; "
           f"after normalising they should be about 0 and 1")


@check(cell="test_get_dataloaders", points=1, kind="behaviour",
       hint="The training loader should serve all 60,000 training images in a new random order every epoch "
            "(section 1, 'Data loaders').")
def test_get_dataloaders_training_set_is_shuffled(sub):
    train_dl, _ = _loaders(sub)
    n = sub.eval(f"len({P}dl.dataset)", **{f"{P}dl": train_dl})
    expect_equal(n, 60_000, what="the number of training images (len(train_dl.dataset))")
    _, first = _first_batch(sub, train_dl, "the training loader")
    _, second = _first_batch(sub, train_dl, "the training loader")
    expect(not torch.equal(first, second),
           "two passes over the training loader start with the same labels: shuffle the training set")


@check(cell="test_get_dataloaders", points=1, kind="behaviour",
       hint="The validation set is the official test split of 10,000 images, served in its original order.")
def test_get_dataloaders_validation_is_the_test_split_in_order(sub):
    _, valid_dl = _loaders(sub)
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
       hint="Each row of logits is one image; its prediction is the class with the largest score in that row "
            "(section 4). Work the example in the message out by hand.")
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
       hint="The docstring asks for a plain Python number, not a 0-d tensor: fit adds these numbers up and "
            "stores them in its history.")
def test_accuracy_returns_a_python_float(sub):
    logits, targets = torch.randn(6, 4), torch.randint(0, 4, (6,))
    got = sub.accuracy(logits, targets)
    # NumPy floating scalars arrive as Python floats; a Python int (0 or 1) is a number too.
    expect(type(got) in (float, int) and not isinstance(got, bool),
           f"{fmt_call('accuracy', logits, targets)} should return a Python float, got {C.show(got)}")


@check(cell="test_accuracy", points=1, kind="numerical",
       hint="Accuracy is the share of rows whose largest logit sits at the target's index; count over the class "
            "axis, not the batch axis (section 4 names the classic bug).")
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
       hint="fit returns a list with one dict per epoch, with the four keys of the docstring (an empty list for "
            "0 epochs).")
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


_MODE, _GRAD = 1, 2  # a spy record is (phase, model.training, torch.is_grad_enabled())


def _fit_switch_check(phase, hint, *rules):
    """A 1-point check that every ``phase`` batch of a spied ``fit`` ran as each rule says.

    A rule is ``(field, want, wrong, advice)``: the record's ``field`` must be ``want`` for every
    batch; otherwise the message counts the batches that ran ``wrong`` and gives the ``advice``.
    """
    @check(cell="test_fit", points=1, kind="behaviour", hint=hint)
    def switch_check(sub):
        train, valid = _spy_calls(sub)
        batches = train if phase == "training" else valid
        for field, want, wrong, advice in rules:
            bad = sum(bool(r[field]) != want for r in batches)
            expect(bad == 0, f"{bad} of {len(batches)} {phase} batches ran {wrong}{': ' + advice if advice else ''}")
    return switch_check


test_fit_trains_in_training_mode_with_gradients = _fit_switch_check(
    "training",
    "Evaluation switches the model to eval mode; every epoch's training must start in training mode again "
    "(section 5, the two switches).",
    (_MODE, True, "in eval mode", "switch the model to training mode before each epoch's training loop"),
    (_GRAD, True, "without gradients", ""))
test_fit_evaluates_in_eval_mode = _fit_switch_check(
    "validation", "Validation should see the model in evaluation mode (section 5, the two switches).",
    (_MODE, False, "in training mode", "call model.eval() before validating (it matters for dropout and batch norm)"))
test_fit_evaluates_without_gradients = _fit_switch_check(
    "validation", "Nothing is differentiated during validation, so autograd should not record it (section 5).",
    (_GRAD, False, "with gradients enabled", "switch autograd off for the validation pass (torch.no_grad())"))


@check(cell="test_fit", points=1, kind="behaviour",
       hint="fit's optimiser is made by opt_func, from the model's parameters and the learning rate lr, once per "
            "call; it steps once per training batch.")
def test_fit_uses_opt_func_with_lr(sub):
    C.setup_spy(sub, C.spy_state(), C.spy_data(n_train=24, n_valid=12), batch_size=6)
    C.run_fit(sub, 2, 0.125, opt=f"{P}SpyOpt")
    made = sub.eval(f"[dict(i) for i in {P}SpyOpt.made]")
    expect(len(made) >= 1, "fit did not create its optimizer with the opt_func it was given")
    steps = sum(int(i["steps"]) for i in made)
    expect(all(i["lr"] == 0.125 for i in made), f"opt_func should get lr=0.125, got {[i['lr'] for i in made]}")
    expect(all(i["n_params"] == 12 for i in made),
           f"opt_func should get all the model's parameters (12 numbers), got {[i['n_params'] for i in made]}")
    expect(steps == 8, f"with 4 training batches and 2 epochs the optimizer should step 8 times, it stepped "
                       f"{steps} times")


@check(cell="test_fit", points=1, kind="numerical",
       hint="With lr=0 nothing changes, so each number is fixed: train_loss averages the epoch's batch losses, "
            "valid_loss and valid_acc cover every validation image (a smaller last batch counts less).")
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
       hint="Each batch needs the five steps of section 5, in order; a missing or misplaced step shows as a "
            "loss that does not fall.")
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
       hint="Run the training cell after your functions pass their checks. Far below 85%: look at the checks of "
            "fit and get_dataloaders first (one step of the loop or the normalisation is usually off).")
def test_model_reaches_85_percent_on_heldout_images(sub):
    acc = C.trained_model_accuracy(sub, "public")
    expect(acc >= 0.85, f"the trained `model` classifies {acc:.1%} of {C.PUBLIC_HELDOUT:,} held-out test images "
                        "correctly; it should reach at least 85%")


# -- max_pool2d ---------------------------------------------------------------------------------------------

@check(cell="test_max_pool2d", points=1, kind="numerical",
       hint="Each output value is the largest of one window; with the default stride the windows do not overlap. "
            "Work the 4x4 example in the message out by hand (section 9).")
def test_max_pool2d_small_example(sub):
    x = torch.tensor([[[[1., 3., -2., 0.],
                        [4., 2., 5., -1.],
                        [-3., 0., 1., 1.],
                        [2., -5., 0., 2.]]]])
    want = torch.tensor([[[[4., 5.], [2., 2.]]]])
    expect_tensor(C.call_without_pooling(sub, x, 2), want, what="max_pool2d(x (1, 1, 4, 4) shown below, 2)",
                  show_values=True)


@check(cell="test_max_pool2d", points=2, kind="numerical",
       hint="Pooling works on every image and every channel separately; leftover rows and columns that do not "
            "fill a whole window are dropped, as the size formula says.")
def test_max_pool2d_matches_built_in_pooling(sub):
    for shape, k in [((2, 3, 8, 6), 2), ((3, 2, 7, 9), 2), ((1, 4, 9, 12), 3), ((2, 1, 5, 5), 5), ((1, 2, 6, 4), 1)]:
        x = torch.randn(shape)
        expect_tensor(C.call_without_pooling(sub, x, k), C.oracle_pool(x, k),
                      what=f"max_pool2d(x {shape}, {k}) against F.max_pool2d", atol=1e-6, rtol=0)


@check(cell="test_max_pool2d", points=1, kind="numerical",
       hint="A stride smaller than the kernel makes the windows overlap; the window then moves by `stride` "
            "pixels, not by kernel_size. Check the output size against the formula first.")
def test_max_pool2d_with_a_stride(sub):
    for shape, k, s in [((2, 2, 9, 7), 3, 2), ((1, 3, 6, 8), 2, 1), ((2, 1, 10, 11), 2, 3)]:
        x = torch.randn(shape)
        expect_tensor(C.call_without_pooling(sub, x, k, stride=s), C.oracle_pool(x, k, s),
                      what=f"max_pool2d(x {shape}, {k}, stride={s}) against F.max_pool2d", atol=1e-6, rtol=0)


@check(cell="test_max_pool2d", points=1, kind="error",
       hint="Before computing anything, compare the window with the image's height and width.")
def test_max_pool2d_rejects_a_window_larger_than_the_image(sub):
    for shape, k in [((1, 1, 4, 6), 5), ((2, 3, 7, 3), 4)]:
        x = torch.randn(shape)
        expect_raises(lambda x=x, k=k: C.call_without_pooling(sub, x, k), "ValueError",
                      what=f"max_pool2d(x {shape}, {k})")


# -- pool_cnn -------------------------------------------------------------------------------------------------

def _pool_model(sub):
    model = sub.pool_cnn()
    expect(isinstance(model, Handle), f"pool_cnn() should return an nn.Module, got {C.show(model)}")
    s = C.structure(sub, model)
    expect(s["is_module"], f"pool_cnn() should return an nn.Module, got a {s['type']}")
    return model


def _pool_weights(sub, model) -> dict:
    params = C.parameter_list(sub, model)
    w = C.by_shape(params)
    n = sum(int(t.numel()) for _, t in params)
    expect(w is not None,
           f"pool_cnn() should hold exactly the parameters of the two convolutions and the linear layer of the "
           f"docstring, shapes {[shape for _, shape in C.POOL_CNN_SHAPES]} ({C.POOL_CNN_N_PARAMETERS:,} numbers); "
           f"it has {[tuple(shape) for shape, _ in params]} ({n:,} numbers)")
    return w


@check(cell="test_pool_cnn", points=1, kind="shape",
       hint="Follow the grid through the network: two 2x2 poolings take 28x28 to 7x7, and the linear layer "
            "expects the 8 channels of that grid flattened.")
def test_pool_cnn_maps_images_to_ten_logits(sub):
    model = _pool_model(sub)
    for n in (1, 4):
        out = model(torch.randn(n, 1, 28, 28))
        expect(type(out) is torch.Tensor and tuple(out.shape) == (n, 10) and out.dtype == torch.float32,
               f"pool_cnn()(x ({n}, 1, 28, 28)) should return float32 logits ({n}, 10), got {C.show(out)}")


@check(cell="test_pool_cnn", points=1, kind="shape",
       hint="Pooling layers have no parameters; only the two convolutions and the linear layer do "
            "(count them with the table in section 9).")
def test_pool_cnn_has_the_parameters_of_the_spec(sub):
    _pool_weights(sub, _pool_model(sub))


@check(cell="test_pool_cnn", points=2, kind="numerical",
       hint="The order matters: convolution, ReLU, pooling, twice, then flatten and the linear layer; each "
            "convolution pads so that it keeps the grid size.")
def test_pool_cnn_computes_conv_relu_pool_twice_then_linear(sub):
    model = _pool_model(sub)
    w = _pool_weights(sub, model)
    x = torch.randn(3, 1, 28, 28)
    for training in (True, False):
        C.set_mode(sub, model, training)
        expect_tensor(model(x), C.pool_cnn_oracle(x, w), atol=1e-5,
                      what=f"pool_cnn() in {'training' if training else 'eval'} mode on x (3, 1, 28, 28), against "
                           "the docstring's layers computed with its own weights")
