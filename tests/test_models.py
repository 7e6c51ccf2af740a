import pytest
import torch

from agegender.config import ModelConfig, TrainConfig
from agegender.models import count_parameters, create_model, list_models
from agegender.models.reference import PAPER_INPUT_SIZE
from agegender.training.losses import multitask_loss

HEADS = ("reg", "cls")


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("head", HEADS)
def test_every_model_gives_named_finite_outputs(arch, head):
    cfg = ModelConfig(arch=arch, head=head, input_size=PAPER_INPUT_SIZE.get(arch, 64))
    model = create_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, cfg.input_size, cfg.input_size) * 255)
    assert list(out) == ["age", "gender"]
    expected = {"reg": {"age": (2,), "gender": (2,)}, "cls": {"age": (2, 8), "gender": (2, 2)}}[head]
    assert {t: tuple(v.shape) for t, v in out.items()} == expected
    assert all(torch.isfinite(v).all() for v in out.values())


def test_paper_parameter_count():
    # 4 bias-free convs + BN, FC 8192->512, FC 512->512, 2-unit regression output.
    assert count_parameters(create_model(ModelConfig(head="reg"))) == 6_010_434
    assert count_parameters(create_model(ModelConfig(head="cls"))) == 6_014_538
    # BatchNorm in the FC layers (our fix for dead units): +2 x 2 x 512 BN parameters, -2 x 512 FC biases
    assert count_parameters(create_model(ModelConfig(head="cls", fc_norm=True))) == 6_015_562


def test_table2_networks_match_their_papers():
    """Parameter counts and GFLOPs of the timing networks (with our 8 + 2 softmax outputs)."""
    from agegender.experiments.bench import gflops_per_image
    from agegender.models.reference import reference_config

    expected = {"paper": (6_014_538, 0.476), "levi": (8_860_170, 1.298), "alexnet": (58_322_314, 2.262)}
    for arch, (params, gflops) in expected.items():
        model = create_model(reference_config(arch, head="cls"))
        assert count_parameters(model) == params
        assert gflops_per_image(model, model.cfg.input_size) == pytest.approx(gflops, abs=1e-3)


def test_pooling_before_relu_is_the_papers_block_exactly():
    """Ours computes conv -> BN -> pool -> ReLU; the paper's conv -> BN -> ReLU -> pool must give the same
    outputs and gradients (train mode, so BatchNorm uses batch statistics), with the same parameter names
    (so checkpoints from either order load)."""
    from torch import nn

    torch.manual_seed(0)
    ours = create_model(ModelConfig(head="cls", fc_norm=True)).train()
    literal = create_model(ModelConfig(head="cls", fc_norm=True)).train()
    literal.load_state_dict(ours.state_dict())
    for i, block in enumerate(literal.features):
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU]
        literal.features[i] = nn.Sequential(block[0], block[1], block[3], block[2])
    assert list(literal.state_dict()) == list(ours.state_dict())
    x = torch.rand(6, 3, 64, 64) * 255
    outs, grads = [], []
    for model in (ours, literal):
        torch.manual_seed(1)  # same dropout masks
        out = model(x)
        loss = out["age"].square().sum() + out["gender"].square().sum()
        grads.append(torch.autograd.grad(loss, [p for p in model.parameters()]))
        outs.append(out)
    for t in ("age", "gender"):
        assert torch.equal(outs[0][t], outs[1][t])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6 * max(1.0, b.abs().max().item()))


def test_per_task_fc_branches():
    """--fc-branches: the conv trunk is shared, each task has the paper's two FC layers of its own."""
    shared = create_model(ModelConfig(head="cls", fc_norm=True))
    model = create_model(ModelConfig(head="cls", fc_norm=True, fc_branches=True)).train()
    # a second FC stack (8192x512 + 512x512 weights, 2 x 1,024 BN parameters); each output layer sees 512 units
    assert count_parameters(model) - count_parameters(shared) == 8192 * 512 + 512 * 512 + 2 * 1024
    x = torch.rand(4, 3, 64, 64) * 255
    out = model(x)
    assert list(out) == ["age", "gender"] and out["age"].shape == (4, 8) and out["gender"].shape == (4, 2)
    # the gender loss reaches the gender branch and the shared trunk, not the age branch
    grads = torch.autograd.grad(out["gender"].square().sum(), list(model.parameters()), allow_unused=True)
    named = dict(zip((n for n, _ in model.named_parameters()), grads, strict=True))
    assert all(g is None for n, g in named.items() if n.startswith("head.branches.age."))
    assert all(g is not None for n, g in named.items() if n.startswith(("head.branches.gender.", "features.")))
    with pytest.raises(ValueError, match="no per-task FC branches"):
        create_model(ModelConfig(arch="lite", head="cls", fc_branches=True))


@pytest.mark.parametrize("layers,expected", [(3, 9_024_066), (4, 6_010_434), (5, 8_370_754), (6, 10_731_074)])
def test_depth_variants(layers, expected):
    assert count_parameters(create_model(ModelConfig(conv_layers=layers))) == expected


def test_the_small_nets_depthwise_and_dense():
    """``lite`` is depthwise-separable; ``lite-dense`` spends a similar budget on dense 3x3 convolutions only
    (no grouped conv anywhere), 4x4 x 256 features before pooling on a 64 px face."""
    from torch import nn

    lite, dense = (create_model(ModelConfig(arch=a, head="cls")) for a in ("lite", "lite-dense"))
    assert count_parameters(lite) == 672_074 and count_parameters(dense) == 614_506
    assert any(m.groups > 1 for m in lite.modules() if isinstance(m, nn.Conv2d))
    assert all(m.groups == 1 and m.kernel_size == (3, 3) for m in dense.modules() if isinstance(m, nn.Conv2d))
    assert dense.features(torch.zeros(1, 3, 64, 64)).shape == (1, 256, 4, 4)


@pytest.mark.parametrize("tasks", [("age",), ("gender",)])
def test_single_task_variants(tasks):
    out = create_model(ModelConfig(tasks=tasks, head="cls"))(torch.rand(1, 3, 64, 64) * 255)
    assert list(out) == list(tasks)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model(ModelConfig(arch="nope"))
    with pytest.raises(ValueError, match="unknown task"):
        create_model(ModelConfig(tasks=("age", "mood")))
    with pytest.raises(ValueError, match="conv_layers"):
        create_model(ModelConfig(conv_layers=7))
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)


@pytest.mark.parametrize("head", HEADS)
def test_three_task_model_trains_a_step(head):
    """A new task (UTKFace's race) is configuration only: no code change."""
    cfg = ModelConfig(tasks=("age", "gender", "race"), head=head)
    model = create_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(8, 3, 64, 64) * 255
    y = {"age": torch.arange(8.0) % 8, "gender": torch.arange(8.0) % 2,
         "race": torch.tensor([0, 1, 2, 3, 4, -1, -1, 0.0])}
    before = [p.clone() for p in model.head.parameters()]
    loss, parts = multitask_loss(model(x), y)
    loss.backward()
    opt.step()
    assert set(parts) == {"age", "gender", "race"} and torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.head.parameters()))


def test_missing_labels_are_masked():
    cfg = ModelConfig(head="cls")
    out = create_model(cfg)(torch.rand(4, 3, 64, 64) * 255)
    y = {"age": torch.full((4,), -1.0), "gender": torch.tensor([0, 1, -1, -1.0])}
    _, parts = multitask_loss(out, y)
    assert set(parts) == {"gender"}  # a task with no label in the batch adds nothing


def test_train_config_round_trip():
    cfg = TrainConfig(lr_step_epochs=[3, 5])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict(ModelConfig(tasks=["age"]).to_dict()) == ModelConfig(tasks=("age",))
