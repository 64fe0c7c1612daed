"""Public checks of 06_transfer_learning: oracles are torch built-ins, the checkpoint file and literal values."""

import numpy as np
import torch

from autograder.authoring.api import CheckFailure, Handle, StudentError, check, describe_value, expect_equal
from autograder.authoring.compare import expect, expect_close, expect_raises, expect_tensor, fmt_call

from .common import (
    FINETUNED,
    FINETUNED_FLOOR,
    FINETUNED_PUBLIC,
    SUMS_EXPR,
    TINY_ALEX_INPUT,
    TINY_ALEX_PENULTIMATE,
    TINY_INPUT,
    accuracy_of,
    alexnet,
    all_training_flags,
    blobs,
    checkpoint_sums,
    expect_finetuned,
    expect_module,
    first_names,
    fmnist_inputs,
    fresh_alexnet,
    normalise,
    penultimate_oracle,
    structure,
    tiny_alexnet,
    tiny_alexnet_here,
    tiny_net,
    tiny_net_here,
    trainable_names,
    weights_used,
    whole_model_accuracy,
)


# ---------------------------------------------------------------------------------------------- load_alexnet
@check(cell="test_load_alexnet", points=2, kind="numerical",
       hint="torchvision builds the network and loads its checkpoint in one call when you name the weights "
            "(section 1, Exercise 1: the weights enum).")
def test_load_alexnet_has_the_checkpoint_weights(sub):
    model = expect_module(sub.shared_result("load_alexnet"), "load_alexnet()")  # only read: its own copy
    s = structure(sub, model)
    expect(s["kind"] == "AlexNet", f"load_alexnet() should return torchvision's AlexNet, got a {s['type']}")
    sums = sub.eval(SUMS_EXPR, grader_m=model)
    state = checkpoint_sums()
    expect(sorted(sums) == sorted(state), "load_alexnet() returned a model whose parameter names differ from "
                                          "torchvision's AlexNet")
    for key, expected in state.items():
        expect_close(sums[key], expected, atol=1e-6, rtol=1e-6,
                     what=f"load_alexnet() should hold the checkpoint's values: load the weights "
                          f"AlexNet_Weights.IMAGENET1K_V1 ({weights_used()}); the sum of parameter {key}")


@check(cell="test_load_alexnet", points=1, kind="behaviour",
       hint="A freshly built network is in training mode, where dropout is on: the model must come back ready for "
            "inference (section 1, Exercise 1).")
def test_load_alexnet_is_in_eval_mode(sub):
    for kwargs in ({}, {"pretrained": False}):
        model = sub.load_alexnet(**kwargs) if kwargs else sub.shared_result("load_alexnet")  # read only
        d = expect_module(model, fmt_call("load_alexnet", **kwargs)).describe()
        training = [path for path, flag in all_training_flags(d) if flag]
        expect(not training, f"{fmt_call('load_alexnet', **kwargs)} returned a model in training mode "
                             f"({first_names(training, 3)} have training=True): "
                             "call .eval() so that dropout is off")


@check(cell="test_load_alexnet", points=1, kind="behaviour",
       hint="pretrained=False asks for the same architecture without any checkpoint: random initial values.")
def test_load_alexnet_without_pretrained_weights(sub):
    model = expect_module(sub.load_alexnet(pretrained=False), "load_alexnet(pretrained=False)")
    s = structure(sub, model)
    expect(s["kind"] == "AlexNet", f"load_alexnet(pretrained=False) should return an AlexNet, got a {s['type']}")
    sums = sub.eval(SUMS_EXPR, grader_m=model)
    expect("features.0.weight" in sums, "load_alexnet(pretrained=False): features[0] should be AlexNet's Conv2d(3, 64, 11)")
    expect(sums["features.0.weight"] != checkpoint_sums()["features.0.weight"],
           "load_alexnet(pretrained=False) returned the pretrained weights; it should use weights=None "
           f"(random initial values) ({weights_used()})")


# ---------------------------------------------------------------------------------------------- to_nchw
@check(cell="test_to_nchw", points=1, kind="numerical",
       hint="The channel axis moves from last to first, a batch axis of size 1 is added, and 0..255 becomes "
            "0..1 (section 2). Compare the planes in the message with the image.")
def test_to_nchw_small_example(sub):
    img = np.array([[[0, 51, 102], [153, 204, 255]],
                    [[255, 0, 51], [102, 153, 204]]], dtype=np.uint8)       # (2, 2, 3)
    expected = torch.tensor([[[[0.0, 0.6], [1.0, 0.4]],
                              [[0.2, 0.8], [0.0, 0.6]],
                              [[0.4, 1.0], [0.2, 0.8]]]])                     # (1, 3, 2, 2)
    expect_tensor(sub.to_nchw(img), expected, what="to_nchw(a (2, 2, 3) uint8 image)", show_values=True)


@check(cell="test_to_nchw", points=2, kind="numerical",
       hint="Channel c of the result must be the c-th colour value of every pixel; an operation that only cuts the "
            "memory differently mixes neighbouring pixels' colours (section 2, the tiny example).")
def test_to_nchw_non_square_images(sub):
    for h, w, as_tensor in [(5, 7, False), (9, 4, True)]:
        img = np.random.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        arg = torch.from_numpy(img) if as_tensor else img
        expected = torch.from_numpy(img.copy()).permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255
        kind = "tensor" if as_tensor else "numpy array"
        expect_tensor(sub.to_nchw(arg), expected, what=f"to_nchw(a ({h}, {w}, 3) uint8 {kind})")


@check(cell="test_to_nchw", points=1, kind="error",
       hint="Look at the number of dimensions and at where the 3 colours are before converting.")
def test_to_nchw_rejects_channels_first(sub):
    img = np.random.randint(0, 256, size=(3, 6, 8), dtype=np.uint8)
    expect_raises(lambda: sub.to_nchw(img), "ValueError", what="to_nchw(a (3, 6, 8) channels-first array)")


# ---------------------------------------------------------------------------------------------- preprocess
@check(cell="test_preprocess", points=1, kind="shape",
       hint="Whatever comes in, AlexNet needs 3 channels at 224 x 224 in float32 (section 3, 'Size and channels').")
def test_preprocess_output_shape(sub):
    for shape in [(2, 1, 28, 28), (1, 3, 32, 48)]:
        got = sub.preprocess(torch.rand(shape))
        expect(type(got) is torch.Tensor, f"preprocess(x {shape}) should return a tensor")
        expect_equal(tuple(got.shape), (shape[0], 3, 224, 224), what=f"preprocess(x {shape}).shape")
        expect(got.dtype == torch.float32, f"preprocess(x {shape}) should be float32, got {got.dtype}")


@check(cell="test_preprocess", points=2, kind="numerical",
       hint="Each channel is shifted and scaled with the statistics the network was trained with, ImageNet's, not "
            "the data's (section 3, 'Normalisation').")
def test_preprocess_normalises_with_imagenet_statistics(sub):
    x = torch.rand(2, 3, 224, 224)     # already 224 x 224: resizing changes nothing
    expect_tensor(sub.preprocess(x), normalise(x), what="preprocess(x (2, 3, 224, 224))", atol=1e-4)


@check(cell="test_preprocess", points=1, kind="numerical",
       hint="A grey image becomes 3 identical channels first; each channel is then normalised with its own "
            "statistics, so the three end up slightly different.")
def test_preprocess_repeats_grey_images(sub):
    levels = torch.tensor([0.0, 0.3, 1.0])
    x = levels.view(3, 1, 1, 1).expand(3, 1, 28, 28).contiguous()    # three constant grey images
    got = sub.preprocess(x)
    expected = normalise(levels.view(3, 1, 1, 1).expand(3, 3, 224, 224).contiguous())
    expect_tensor(got, expected, what="preprocess(3 constant grey images (3, 1, 28, 28) at 0, 0.3 and 1)",
                  atol=1e-4)


@check(cell="test_preprocess", points=1, kind="error",
       hint="Only batches (N, 1, H, W) and (N, 3, H, W) are valid input: check before computing.")
def test_preprocess_rejects_bad_shapes(sub):
    for shape in [(2, 2, 28, 28), (1, 28, 28)]:
        expect_raises(lambda s=shape: sub.preprocess(torch.rand(s)), "ValueError", what=f"preprocess(x {shape})")


# ---------------------------------------------------------------------------------------------- extract_features
@check(cell="test_extract_features", points=1, kind="shape",
       hint="features gives 256 maps of 6 x 6 per image (section 1's table); one flat vector per image, the batch "
            "axis kept.")
def test_extract_features_alexnet_shape(sub):
    model = alexnet(sub)
    x = normalise(torch.rand(3, 3, 224, 224))
    got = sub.extract_features(model, x, batch_size=2)
    expect(type(got) is torch.Tensor, "extract_features should return a tensor")
    expect_equal(tuple(got.shape), (3, 9216), what="extract_features(alexnet, x (3, 3, 224, 224)).shape")
    expect(got.dtype == torch.float32, f"extract_features(...) should be float32, got {got.dtype}")


@check(cell="test_extract_features", points=2, kind="numerical",
       hint="The small net is handed over in training mode, with BatchNorm and dropout: features must be computed "
            "in evaluation mode (section 5, 'Evaluation mode').")
def test_extract_features_eval_mode_and_flatten(sub):
    model = tiny_net(sub)                      # in training mode, with BatchNorm and Dropout in .features
    x = torch.randn(5, *TINY_INPUT)
    oracle = tiny_net_here().eval()
    with torch.no_grad():
        expected = torch.flatten(oracle.features(x), start_dim=1)
    expect_tensor(sub.extract_features(model, x, batch_size=2), expected, atol=1e-5,
                  what="extract_features(small net with BatchNorm and Dropout in training mode, x (5, 3, 15, 19), "
                       "batch_size=2)")


def _expect_no_graph(sub, name, model, input_shape, grad_advice, inference_advice):
    """``name(model, x (4, ...), batch_size=3)`` returns features without a graph, usable in training later."""
    x = torch.randn(4, *input_shape)
    flags = sub.eval("(lambda t: (bool(t.requires_grad), bool(t.is_inference())))"
                     f"({name}(grader_m, grader_x, batch_size=3))", grader_m=model, grader_x=x)
    expect(not flags[0], f"{name} returned a tensor with requires_grad=True{grad_advice}")
    expect(not flags[1], f"{name} returned an inference-mode tensor, which cannot be used in a training step "
                         f"later{inference_advice}")


@check(cell="test_extract_features", points=1, kind="behaviour",
       hint="Feature extraction needs no autograd graph; and the features must stay usable for training later "
            "(section 5, 'No autograd').")
def test_extract_features_builds_no_graph(sub):
    _expect_no_graph(sub, "extract_features", tiny_net(sub), TINY_INPUT,
                     ": compute it under torch.no_grad() so that no autograd graph is kept",
                     ": use torch.no_grad() (or .clone() the result outside inference_mode)")


# ---------------------------------------------------------------------------------------------- freeze_features
@check(cell="test_freeze_features", points=2, kind="behaviour",
       hint="Every parameter of the pretrained network is frozen, the classifier's too; setting an attribute on "
            "the model itself changes nothing (section 6, the typical mistakes).")
def test_freeze_features_freezes_every_parameter(sub):
    with fresh_alexnet(sub) as model:
        sub.freeze_features(model)
        still = trainable_names(model.describe())
        expect(not still, f"after freeze_features(alexnet), {len(still)} parameters still have requires_grad=True "
                          f"({first_names(still, 4)}): freeze every parameter "
                          "of the pretrained network, the classifier's layers too")


@check(cell="test_freeze_features", points=1, kind="behaviour",
       hint="The docstring asks for the same object back, changed in place, not a copy and not None.")
def test_freeze_features_returns_the_same_model(sub):
    with fresh_alexnet(sub) as model:
        same = sub.eval("freeze_features(grader_m) is grader_m", grader_m=model)
        expect(same is True, "freeze_features(model) should return the model it was given (modified in place)")


# ---------------------------------------------------------------------------------------------- replace_classifier
@check(cell="test_replace_classifier", points=2, kind="shape",
       hint="The classifier keeps its 7 layers; only the last one, which makes ImageNet's 1000 scores, is new "
            "(section 6, the typical mistakes).")
def test_replace_classifier_replaces_the_last_layer(sub):
    with fresh_alexnet(sub) as model:
        sub.replace_classifier(model, 7)
        d = model.describe()
        children = dict(d["children"])
        expect("classifier" in children, "the model lost its .classifier")
        layers = children["classifier"]["children"]
        expect(len(layers) == 7, f"model.classifier should still have 7 layers after replace_classifier(model, 7), "
                                 f"it has {len(layers)}: replace classifier[6] instead of adding or removing layers")
        types = structure(sub, model)["classifier"]
        expected_types = ["Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
        expect(types == expected_types, f"model.classifier should be {expected_types}, got {types}")
        shapes = {p["name"]: tuple(p["shape"]) for p in d["parameters"]}
        for i, (fin, fout) in [(1, (9216, 4096)), (4, (4096, 4096)), (6, (4096, 7))]:
            attrs = layers[i][1]["attrs"]
            expect((attrs.get("in_features"), attrs.get("out_features")) == (fin, fout) and attrs.get("bias"),
                   f"after replace_classifier(model, 7), classifier[{i}] should be Linear({fin}, {fout}) with bias, "
                   f"got Linear({attrs.get('in_features')}, {attrs.get('out_features')}, bias={attrs.get('bias')})")
            expect(shapes.get(f"classifier.{i}.weight") == (fout, fin),
                   f"classifier[{i}].weight should have shape {(fout, fin)}, got {shapes.get(f'classifier.{i}.weight')}: "
                   "create a new nn.Linear rather than editing the old one")


@check(cell="test_replace_classifier", points=1, kind="shape",
       hint="After the replacement, the whole model gives num_classes scores per image.")
def test_replace_classifier_forward_shape(sub):
    with fresh_alexnet(sub) as model:
        sub.replace_classifier(model, 7)
        x = normalise(torch.rand(2, 3, 224, 224))
        try:
            sub.exec("import torch as grader_torch\nwith grader_torch.no_grad():\n    grader_out = grader_m(grader_x)",
                     grader_m=model, grader_x=x)
        except StudentError as err:
            raise CheckFailure(f"after replace_classifier(model, 7), model(x (2, 3, 224, 224)) raised "
                               f"{err.type_name}: {err.message[:300]}") from None
        out = sub.eval("grader_out")
        expect(type(out) is torch.Tensor and tuple(out.shape) == (2, 7),
               f"after replace_classifier(model, 7), model(x (2, 3, 224, 224)) should be (2, 7), "
               f"got {tuple(out.shape) if type(out) is torch.Tensor else type(out).__name__}")


@check(cell="test_replace_classifier", points=1, kind="behaviour",
       hint="A new layer is trainable from the start; every other parameter keeps its requires_grad as it was.")
def test_replace_classifier_new_head_is_the_only_trainable_layer(sub):
    with fresh_alexnet(sub) as model:
        sub.exec("grader_m.requires_grad_(False)", grader_m=model)     # frozen by the grader, not by your code
        sub.replace_classifier(model, 4)
        names = trainable_names(model.describe())
        expect(sorted(names) == ["classifier.6.bias", "classifier.6.weight"],
               f"in a frozen AlexNet, after replace_classifier(model, 4) the trainable parameters should be exactly "
               f"classifier.6.weight and classifier.6.bias, got {names[:6]}")


@check(cell="test_replace_classifier", points=1, kind="behaviour",
       hint="freeze_features freezes everything; replace_classifier then adds the only trainable layer.")
def test_freeze_then_replace_leaves_only_the_head_trainable(sub):
    with fresh_alexnet(sub) as model:
        sub.freeze_features(model)
        sub.replace_classifier(model, 10)
        d = model.describe()
        trainable = {p["name"]: tuple(p["shape"]) for p in d["parameters"] if p["requires_grad"]}
        expect(trainable == {"classifier.6.weight": (10, 4096), "classifier.6.bias": (10,)},
               "after freeze_features(model) and replace_classifier(model, 10), only the new Linear(4096, 10) "
               f"should have requires_grad=True; trainable now: {sorted(trainable)[:6]}")


# ---------------------------------------------------------------------------------------------- train_head
@check(cell="test_train_head", points=1, kind="shape",
       hint="The head is one linear layer from the feature size to the number of classes, returned after training.")
def test_train_head_returns_a_linear_layer(sub):
    feats, labels = blobs(120, 20, 3)
    head = sub.call("train_head", feats, labels, 3, 2, 1e-2, timeout=60)
    expect(isinstance(head, Handle), f"train_head should return an nn.Linear, got {describe_value(head)}")
    d = head.describe()
    s = structure(sub, head)
    expect(s["kind"] == "Linear", f"train_head should return an nn.Linear, got a {s['type']}")
    expect_equal((d["attrs"].get("in_features"), d["attrs"].get("out_features")), (20, 3),
                 what="train_head(features (120, 20), labels, num_classes=3, ...): (in_features, out_features)")


@check(cell="test_train_head", points=2, kind="accuracy",
       hint="Four well separated clusters are easy: a head that does not learn them usually misses a step of the "
            "loop of Exercise 7 (or resets the gradients at the wrong moment).")
def test_train_head_learns_separable_blobs(sub):
    feats, labels = blobs(400, 20, 4)
    train_f, train_y, test_f, test_y = feats[:300], labels[:300], feats[300:], labels[300:]
    head = sub.call("train_head", train_f, train_y, 4, 20, 1e-2, timeout=60)
    acc = accuracy_of(sub, head, test_f, test_y)
    expect(acc >= 0.9, f"train_head(features (300, 20) of 4 well separated clusters, epochs=20, lr=0.01): held-out "
                       f"accuracy {acc:.2f}, expected at least 0.90")


# ---------------------------------------------------------------------------------------------- penultimate_features
@check(cell="test_penultimate_features", points=1, kind="shape",
       hint="What classifier[6] receives is one vector of 4096 numbers per image (section 8).")
def test_penultimate_features_alexnet_shape(sub):
    model = alexnet(sub)
    x = normalise(torch.rand(3, 3, 224, 224))
    got = sub.penultimate_features(model, x, batch_size=2)
    expect(type(got) is torch.Tensor, f"penultimate_features should return a tensor, got {describe_value(got)}")
    expect_equal(tuple(got.shape), (3, 4096), what="penultimate_features(alexnet, x (3, 3, 224, 224)).shape")
    expect(got.dtype == torch.float32, f"penultimate_features(...) should be float32, got {got.dtype}")


@check(cell="test_penultimate_features", points=2, kind="numerical",
       hint="Follow AlexNet's own forward pass and stop just before the last layer: every step before it counts, "
            "the average pool and the last ReLU included, in evaluation mode (dropout off).")
def test_penultimate_features_stop_just_before_the_last_layer(sub):
    model = tiny_alexnet(sub)                  # training mode: BatchNorm in features, dropout in the classifier
    x = torch.randn(5, *TINY_ALEX_INPUT)
    expected = penultimate_oracle(tiny_alexnet_here(), x)
    expect_tensor(sub.penultimate_features(model, x, batch_size=2), expected, atol=1e-5,
                  what=f"penultimate_features(a small AlexNet-shaped net in training mode, x (5, 3, 15, 19), "
                       f"batch_size=2), whose classifier[6] takes {TINY_ALEX_PENULTIMATE} numbers")


@check(cell="test_penultimate_features", points=1, kind="behaviour",
       hint="As for extract_features: no autograd graph, and features usable for training later (section 5).")
def test_penultimate_features_builds_no_graph(sub):
    _expect_no_graph(sub, "penultimate_features", tiny_alexnet(sub), TINY_ALEX_INPUT,
                     ": no autograd graph should be kept", "")


# ---------------------------------------------------------------------------------------------- the fine-tuned model
@check(cell="test_finetuned", points=1, kind="behaviour", timeout=600,
       hint="Run the cell that trains the new head: `finetuned` is the frozen AlexNet whose classifier[6] was "
            "trained; every other parameter keeps the checkpoint's values.")
def test_finetuned_is_the_frozen_alexnet_with_its_trained_head(sub):
    model = expect_finetuned(sub)
    s = structure(sub, model)
    expect(s["kind"] == "AlexNet", f"`{FINETUNED}` should be the AlexNet with its new head, got a {s['type']}")
    d = model.describe()
    trainable = {p["name"]: tuple(p["shape"]) for p in d["parameters"] if p["requires_grad"]}
    expect(trainable == {"classifier.6.weight": (10, 4096), "classifier.6.bias": (10,)},
           f"in `{FINETUNED}` only the new Linear(4096, 10) should be trainable; trainable: {sorted(trainable)[:6]}")
    sums = sub.eval(SUMS_EXPR, grader_m=model)
    state = checkpoint_sums()
    changed = [k for k, v in state.items() if not k.startswith("classifier.6.")
               and (k not in sums or abs(sums[k] - v) > 1e-6 * (1 + abs(v)))]
    expect(not changed, f"in `{FINETUNED}` the frozen layers should keep the checkpoint's values; {changed[:4]} "
                        f"differ ({weights_used()})")


@check(cell="test_finetuned", points=1, kind="accuracy", timeout=600,
       hint="A whole model far below the head of section 7 usually means the features the head was trained on are "
            "not what classifier[6] receives: check penultimate_features first.")
def test_finetuned_classifies_held_out_images(sub):
    expect_finetuned(sub)
    x, y = fmnist_inputs(*FINETUNED_PUBLIC)
    acc = whole_model_accuracy(sub, FINETUNED, x, y)
    expect(acc >= FINETUNED_FLOOR,
           f"`{FINETUNED}` classifies {acc:.1%} of {len(y)} held-out Fashion-MNIST test images (prepared by the "
           f"grader) correctly; it should reach at least {FINETUNED_FLOOR:.0%} [{weights_used()}]")
