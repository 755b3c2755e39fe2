# The PyTorch EAST against docs/EAST.md: output shapes, TF-slim names and shapes, TF1 upsample, TF SAME pool.
import math

import pytest
import torch

from east_model import (EAST, WeightEMA, export_safetensors, max_pool_tf_same, read_sharded, tf_name_map,
                        upsample2x_tf1)


def expected_tf_variables():
    """(name, shape) as TF-slim creates them, written out from docs/EAST.md independently of the model."""
    v = []

    def conv_bn(scope, r, cin, cout):
        v.append((f"{scope}/weights", [r, r, cin, cout]))
        for p in ("gamma", "beta", "moving_mean", "moving_variance"):
            v.append((f"{scope}/BatchNorm/{p}", [cout]))

    conv_bn("resnet_v1_50/conv1", 7, 3, 64)
    cin = 64
    for b, (d, bd, n) in enumerate([(256, 64, 3), (512, 128, 4), (1024, 256, 6), (2048, 512, 3)], 1):
        for u in range(1, n + 1):
            s = f"resnet_v1_50/block{b}/unit_{u}/bottleneck_v1"
            if u == 1:
                conv_bn(f"{s}/shortcut", 1, cin, d)
            conv_bn(f"{s}/conv1", 1, cin if u == 1 else d, bd)
            conv_bn(f"{s}/conv2", 3, bd, bd)
            conv_bn(f"{s}/conv3", 1, bd, d)
        cin = d
    ff = [(1, 2048 + 512, 128), (3, 128, 128), (1, 128 + 256, 64), (3, 64, 64), (1, 64 + 64, 32), (3, 32, 32),
          (3, 32, 32)]
    for i, (r, a, c) in enumerate(ff):
        conv_bn("feature_fusion/Conv" + (f"_{i}" if i else ""), r, a, c)
    for i, c in ((7, 1), (8, 4), (9, 1)):
        v.append((f"feature_fusion/Conv_{i}/weights", [1, 1, 32, c]))
        v.append((f"feature_fusion/Conv_{i}/biases", [c]))
    return v


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EAST().eval()


@pytest.mark.parametrize("h,w", [(64, 64), (96, 128)])
def test_output_shapes_and_ranges(model, h, w):
    x = torch.rand(2, 3, h, w) * 255
    with torch.no_grad():
        score, geo = model(x.contiguous(memory_format=torch.channels_last))
    assert score.shape == (2, 1, h // 4, w // 4)
    assert geo.shape == (2, 5, h // 4, w // 4)
    assert float(score.min()) >= 0 and float(score.max()) <= 1
    assert float(geo[:, :4].min()) >= 0 and float(geo[:, :4].max()) <= 512
    assert float(geo[:, 4].abs().max()) <= math.pi / 4 + 1e-6
    with torch.no_grad():  # channels_last and contiguous inputs agree
        s2, g2 = model(x)
    assert torch.allclose(score, s2, atol=1e-5) and torch.allclose(geo, g2, atol=1e-3)


def test_name_map_covers_every_tensor_with_tf_shapes(model, tmp_path):
    expected = dict((n, s) for n, s in expected_tf_variables())
    paths = export_safetensors(model, str(tmp_path / "m.safetensors"))
    tensors, _ = read_sharded(paths)
    assert {k: list(t.shape) for k, t in tensors.items()} == expected
    sd_keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(tf_name_map()) == sd_keys
    trainable = sum(math.prod(s) for n, s in expected.items() if "moving_" not in n)
    assert trainable == sum(p.numel() for p in model.parameters())
    assert 23.5e6 < trainable < 24.5e6  # docs/EAST.md: ~24 M


def test_export_layout_is_rsck_and_readable_by_safetensors(model, tmp_path):
    paths = export_safetensors(model, str(tmp_path / "m.safetensors"), torch.float16, max_part_bytes=15 * 2**20)
    assert len(paths) == 4
    assert all((tmp_path / p).stat().st_size <= 16 * 2**20 for p in paths)
    tensors, _ = read_sharded(paths)
    w = model.state_dict()["blocks.0.0.conv2.conv.weight"]  # [K, C, R, S]
    t = tensors["resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/weights"]
    assert torch.equal(t.float(), w.half().float().permute(2, 3, 1, 0))
    st = pytest.importorskip("safetensors.torch")
    ref = st.load_file(paths[0])
    mine, _ = read_sharded(paths[:1])
    assert ref.keys() == mine.keys() and all(torch.equal(ref[k], mine[k]) for k in ref)


def test_upsample_tf1_hand_example():
    x = torch.tensor([[1.0, 2.0, 4.0], [3.0, 6.0, 0.0]]).view(1, 1, 2, 3)
    rows = [[1, 1.5, 2, 3, 4, 4], [2, 3, 4, 3, 2, 2], [3, 4.5, 6, 3, 0, 0], [3, 4.5, 6, 3, 0, 0]]
    assert torch.equal(upsample2x_tf1(x), torch.tensor(rows).view(1, 1, 4, 6))


def test_upsample_is_asymmetric_resize_not_half_pixel():
    x = torch.rand(1, 3, 5, 7)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert not torch.allclose(upsample2x_tf1(x), ref)  # PyTorch's default is half-pixel: must differ


def test_pool_tf_same_is_asymmetric_on_even_sizes():
    x = -torch.arange(16.0).view(1, 1, 4, 4)  # all <= 0: zero padding would show
    out = max_pool_tf_same(x)
    # pad 0 top/left, 1 bottom/right: windows rows/cols {0,1,2} and {2,3}
    assert torch.equal(out, torch.tensor([[-0.0, -2.0], [-8.0, -10.0]]).view(1, 1, 2, 2))
    y = -torch.arange(25.0).view(1, 1, 5, 5)  # odd: pad 1 each side, windows {-1,0,1}, {1,2,3}, {3,4,5}
    assert torch.equal(max_pool_tf_same(y)[0, 0, :, 0], torch.tensor([-0.0, -5.0, -15.0]))


def test_strides_sit_on_last_unit_conv2():
    m = EAST()
    for b, block in enumerate(m.blocks):
        strides = [u.conv2.conv.stride[0] for u in block]
        assert strides == [1] * (len(block) - 1) + [2 if b < 3 else 1]
        assert all(u.conv1.conv.stride[0] == 1 for u in block)
    assert m.conv1.conv.padding == (3, 3)
    assert abs(m.conv1.bn.momentum - 0.003) < 1e-12 and m.conv1.bn.eps == 1e-5


def test_ema_follows_tf_num_updates_rule():
    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = WeightEMA(m)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m, step=0)  # decay = min(0.997, 1/10)
    assert abs(float(ema.shadow["weight"]) - 0.9) < 1e-6
    ema.update(m, step=10**6)  # decay 0.997
    assert abs(float(ema.shadow["weight"]) - (0.9 * 0.997 + 0.003)) < 1e-6


def test_heads_stay_fp32_under_bf16_autocast(model):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        score, geo = model(torch.rand(1, 3, 64, 64) * 255)
    assert score.dtype == torch.float32 and geo.dtype == torch.float32
