"""Latent mixing through forward hooks on a PreAct-ResNet-like model."""

import pytest
import torch
from torch import nn

import vicinal


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv(torch.relu(self.bn(x)))


class TinyPreAct(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = Block(4)
        self.layer2 = Block(4)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.conv1(x))))


def setup():
    torch.manual_seed(0)  # model init only
    model = TinyPreAct().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    return model, x, y


@pytest.mark.parametrize("layer", ["layer1", "layer2", "head"])
def test_only_the_input_of_the_named_module_is_mixed(layer):
    model, x, y = setup()
    seen = {}
    for name in ["conv1", "layer1", "layer2", "head"]:
        model.get_submodule(name).register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
    clean = {}
    model(x)
    clean.update(seen)
    lm = vicinal.LatentMixup(model, layer, alpha=1.0, num_classes=3, seed=0)
    p = lm.mixer.sample(x, y)
    out = lm.forward(x, p)
    # modules before `layer` see clean activations; `layer` sees exactly the paper's formula on them
    # (our observer hook was registered first, so it records the input before mixing)
    order = ["conv1", "layer1", "layer2", "head"]
    for name in order[: order.index(layer) + 1]:
        assert torch.equal(seen[name], clean[name])
    h = clean[layer]
    mixed = p.lam * h + (1 - p.lam) * h[p.perm]
    assert torch.equal(out, model.get_submodule(layer)(mixed) if layer == "head" else out)
    rest = mixed
    for name in order[order.index(layer) :]:
        rest = model.get_submodule(name)(rest)
    assert torch.equal(out, rest)


def test_targets_and_gradients_flow():
    model, x, y = setup()
    model.train()
    lm = vicinal.LatentMixup(model, "layer2", alpha=1.0, num_classes=3, seed=0)
    logits, target = lm(x, y)
    loss = vicinal.soft_cross_entropy(logits, target)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
    torch.testing.assert_close(target.sum(1), torch.ones(6))


def test_hook_removed_after_forward():
    model, x, y = setup()
    lm = vicinal.LatentMixup(model, "layer1", alpha=1.0, num_classes=3, seed=0)
    lm(x, y)
    assert len(model.layer1._forward_pre_hooks) == 0


def test_input_layer_is_plain_mixup():
    model, x, y = setup()
    lm = vicinal.LatentMixup(model, "input", alpha=1.0, num_classes=3, seed=0)
    p = lm.mixer.sample(x, y)
    assert torch.equal(lm.forward(x, p), model(p.lam * x + (1 - p.lam) * x[p.perm]))


def test_errors():
    model, x, y = setup()
    with pytest.raises(
        ValueError, match="model has no module named 'layer9'; its top-level modules are: conv1, layer1, layer2, head"
    ):
        vicinal.LatentMixup(model, "layer9")
    model.spare = nn.Linear(4, 3)  # a module the forward pass never calls
    unused = vicinal.LatentMixup(model, "spare", alpha=1.0, num_classes=3)
    with pytest.raises(RuntimeError, match="module 'spare' was not called during the forward pass$"):
        unused(x, y)
    with pytest.raises(TypeError, match=r"layer must be a module name \(a str such as 'layer2' or '0'\), got 1"):
        vicinal.LatentMixup(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)), 1)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(2, 2)

        def forward(self, x):
            return self.f(self.f(x))

    with pytest.raises(RuntimeError, match="module 'f' ran more than once in one forward pass"):
        vicinal.LatentMixup(Twice(), "f", num_classes=2)(torch.randn(3, 2), torch.tensor([0, 1, 0]))


def test_finds_layer_through_ddp_like_wrapper():
    model, x, y = setup()
    wrapper = nn.Module()
    wrapper.module = model
    wrapper.forward = model.forward
    lm = vicinal.LatentMixup(wrapper, "layer1", alpha=1.0, num_classes=3, seed=0)
    assert lm.module is model.layer1


def test_latent_layers_refuse_in_place_mixing():
    """Autograd saved the activation a layer receives: mixing it in place broke backward()."""
    model, x, y = setup()
    with pytest.raises(ValueError, match="LatentMixup mixes the activations at 'layer2' out of place; inplace=True"):
        vicinal.LatentMixup(model, "layer2", alpha=1.0, num_classes=3, inplace=True)
    lm = vicinal.LatentMixup(model, "input", alpha=1.0, num_classes=3, seed=0, inplace=True)  # the input: allowed
    p = vicinal.LatentMixup(model, "input", alpha=1.0, num_classes=3, seed=0).mixer.sample(x, y)
    expected = model(p.lam * x + (1 - p.lam) * x[p.perm])
    torch.testing.assert_close(lm(x.clone(), y)[0], expected)


class _KeywordBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, hidden_states, mask=None):
        return self.fc(hidden_states) if mask is None else self.fc(hidden_states) * mask


class _KeywordModel(nn.Module):
    def __init__(self, with_mask=False):
        super().__init__()
        self.block, self.with_mask = _KeywordBlock(), with_mask

    def forward(self, x):
        return self.block(hidden_states=x, mask=torch.ones(4) if self.with_mask else None)


def test_latent_mixup_of_a_module_called_with_keywords():
    x, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    model = _KeywordModel()
    lm = vicinal.LatentMixup(model, "block", alpha=1.0, num_classes=4, seed=0)
    p = lm.mixer.sample(x, y)
    assert torch.equal(lm.forward(x, p), model.block.fc(p.lam * x + (1 - p.lam) * x[p.perm]))
    assert repr(lm).startswith("LatentMixup(layer='block', alpha=1.0, pairing='random'")
    with pytest.raises(
        RuntimeError, match=r"module 'block' was called with keyword arguments only and 2 tensors among "
    ):
        vicinal.LatentMixup(_KeywordModel(with_mask=True), "block", alpha=1.0, num_classes=4, seed=0)(x, y)


def test_a_module_with_more_inputs_gets_the_others_unchanged():
    """Only the first positional input (the activations) is mixed; the module's other inputs pass through."""

    class Scaled(nn.Module):
        def forward(self, h, scale):
            return h * scale

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.scaled = Scaled()

        def forward(self, x):
            return self.scaled(x, x.new_tensor(3.0))

    x, y = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    lm = vicinal.LatentMixup(Model(), "scaled", alpha=1.0, num_classes=3, seed=0)
    p = lm.mixer.sample(x, y)
    assert torch.equal(lm.forward(x, p), (p.lam * x + (1 - p.lam) * x[p.perm]) * 3.0)


def test_a_module_replaced_after_construction_is_the_one_mixed():
    model, x, y = setup()
    lm = vicinal.LatentMixup(model, "head.2", alpha=1.0, num_classes=3, seed=0)
    model.head[2] = nn.Linear(4, 3)  # a new head, as for fine-tuning
    params = lm.mixer.sample(x, y)
    features = model.head[1](model.head[0](model.layer2(model.layer1(model.conv1(x)))))
    expected = model.head[2](params.lam * features + (1 - params.lam) * features[params.perm])
    torch.testing.assert_close(lm.forward(x, params), expected)


def test_a_module_whose_input_is_not_the_batch_is_named():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.merge = nn.Identity()

        def forward(self, x):
            return self.merge((x, x))

    with pytest.raises(RuntimeError, match="module 'merge' received tuple where LatentMixup mixes a batch-first"):
        vicinal.LatentMixup(Pair(), "merge", num_classes=2)(torch.randn(5, 2), torch.arange(5) % 2)

    class TimeFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 3)

        def forward(self, x):
            return self.rnn(x.transpose(0, 1))[0][-1]

    with pytest.raises(
        RuntimeError,
        match=r"module 'rnn' received shape \(7, 5, 4\) where LatentMixup mixes a batch-first tensor of the batch's 5 samples",
    ):
        vicinal.LatentMixup(TimeFirst(), "rnn", num_classes=2)(torch.randn(5, 7, 4), torch.arange(5) % 2)


def test_a_model_compiled_before_the_mixing_says_so():
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(seq, backend="eager")  # no C++ compiler needed: dynamo's graph, run eagerly
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    compiled(x)  # compiled without the mixing
    with pytest.raises(RuntimeError, match="the model is torch.compile'd, and a graph compiled before the mixing"):
        vicinal.LatentMixup(compiled, "2", alpha=1.0, num_classes=3, seed=0)(x, y)


def test_token_ids_feed_a_latent_layer():
    # the model input of a text model is integer token ids; the tensor mixed is the embedding's float output, so
    # only the input layer needs a float batch (sample() refused the ids: "inputs must be a float16, ...")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(48, 3))
    tokens, y = torch.randint(0, 50, (4, 6)), torch.tensor([0, 1, 2, 0])
    out, targets = vicinal.LatentMixup(model, "1", alpha=1.0, num_classes=3, seed=0)(tokens, y)
    p = vicinal.Mixup(1.0, num_classes=3, seed=0).sample(torch.zeros(4, 1), y)  # the same draws
    h = model[0](tokens)
    assert torch.equal(out, model[1:](p.lam * h + (1 - p.lam) * h[p.perm]))
    assert torch.equal(targets, vicinal.Mixup(1.0, num_classes=3).apply_targets(y, p))
    with pytest.raises(TypeError, match="inputs must be a float16, bfloat16, float32, float64 or uint8 tensor"):
        vicinal.LatentMixup(model, "input", alpha=1.0, num_classes=3)(tokens, y)  # mixing the ids themselves: refused
    with pytest.raises(ValueError, match=r"labels have shape \(3,\) but the batch has 4 samples"):
        vicinal.LatentMixup(model, "1", alpha=1.0, num_classes=3)(tokens, y[:3])  # the batch size still counts


def test_token_models_draw_params_for_the_two_label_loss():
    # LatentMixup took token ids in __call__, but the params for forward() + mixed_criterion could only come from
    # mixer.sample(tokens, y), which refuses integer inputs
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(100, 16), nn.Flatten(), nn.Linear(16 * 8, 4))
    tokens, y = torch.randint(0, 100, (6, 8)), torch.randint(0, 4, (6,))
    lm = vicinal.LatentMixup(model, "1", alpha=1.0, num_classes=4, seed=0)
    params = lm.sample(tokens, y)
    logits = lm.forward(tokens, params)
    emb = model[0](tokens)
    ref = model[2](model[1](params.lam * emb + (1 - params.lam) * emb[params.perm]))
    assert torch.equal(logits, ref)
    loss = vicinal.mixed_criterion(F.cross_entropy, logits, y, params)
    assert torch.allclose(loss, vicinal.soft_cross_entropy(logits, lm.mixer.apply_targets(y, params)))
    # the same stream as the one-call form
    again = vicinal.LatentMixup(model, "1", alpha=1.0, num_classes=4, seed=0)
    out, _ = again(tokens, y)
    assert torch.equal(out, logits)


def test_knn_pairing_at_a_latent_layer_is_refused_when_built():
    # it was accepted, then every call asked for partner=, which LatentMixup does not take
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    for layer in ("2", "input"):  # at the input too: LatentMixup takes no partner=
        with pytest.raises(ValueError, match=r"^LatentMixup mixes partners from the batch; for k-NN partners"):
            vicinal.LatentMixup(model, layer, num_classes=3, pairing="knn", seed=0)


def test_a_model_that_is_no_module_is_named():
    with pytest.raises(TypeError, match=r"^model must be an nn.Module, got function"):
        vicinal.LatentMixup(lambda x: x, "0", num_classes=3)


def test_check_options_refuses_what_the_constructor_refuses_without_a_model():
    # the lab checks a latent row's options before its model exists (a plan's dry run said every run would train)
    with pytest.raises(ValueError, match=r"^LatentMixup mixes the activations at 'layer2' out of place; inplace=True"):
        vicinal.LatentMixup.check_options("layer2", 1.0, inplace=True)
    with pytest.raises(ValueError, match=r"^LatentMixup mixes partners from the batch; for k-NN partners"):
        vicinal.LatentMixup.check_options("layer2", pairing="knn")
    with pytest.raises(ValueError, match=r"alpha must be"):
        vicinal.LatentMixup.check_options("layer2", -1.0)
    mixer = vicinal.LatentMixup.check_options("input", 0.4, inplace=True, num_classes=3, seed=0)
    assert isinstance(mixer, vicinal.Mixup) and mixer.inplace and mixer.alpha == 0.4 and mixer.num_classes == 3
