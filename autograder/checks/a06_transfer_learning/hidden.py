"""Hidden checks of 06_transfer_learning: compared with the reference notebook on the same inputs and weights."""

import numpy as np
import torch

from autograder.authoring.api import (
    Handle,
    check,
    describe_value,
    expect,
    expect_equal,
    expect_raises,
    expect_tensor,
)
from data_scripts.alexnet_standin import weights_origin

from .common import (
    FINETUNED,
    FINETUNED_HIDDEN,
    FINETUNED_MARGIN,
    IMAGENET_FLOOR,
    PROBE_EPOCHS,
    PROBE_LR,
    PROBE_MARGIN,
    SUMS_EXPR,
    TINY_ALEX_INPUT,
    TINY_INPUT,
    accuracy_of,
    alexnet,
    blobs,
    expect_finetuned,
    fmnist_inputs,
    fresh_alexnet,
    photo,
    photo_batch,
    probe_data,
    reference_finetuned_accuracy,
    reference_probe_accuracy,
    tiny_alexnet,
    tiny_net,
    trainable_names,
    weights_used,
    whole_model_accuracy,
)


def _expect_works_in_batches(sub, name, model, model_var, input_shape):
    """``name(model, x (7, ...), batch_size=3)`` runs ``model`` (``model_var`` in the notebook) on batches
    of at most 3 images that cover the 7 images once, and returns one row per image."""
    sub.exec("grader_sizes = []\n"
             f"grader_hook = {model_var}.features[0].register_forward_pre_hook("
             "lambda m, args: grader_sizes.append(int(args[0].shape[0])))")
    try:
        x = torch.randn(7, *input_shape)
        got = getattr(sub, name)(model, x, batch_size=3)
        sizes = sub.eval("list(grader_sizes)")
    finally:
        sub.exec("grader_hook.remove()")
    expect(type(got) is torch.Tensor and got.shape[0] == 7,
           f"{name}(net, x (7, ...), batch_size=3) should return one row per image")
    expect(sizes and max(sizes) <= 3 and sum(sizes) == 7,
           f"{name}(net, x (7, ...), batch_size=3) ran the network on batches of {sizes}: expected "
           "batches of at most 3 images covering the 7 images once (3, 3, 1)")


# ---------------------------------------------------------------------------------------------- load_alexnet
@check(cell="test_load_alexnet", points=1, kind="behaviour",
       hint="Each call should build a new network: one model kept and returned again is shared by everyone who "
            "loads it.")
def test_load_alexnet_returns_a_new_model_each_call(sub, ref):
    same = sub.eval("load_alexnet() is load_alexnet()")
    expect(same is False, "load_alexnet() returned the same model object twice: later changes to one model "
                          "(freezing, a new head) would silently change the other")


# ---------------------------------------------------------------------------------------------- to_nchw
@check(cell="test_to_nchw", points=1, kind="numerical",
       hint="Compare the message's position with the layout of section 2: channels first, a batch of one, 0..1.")
def test_to_nchw_matches_reference(sub, ref):
    img = torch.randint(0, 256, (4, 9, 3), dtype=torch.uint8)
    expect_tensor(sub.to_nchw(img), ref.to_nchw(img), what="to_nchw(a (4, 9, 3) uint8 tensor)")
    pic = photo()
    expect_tensor(sub.to_nchw(pic), ref.to_nchw(pic), what="to_nchw(the (600, 512, 3) sample photograph)")


@check(cell="test_to_nchw", points=1, kind="error",
       hint="Only uint8 images hold values 0..255 that need scaling; the docstring says what to do with others.")
def test_to_nchw_rejects_float_images(sub, ref):
    img = np.random.rand(6, 5, 3).astype(np.float32)
    expect_raises(lambda: sub.to_nchw(img), "TypeError", what="to_nchw(a (6, 5, 3) float32 image in [0, 1])")


# ---------------------------------------------------------------------------------------------- preprocess
@check(cell="test_preprocess", points=2, kind="numerical",
       hint="The resizing is part of the contract: the whole image squashed to 224 x 224, bilinear and "
            "antialiased, corners not aligned (the docstring and section 3).")
def test_preprocess_matches_reference(sub, ref):
    for shape in [(3, 1, 28, 28), (2, 3, 40, 30)]:
        x = torch.rand(shape)
        expect_tensor(sub.preprocess(x), ref.preprocess(x), what=f"preprocess(x {shape})", atol=1e-4)


# ---------------------------------------------------------------------------------------------- extract_features
@check(cell="test_extract_features", points=2, kind="numerical",
       hint="Same weights, same images: the difference is in the mode, the flattening or the batching "
            "(section 5's three details).")
def test_extract_features_matches_reference_on_alexnet(sub, ref):
    x = photo_batch(2)           # the sample photograph and two noise images, (3, 3, 224, 224)
    got = sub.extract_features(alexnet(sub), x, batch_size=2)
    expected = ref.extract_features(alexnet(ref), x, batch_size=2)
    expect_tensor(got, expected, atol=1e-3, rtol=1e-3,
                  what=f"extract_features(AlexNet, photo and noise (3, 3, 224, 224), batch_size=2) [{weights_used()}]")


@check(cell="test_extract_features", points=1, kind="behaviour",
       hint="The network may never see more than batch_size images at once, and must see each image once.")
def test_extract_features_works_in_batches(sub, ref):
    _expect_works_in_batches(sub, "extract_features", tiny_net(sub), "grader_tiny", TINY_INPUT)


def _sums_changed_by(sub, model, action, among=lambda name: True):
    """The names (``among`` those of the state dict) whose sums ``action()`` changed, or that it removed."""
    before = sub.eval(SUMS_EXPR, grader_m=model)
    action()
    after = sub.eval(SUMS_EXPR, grader_m=model)
    return [k for k in before if among(k) and (k not in after or after[k] != before[k])]


# ---------------------------------------------------------------------------------------------- freeze_features
@check(cell="test_freeze_features", points=1, kind="behaviour",
       hint="freeze_features should work for any network, not only for AlexNet's layer indices.")
def test_freeze_features_works_for_any_model(sub, ref):
    model = tiny_net(sub)
    sub.exec("grader_tiny.requires_grad_(True)")
    sub.freeze_features(model)
    still = trainable_names(model.describe())
    expect(not still, f"freeze_features on a small net with .features and .classifier left {still} trainable")


@check(cell="test_freeze_features", points=1, kind="behaviour",
       hint="Freezing changes requires_grad only: the values and the train/eval mode stay as they were.")
def test_freeze_features_keeps_values_and_mode(sub, ref):
    with fresh_alexnet(sub) as model:
        mode_before = model.describe()["training"]
        changed = _sums_changed_by(sub, model, lambda: sub.freeze_features(model))
        expect(not changed, f"freeze_features changed the values of {changed[:4]}: it should only set requires_grad")
        expect(model.describe()["training"] == mode_before,
               "freeze_features changed the model's train/eval mode: it should only set requires_grad")


# ---------------------------------------------------------------------------------------------- replace_classifier
@check(cell="test_replace_classifier", points=1, kind="behaviour",
       hint="Only the last layer of the classifier is new; every other layer keeps its weights.")
def test_replace_classifier_keeps_the_other_layers(sub, ref):
    with fresh_alexnet(sub) as model:
        changed = _sums_changed_by(sub, model, lambda: sub.replace_classifier(model, 5),
                                   among=lambda k: not k.startswith("classifier.6."))
        expect(not changed, f"replace_classifier changed (or removed) {changed[:4]}: only classifier[6] should "
                            f"be new [{weights_used()}]")


@check(cell="test_replace_classifier", points=1, kind="shape",
       hint="The number of classes is an argument; and the docstring asks for the same model object back.")
def test_replace_classifier_other_class_counts(sub, ref):
    for n in (2, 37):
        with fresh_alexnet(sub) as model:
            same = sub.eval("replace_classifier(grader_m, grader_n) is grader_m", grader_m=model, grader_n=n)
            expect(same is True, f"replace_classifier(model, {n}) should return the model it was given")
            shapes = {p["name"]: tuple(p["shape"]) for p in model.describe()["parameters"]}
            expect_equal((shapes.get("classifier.6.weight"), shapes.get("classifier.6.bias")), ((n, 4096), (n,)),
                         what=f"replace_classifier(model, {n}): shapes of classifier[6]'s weight and bias")


# ---------------------------------------------------------------------------------------------- train_head
@check(cell="test_train_head", points=3, kind="accuracy", timeout=600,
       hint="Compare your loop with the docstring: the optimiser, the mini-batch size, the shuffling every epoch "
            "and the moment the gradients are reset.")
def test_train_head_accuracy_on_alexnet_features(sub, ref):
    data = probe_data(ref)            # Fashion-MNIST features computed once with the reference, cached
    ref_acc = reference_probe_accuracy(ref, data)
    n_train, n_held = len(data["train_labels"]), len(data["held_out_labels"])
    head = sub.call("train_head", data["train_features"], data["train_labels"], 10, PROBE_EPOCHS, PROBE_LR,
                    timeout=300)
    expect(isinstance(head, Handle), f"train_head should return an nn.Linear, got {describe_value(head)}")
    acc = accuracy_of(sub, head, data["held_out_features"], data["held_out_labels"])
    setting = (f"train_head on AlexNet features of {n_train} Fashion-MNIST images (10 classes, epochs={PROBE_EPOCHS}, "
               f"lr={PROBE_LR:g}), accuracy on {n_held} held-out images [{weights_used()}]")
    expect(acc >= ref_acc - PROBE_MARGIN,
           f"{setting}: {acc:.3f}, but the reference reaches {ref_acc:.3f} on the same features "
           f"(at most {PROBE_MARGIN} lower is accepted)")
    if weights_origin() == "imagenet":
        expect(acc >= IMAGENET_FLOOR, f"{setting}: {acc:.3f}, below the floor of {IMAGENET_FLOOR} that applies "
                                      "with the real ImageNet weights")


@check(cell="test_train_head", points=1, kind="shape",
       hint="The number of classes is an argument: some classes may have no examples in labels.")
def test_train_head_uses_num_classes(sub, ref):
    feats, labels = blobs(90, 12, 3)
    head = sub.call("train_head", feats, labels, 5, 1, 1e-2, timeout=60)
    expect(isinstance(head, Handle), f"train_head should return an nn.Linear, got {describe_value(head)}")
    attrs = head.describe()["attrs"]
    expect_equal((attrs.get("in_features"), attrs.get("out_features")), (12, 5),
                 what="train_head(features (90, 12), labels in 0..2, num_classes=5, ...): (in_features, out_features)")


# ---------------------------------------------------------------------------------------------- penultimate_features
@check(cell="test_penultimate_features", points=2, kind="numerical",
       hint="Same weights, same images: the difference is in the mode, in a step of the forward pass before "
            "classifier[6] (the average pool, a ReLU, a dropout) or in the batching.")
def test_penultimate_features_matches_reference_on_alexnet(sub, ref):
    x = photo_batch(2)           # the sample photograph and two noise images, (3, 3, 224, 224)
    models = []
    for ns in (sub, ref):        # handed over in training mode: the classifier's dropout is on until eval()
        models.append(alexnet(ns))
        ns.exec("grader_alexnet.train()")
    got = sub.penultimate_features(models[0], x, batch_size=2)
    expected = ref.penultimate_features(models[1], x, batch_size=2)
    expect_tensor(got, expected, atol=1e-3, rtol=1e-3,
                  what=f"penultimate_features(AlexNet in training mode, photo and noise (3, 3, 224, 224), "
                       f"batch_size=2) [{weights_used()}]")


@check(cell="test_penultimate_features", points=1, kind="behaviour",
       hint="The network may never see more than batch_size images at once, and must see each image once.")
def test_penultimate_features_works_in_batches(sub, ref):
    _expect_works_in_batches(sub, "penultimate_features", tiny_alexnet(sub), "grader_tiny_alex", TINY_ALEX_INPUT)


# ---------------------------------------------------------------------------------------------- the fine-tuned model
@check(cell="test_finetuned", points=2, kind="accuracy", timeout=900,
       hint="With the same recipe (the locked cell) your whole model should do about as well as the reference's: "
            "the checks of penultimate_features, preprocess and train_head show which part differs.")
def test_finetuned_accuracy_is_close_to_the_reference(sub, ref):
    want = reference_finetuned_accuracy(ref)
    expect_finetuned(sub)
    x, y = fmnist_inputs(*FINETUNED_HIDDEN)
    got = whole_model_accuracy(sub, FINETUNED, x, y)
    expect(got >= want - FINETUNED_MARGIN,
           f"`{FINETUNED}` classifies {got:.3f} of {len(y)} held-out Fashion-MNIST test images correctly, the "
           f"reference's model built with the same recipe {want:.3f} (at most {FINETUNED_MARGIN} lower is "
           f"accepted) [{weights_used()}]")
