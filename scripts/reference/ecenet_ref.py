"""PyTorch reference of ECENet (ECENET_SPEC.md sections 1-6) for ecenet-dist.

This file is the executable reading of /work/shared/ECENET_SPEC.md that the
Swift implementation is checked against (through the goldens written by
export_goldens.py).  It favours readability over speed; it runs on CPU.

Parameter names are part of the contract: the Swift model mirrors them.
  backbone.*  official Swin names (patch_embed, layers.{s}.blocks.{b}.*,
              layers.{s}.downsample.*, norm{s})
  head.*      fr.{s}, init_mask, ece.{k}, sau.{j}, up.{u}, fuse, cls_seg,
              class_head  (see ECEHead)
Weights are stored in PyTorch layouts: Linear [out, in]; Conv2d
[out, in/groups, kH, kW]; the relative-position table [(2w-1)^2, heads].

Readings of the spec that were not spelled out (also listed in README.md):
  * SAU outputs: the SAU's refined tokens X (after attention and Mix-FFN)
    replace X_3, X_2, X_1 in the output fusion; X_4 is used unrefined.
  * ECE levels: S = max(1, floor(alpha*sqrt(N) + 0.5)) (round half up).
  * SE: Linear layers (2-D weights), reduction 4 relative to C_i/2.
  * GroupNorm option: groups = gcd(32, channels) (= min(32, channels) for the
    power-of-two widths used here).
  * Swin padding follows the official segmentation Swin: LN, then zero pad to
    a window multiple (padded tokens are *not* masked out of attention), the
    shift mask is built on the padded size with fill value -100, odd sizes are
    zero padded before patch merging; the window is never shrunk for maps
    smaller than the window.
  * Losses return (sum, count) pairs internally; with several ranks the counts
    are allreduced (sum) before the division, and the resulting per-rank
    gradients must then be *summed* over ranks (or the loss multiplied by the
    world size before gradient averaging).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

IMG_MEAN = (123.675, 116.28, 103.53)
IMG_STD = (58.395, 57.12, 57.375)


# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------
@dataclass
class SwinConfig:
    embed_dim: int = 32
    depths: Tuple[int, ...] = (1, 1, 1, 1)
    num_heads: Tuple[int, ...] = (1, 2, 4, 8)
    window_size: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 4
    in_chans: int = 3
    drop_path_rate: float = 0.0


@dataclass
class ECENetConfig:
    swin: SwinConfig = field(default_factory=SwinConfig)
    channels: int = 32            # unified width C (256 in the paper)
    num_classes: int = 5          # N
    alpha: float = 1.0            # ECE pyramid: S = max(1, round(alpha*sqrt(N)))
    sau_heads: int = 8
    updater: str = "gated"        # "gated" | "plus"
    norm: str = "bn"              # "bn" | "syncbn" (== bn in one process) | "gn"
    dropout: float = 0.1          # before cls_seg
    ignore_index: int = 255
    eos_coef: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    w_seg: float = 1.0
    w_cls: float = 1.0
    w_focal: float = 20.0
    w_dice: float = 1.0
    w_div: float = 0.2

    def to_dict(self):
        return asdict(self)


SWIN_PRESETS = {
    "swin_t": SwinConfig(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, drop_path_rate=0.3),
    "swin_s": SwinConfig(96, (2, 2, 18, 2), (3, 6, 12, 24), 7, drop_path_rate=0.3),
    "swin_b": SwinConfig(128, (2, 2, 18, 2), (4, 8, 16, 32), 12, drop_path_rate=0.3),
    "swin_l": SwinConfig(192, (2, 2, 18, 2), (6, 12, 24, 48), 12, drop_path_rate=0.3),
    "tiny": SwinConfig(32, (1, 1, 1, 1), (1, 2, 4, 8), 4, drop_path_rate=0.0),
}


def tiny_config(**overrides) -> ECENetConfig:
    """The golden / debug configuration of the spec's table ("tiny")."""
    cfg = ECENetConfig(swin=SwinConfig(**asdict(SWIN_PRESETS["tiny"])), channels=32,
                       num_classes=5, alpha=1.0, sau_heads=8)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def ece_levels(num_classes: int, alpha: float) -> int:
    """S = max(1, round(alpha * sqrt(N))), rounding half up."""
    return max(1, int(math.floor(alpha * math.sqrt(num_classes) + 0.5)))


def make_norm2d(kind: str, channels: int) -> nn.Module:
    if kind in ("bn", "syncbn"):
        # SyncBN over a world of one is plain BN (momentum 0.1, eps 1e-5).
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ValueError(f"unknown norm {kind!r}")


# ----------------------------------------------------------------------------
# Swin Transformer backbone (official segmentation variant)
# ----------------------------------------------------------------------------
class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def relative_position_index(ws: int) -> torch.Tensor:
    """[ws*ws, ws*ws] int64 index into the (2ws-1)^2 table (official Swin)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = coords.flatten(1)                                  # 2, ws*ws
    rel = flat[:, :, None] - flat[:, None, :]                 # 2, n, n
    rel = rel.permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, ws, ws, C), windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, C)


def window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    B = windows.shape[0] // ((H // ws) * (W // ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


def shift_attn_mask(Hp: int, Wp: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask, 0 or -100, on the padded map."""
    img_mask = torch.zeros(1, Hp, Wp, 1)
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for h in slices:
        for w in slices:
            img_mask[:, h, w, :] = cnt
            cnt += 1
    mw = window_partition(img_mask, ws).view(-1, ws * ws)
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index",
                             relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_bias(self) -> torch.Tensor:
        n = self.window_size ** 2
        b = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return b.view(n, n, -1).permute(2, 0, 1).contiguous()   # heads, n, n

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        B_, N, C = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(B_, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1) + self.relative_bias().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, h, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, h, N, N)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))   # exact (erf) GELU


class SwinBlock(nn.Module):
    def __init__(self, dim, num_heads, window_size, shift_size, mlp_ratio, drop_path):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: int, W: int, attn_mask: Optional[torch.Tensor]):
        B, L, C = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))              # zeros after LN
        Hp, Wp = H + pad_b, W + pad_r
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        else:
            attn_mask = None
        win = window_partition(x, ws).view(-1, ws * ws, C)
        win = self.attn(win, mask=attn_mask)
        x = window_reverse(win.view(-1, ws, ws, C), ws, Hp, Wp)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = x[:, :H, :W, :].reshape(B, H * W, C)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x, H, W):
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x0 = x[:, 0::2, 0::2]    # even row, even col
        x1 = x[:, 1::2, 0::2]    # odd row,  even col
        x2 = x[:, 0::2, 1::2]    # even row, odd col
        x3 = x[:, 1::2, 1::2]
        x = torch.cat([x0, x1, x2, x3], -1).view(B, -1, 4 * C)
        return self.reduction(self.norm(x)), (H + 1) // 2, (W + 1) // 2


class SwinStage(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio, dpr, downsample):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.blocks = nn.ModuleList([
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else self.shift_size,
                      mlp_ratio, dpr[i]) for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x, H, W):
        ws = self.window_size
        Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws
        mask = shift_attn_mask(Hp, Wp, ws, self.shift_size).to(x) if len(self.blocks) > 1 else None
        for blk in self.blocks:
            x = blk(x, H, W, mask)
        if self.downsample is not None:
            xd, Hd, Wd = self.downsample(x, H, W)
            return x, H, W, xd, Hd, Wd
        return x, H, W, x, H, W


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        _, _, H, W = x.shape
        p = self.patch
        if W % p or H % p:
            x = F.pad(x, (0, (p - W % p) % p, 0, (p - H % p) % p))
        x = self.proj(x)
        Hh, Ww = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), Hh, Ww


class SwinTransformer(nn.Module):
    """Returns four NCHW maps at strides 4, 8, 16, 32, each after norm{s}."""

    def __init__(self, cfg: SwinConfig):
        super().__init__()
        self.cfg = cfg
        E = cfg.embed_dim
        self.num_features = [E * 2 ** i for i in range(4)]
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, E)
        n = sum(cfg.depths)   # stochastic depth rises linearly over all blocks
        dpr = [cfg.drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        self.layers = nn.ModuleList()
        for i in range(4):
            d0 = sum(cfg.depths[:i])
            self.layers.append(SwinStage(self.num_features[i], cfg.depths[i], cfg.num_heads[i],
                                         cfg.window_size, cfg.mlp_ratio,
                                         dpr[d0:d0 + cfg.depths[i]], downsample=i < 3))
        for i in range(4):
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x, H, W = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            xo, Ho, Wo, x, H, W = layer(x, H, W)
            xo = getattr(self, f"norm{i}")(xo)
            outs.append(xo.view(-1, Ho, Wo, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return outs


def interpolate_rel_pos_table(table: torch.Tensor, new_len: int) -> torch.Tensor:
    """Official Swin's load_pretrained: bicubic (align_corners=False) resize of
    the [L1, heads] table viewed as heads x S1 x S1 to S2 x S2."""
    L1, nH = table.shape
    S1, S2 = int(L1 ** 0.5), int(new_len ** 0.5)
    t = table.permute(1, 0).reshape(1, nH, S1, S1)
    t = F.interpolate(t, size=(S2, S2), mode="bicubic", align_corners=False)
    return t.view(nH, S2 * S2).permute(1, 0).contiguous()


def load_official_swin(backbone: SwinTransformer, sd: Dict[str, torch.Tensor]):
    """Load an official Swin classification state dict (keys without prefix,
    optionally wrapped as {'model': ...}) into `backbone`.

    Skipped: relative_position_index, attn_mask (re-built), head.* and the
    classifier's final norm.* (the four output norms keep their init, as in
    the official segmentation code).  Tables are resized bicubically when the
    window differs.  Returns (loaded keys, skipped keys, missing keys)."""
    if "model" in sd:
        sd = sd["model"]
    own = backbone.state_dict()
    loaded, skipped = [], []
    new = {}
    for k, v in sd.items():
        if (k.endswith("relative_position_index") or k.endswith("attn_mask")
                or k.startswith("head.") or k.startswith("norm.") or k not in own):
            skipped.append(k)
            continue
        if k.endswith("relative_position_bias_table") and v.shape != own[k].shape:
            if v.shape[1] != own[k].shape[1]:
                raise ValueError(f"{k}: {v.shape[1]} heads, model has {own[k].shape[1]}")
            v = interpolate_rel_pos_table(v, own[k].shape[0])
        if v.shape != own[k].shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        new[k] = v
        loaded.append(k)
    missing = [k for k in own if k not in new]
    backbone.load_state_dict(new, strict=False)
    return loaded, skipped, missing


# ----------------------------------------------------------------------------
# ResNet-D8 backbone (spec section 1, the paper's CNN row): mmseg's ResNetV1c
# ----------------------------------------------------------------------------
@dataclass
class ResNetConfig:
    depths: Tuple[int, ...] = (3, 4, 23, 3)          # ResNet-101
    stem_channels: int = 64
    base_channels: int = 64
    strides: Tuple[int, ...] = (1, 2, 1, 1)           # D8: output stride 8
    dilations: Tuple[int, ...] = (1, 1, 2, 4)
    contract_dilation: bool = True                    # a dilated stage's first block: d // 2
    norm: str = "bn"


class Bottleneck(nn.Module):
    """torchvision/mmseg 'pytorch' style: 1x1 -> 3x3 (stride, dilation,
    padding = dilation) -> 1x1 (x4), norm after each, ReLU after the first two
    and after the residual add; downsample = 1x1 conv (stride) + norm."""
    expansion = 4

    def __init__(self, cin, planes, stride, dilation, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = make_norm2d(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = make_norm2d(norm, planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = make_norm2d(norm, 4 * planes)
        self.downsample = None
        if stride != 1 or cin != 4 * planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, 4 * planes, 1, stride=stride, bias=False),
                                            make_norm2d(norm, 4 * planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNetV1c(nn.Module):
    """Deep stem (3x3 convs 3 -> C/2 stride 2 -> C/2 -> C, each + norm + ReLU;
    keys stem.0/1, stem.3/4, stem.6/7), 3x3/2 max pool (padding 1), four
    stages layer1..layer4; returns the four stage outputs (NCHW)."""

    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.cfg = cfg
        sc, n = cfg.stem_channels, cfg.norm
        self.stem = nn.Sequential(
            nn.Conv2d(3, sc // 2, 3, stride=2, padding=1, bias=False), make_norm2d(n, sc // 2), nn.ReLU(),
            nn.Conv2d(sc // 2, sc // 2, 3, padding=1, bias=False), make_norm2d(n, sc // 2), nn.ReLU(),
            nn.Conv2d(sc // 2, sc, 3, padding=1, bias=False), make_norm2d(n, sc), nn.ReLU())
        cin = sc
        for s in range(4):
            planes, d = cfg.base_channels << s, cfg.dilations[s]
            first = d // 2 if d > 1 and cfg.contract_dilation else d
            blocks = [Bottleneck(cin if i == 0 else 4 * planes, planes, cfg.strides[s] if i == 0 else 1,
                                 first if i == 0 else d, n) for i in range(cfg.depths[s])]
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
            cin = 4 * planes

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 3, stride=2, padding=1)
        outs = []
        for s in range(4):
            x = getattr(self, f"layer{s + 1}")(x)
            outs.append(x)
        return outs


# ----------------------------------------------------------------------------
# ECENet head
# ----------------------------------------------------------------------------
class ConvNorm(nn.Module):
    """conv (no bias) -> norm [-> ReLU]  (mmseg ConvModule); keys .conv, .norm"""

    def __init__(self, cin, cout, k, norm, padding=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding, groups=groups, bias=False)
        self.norm = make_norm2d(norm, cout)
        self.act = act

    def forward(self, x):
        x = self.norm(self.conv(x))
        return F.relu(x) if self.act else x


class SqueezeExcite(nn.Module):
    def __init__(self, ch, hidden):
        super().__init__()
        self.fc1 = nn.Linear(ch, hidden)
        self.fc2 = nn.Linear(hidden, ch)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class FeatureReconstruction(nn.Module):
    """Spec §2.  Returns X_i (unified), Y_i, Y''."""

    def __init__(self, cin, C, norm):
        super().__init__()
        half = cin // 2
        self.primary = ConvNorm(cin, half, 1, norm, act=False)
        self.cheap = ConvNorm(half, half, 3, norm, padding=1, groups=half, act=True)
        self.se = SqueezeExcite(half, cin // 8)
        self.proj = ConvNorm(cin, cin, 1, norm, act=False)
        self.unify = ConvNorm(cin, C, 1, norm, act=True)

    def forward(self, f):
        y1 = self.primary(f)                     # Y'
        y2 = self.se(self.cheap(y1))             # Y''
        y = self.proj(torch.cat([y1, y2], 1))    # Y_i
        return self.unify(y), y, y2


def diversity_loss_per_image(y2: torch.Tensor) -> torch.Tensor:
    """1 - (1/C') sum_k max_j softmax_j(Y''[k, j]) per image -> (B,)."""
    P = y2.flatten(2).softmax(dim=-1)            # B, C', L
    return 1.0 - P.max(dim=-1).values.mean(dim=-1)


class InitMask(nn.Module):
    def __init__(self, C, N):
        super().__init__()
        self.conv1 = nn.Conv2d(C, C, 1)
        self.conv2 = nn.Conv2d(C, N, 1)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class ECE(nn.Module):
    """Spatial pyramid of adaptive average pooling (s = 1..S, row-major bins,
    level by level) on each class slice -> Linear(sum s^2 -> C)."""

    def __init__(self, levels: int, C: int):
        super().__init__()
        self.levels = levels
        self.fc = nn.Linear(sum(s * s for s in range(1, levels + 1)), C)

    def pool(self, M):
        B, N = M.shape[:2]
        return torch.cat([F.adaptive_avg_pool2d(M, s).reshape(B, N, s * s)
                          for s in range(1, self.levels + 1)], dim=-1)

    def forward(self, M):
        return self.fc(self.pool(M))


class SAU(nn.Module):
    """Semantics Attention & Updater (spec §4)."""

    def __init__(self, C, heads, updater):
        super().__init__()
        assert C % heads == 0
        self.heads, self.updater = heads, updater
        self.norm_x, self.norm_g = nn.LayerNorm(C), nn.LayerNorm(C)
        self.q, self.k, self.v, self.o = (nn.Linear(C, C) for _ in range(4))
        self.ffn_norm = nn.LayerNorm(C)
        self.ffn_fc1 = nn.Linear(C, 4 * C)
        self.ffn_dw = nn.Conv2d(4 * C, 4 * C, 3, padding=1, groups=4 * C, bias=True)
        self.ffn_fc2 = nn.Linear(4 * C, C)
        if updater == "gated":
            self.upd_w3, self.upd_w4 = nn.Linear(C, C), nn.Linear(C, C)
            self.upd_fc, self.upd_norm_u = nn.Linear(C, C), nn.LayerNorm(C)
            self.upd_fc_g, self.upd_norm_g = nn.Linear(C, C), nn.LayerNorm(C)
        elif updater != "plus":
            raise ValueError(updater)

    def forward(self, x_map, G, ece: ECE):
        B, C, H, W = x_map.shape
        N, h = G.shape[1], self.heads
        d = C // h
        X = x_map.flatten(2).transpose(1, 2)                          # B, L, C
        q = self.q(self.norm_x(X)).view(B, -1, h, d).transpose(1, 2)  # B, h, L, d
        g = self.norm_g(G)
        k = self.k(g).view(B, N, h, d).transpose(1, 2)                # B, h, N, d
        v = self.v(g).view(B, N, h, d).transpose(1, 2)
        S = (q @ k.transpose(-2, -1)) / math.sqrt(d)                  # B, h, L, N
        out = (S.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, -1, C)
        X = X + self.o(out)
        t = self.ffn_fc1(self.ffn_norm(X))                            # B, L, 4C
        t = t.transpose(1, 2).reshape(B, 4 * C, H, W)
        t = F.gelu(self.ffn_dw(t)).flatten(2).transpose(1, 2)
        X = X + self.ffn_fc2(t)
        M = S.mean(dim=1).transpose(1, 2).reshape(B, N, H, W)         # mean over heads
        G_hat = ece(M)
        if self.updater == "gated":
            Fu = self.upd_w3(G_hat) * self.upd_w4(G)
            U = torch.sigmoid(self.upd_norm_u(self.upd_fc(Fu)))
            G = U * self.upd_norm_g(self.upd_fc_g(G_hat)) + G
        else:
            G = G_hat + G
        return X.transpose(1, 2).reshape(B, C, H, W), M, G


class GhostUpsample(nn.Module):
    """Ghost module to C*r^2 channels, then PixelShuffle(r)."""

    def __init__(self, C, r, norm):
        super().__init__()
        hidden = C * r * r // 2
        self.r = r
        self.primary = ConvNorm(C, hidden, 1, norm, act=True)
        self.cheap = ConvNorm(hidden, hidden, 3, norm, padding=1, groups=hidden, act=True)

    def forward(self, x):
        a = self.primary(x)
        return F.pixel_shuffle(torch.cat([a, self.cheap(a)], 1), self.r)


class ECEHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], cfg: ECENetConfig):
        super().__init__()
        C, N = cfg.channels, cfg.num_classes
        self.cfg = cfg
        S = ece_levels(N, cfg.alpha)
        self.fr = nn.ModuleList([FeatureReconstruction(c, C, cfg.norm) for c in in_channels])
        self.init_mask = InitMask(C, N)
        self.ece = nn.ModuleList([ECE(S, C) for _ in range(4)])
        self.sau = nn.ModuleList([SAU(C, cfg.sau_heads, cfg.updater) for _ in range(3)])
        self.up = nn.ModuleList([GhostUpsample(C, r, cfg.norm) for r in (2, 4, 8)])
        self.fuse = ConvNorm(4 * C, C, 3, cfg.norm, padding=1, act=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.cls_seg = nn.Conv2d(C, N, 1)
        self.class_head = nn.Linear(C, N + 1)

    def forward(self, feats: List[torch.Tensor]) -> Dict[str, object]:
        N = self.cfg.num_classes
        fr_out = [fr(f) for fr, f in zip(self.fr, feats)]
        X = [o[0] for o in fr_out]                         # X_1..X_4 (index 0..3)
        M4 = self.init_mask(X[3])
        G = self.ece[0](M4)
        G_list, M_list, Xr = [G], [M4], {3: X[3]}
        for j, stage in enumerate((2, 1, 0)):               # SAU for X_3, X_2, X_1
            x_ref, M, G = self.sau[j](X[stage], G, self.ece[j + 1])
            Xr[stage] = x_ref
            M_list.append(M)
            G_list.append(G)
        ups = [self.up[u](Xr[u + 1]) for u in range(3)]     # X_2, X_3, X_4 -> 1/4
        fused = self.fuse(torch.cat([Xr[0]] + ups, 1))
        logits_conv = self.cls_seg(self.dropout(fused))
        class_logits = self.class_head(G)                   # B, N, N+1
        p = class_logits.softmax(dim=-1)
        size = Xr[0].shape[2:]
        M_sum = M_list[3]
        for M in M_list[:3]:
            M_sum = M_sum + F.interpolate(M, size=size, mode="bilinear", align_corners=False)
        logits = logits_conv + torch.einsum("bnc,bnhw->bchw", p[..., :N], torch.sigmoid(M_sum))
        return dict(fr_x=X, fr_y=[o[1] for o in fr_out], fr_ydd=[o[2] for o in fr_out],
                    masks=M_list, class_emb=G_list, sau_x=[Xr[2], Xr[1], Xr[0]], ups=ups,
                    fused=fused, logits_conv=logits_conv, class_logits=class_logits,
                    class_probs=p, mask_sum=M_sum, logits=logits)


class ECENet(nn.Module):
    def __init__(self, cfg: ECENetConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = SwinTransformer(cfg.swin)
        self.head = ECEHead(self.backbone.num_features, cfg)

    def forward(self, img: torch.Tensor) -> Dict[str, object]:
        feats = self.backbone(img)
        out = self.head(feats)
        out["feats"] = feats
        out["logits_up"] = F.interpolate(out["logits"], size=img.shape[2:], mode="bilinear",
                                         align_corners=False)
        return out

    @torch.no_grad()
    def predict(self, img):
        return self.forward(img)["logits_up"].argmax(1)


# ----------------------------------------------------------------------------
# Losses (spec §6)
# ----------------------------------------------------------------------------
def sigmoid_focal_per_mask(x, t, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, mean over the last axis."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean(-1)


def dice_per_mask(x, t):
    p = torch.sigmoid(x)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def loss_terms(out: Dict[str, object], label: torch.Tensor, cfg: ECENetConfig,
               global_counts: Optional[Dict[str, float]] = None) -> Dict[str, torch.Tensor]:
    """All loss terms, unweighted, plus the weighted total.

    label: (B, H, W) int64 at the input size, ignore index cfg.ignore_index.
    global_counts: the allreduced normalisers for multi-rank use
      valid_pixels, cls_weight (sum of CE class weights of all slots), masks,
      images.  Defaults to this batch's counts (world of one)."""
    N, ign = cfg.num_classes, cfg.ignore_index
    B = label.shape[0]
    valid = label != ign
    # presence of each class among the valid pixels of each image
    present = torch.stack([(label == n).flatten(1).any(1) for n in range(N)], 1)  # B, N
    cls_target = torch.where(present, torch.arange(N).expand(B, N), torch.full((B, N), N))
    cls_w = torch.ones(N + 1)
    cls_w[N] = cfg.eos_coef
    counts = dict(valid_pixels=float(valid.sum()), cls_weight=float(cls_w[cls_target].sum()),
                  masks=float(max(int(present.sum()), 1)), images=float(B))
    if global_counts is not None:
        counts.update(global_counts)

    # L_seg
    seg_sum = F.cross_entropy(out["logits_up"], label, ignore_index=ign, reduction="sum")
    l_seg = seg_sum / max(counts["valid_pixels"], 1.0)

    # L_cls: weighted mean, DETR / F.cross_entropy(weight=...) convention
    ce = F.cross_entropy(out["class_logits"].reshape(B * N, N + 1), cls_target.reshape(-1),
                         reduction="none")
    l_cls = (ce * cls_w[cls_target.reshape(-1)]).sum() / counts["cls_weight"]

    # focal + dice on M_sum of the present classes, at label size
    m_up = F.interpolate(out["mask_sum"], size=label.shape[1:], mode="bilinear",
                         align_corners=False)                            # B, N, H, W
    b_idx, n_idx = present.nonzero(as_tuple=True)
    x = m_up[b_idx, n_idx].flatten(1)                                    # masks, H*W
    t = (label[b_idx] == n_idx[:, None, None]).flatten(1).to(x.dtype)    # ignored -> 0
    l_focal = sigmoid_focal_per_mask(x, t, cfg.focal_alpha, cfg.focal_gamma).sum() / counts["masks"]
    l_dice = dice_per_mask(x, t).sum() / counts["masks"]

    # diversity: per image, summed over the four stages, mean over images
    l_div = sum(diversity_loss_per_image(y2).sum() for y2 in out["fr_ydd"]) / counts["images"]

    total = (cfg.w_seg * l_seg + cfg.w_cls * l_cls + cfg.w_focal * l_focal
             + cfg.w_dice * l_dice + cfg.w_div * l_div)
    return dict(seg=l_seg, cls=l_cls, focal=l_focal, dice=l_dice, div=l_div, total=total)


def normalize_image(img_0_255: torch.Tensor) -> torch.Tensor:
    """RGB NCHW in [0, 255] -> (x - mean) / std per channel."""
    mean = torch.tensor(IMG_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMG_STD).view(1, 3, 1, 1)
    return (img_0_255 - mean) / std


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    torch.manual_seed(0)
    cfg = tiny_config(dropout=0.0)
    model = ECENet(cfg).train()
    img = normalize_image(torch.rand(2, 3, 64, 64) * 255)
    label = torch.randint(0, cfg.num_classes, (2, 64, 64))
    label[:, :4] = 255
    out = model(img)
    losses = loss_terms(out, label, cfg)
    losses["total"].backward()
    print({k: round(v.item(), 6) for k, v in losses.items()})
    print("params", count_params(model), "backbone", count_params(model.backbone))
