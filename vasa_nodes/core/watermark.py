"""Invisible watermark: every generated frame carries a 64-bit mark saying it was made by vasa_nodes.

Why: a talking face made from one photo can be used to impersonate a real person. Every
frame the renderer outputs is marked (on by default), so that `vasa-detect` can tell
generated from real material, also after it was re-encoded or rescaled.

How (spread spectrum in the luma, fixed in the frame):
- The frame is divided into a 64 x 64 grid of chips (8 x 8 pixels at 512²; the grid is
  relative to the frame, so a frame scaled to any size keeps it).
- 64 payload bits (`Payload`: a 32-bit tag, the mark's format version, a 16-bit key
  digest, an 8-bit CRC) are spread over the 4096 chips: each bit owns 64 chips scattered
  over the whole frame, and each chip carries +-1 x a pseudo-random sign x its bit.
- The chip pattern, smoothed into soft bumps, is added to R, G and B alike (a change of
  luma only) with an amplitude of 2-3 grey levels: PSNR about 44 dB, below what the eye
  sees on a moving face. It is computed once per frame size and payload; marking a frame
  is two saturating uint8 additions (about 0.2 ms per 512² frame).
- Detection averages each chip of the luma (the grid is found by rescaling the image to
  the frame it came from), predicts each chip from its four neighbours (removing the
  picture's own smooth content), clips the residual (edges), correlates with the signs
  and sums per bit. Bits are decided by sign; the mark is found when the 32 tag bits
  match within `MAX_TAG_ERRORS`: by chance (unmarked material, where each sign is a coin
  toss) that happens with probability 9.4e-6 per frame or clip. Video frames add up
  their evidence, so a clip is detected even where single frames are not.

A cropped (or cropped and rescaled) picture is read by first finding where it sits in its
frame (`find_alignment`: the tag's pattern matched at every scale down to 60 % of the
width and every offset); a mark found that way must match more closely, as the search
tries many placements. Rotation and a changed aspect ratio are not searched (README,
Known limits).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

GRID = 64
"""Chips per side of the frame."""
CANONICAL = 512
"""Detection works on the luma rescaled to CANONICAL² (8-pixel chips)."""
N_BITS = 64
TAG = 0x7A5A0DE5
"""The 32-bit 'made by vasa_nodes' tag."""
FORMAT_VERSION = 1
"""Version of the mark's format (the chip layout and payload)."""
MAX_TAG_ERRORS = 4
"""Tag bits allowed to be wrong for the mark to count as found."""
AMPLITUDE = 2.5
"""Peak change of R, G and B (grey levels) at the centre of a chip."""
_SEED = 0x5A5A_2024  # fixed: the chip layout is part of the format
CLIP = 1.5
"""Chip residuals are clipped to +-CLIP grey levels: edges of the picture must not outvote the mark."""
ACTIVITY_FLOOR = 2.0
"""Added to a chip's fine-detail energy (grey levels²) before weighing by its inverse."""
_NEIGHBOURS = np.array([[0, .25, 0], [.25, 0, .25], [0, .25, 0]], np.float32)


class WatermarkError(ValueError):
    """A frame the watermark cannot handle (not an RGB uint8 image)."""


def key_digest(key: str | None) -> int:
    """16-bit digest of a user key ('' or None: no key, 0)."""
    if not key:
        return 0
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:2], "big") or 1


def _crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07) of the version and key fields."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@dataclass(frozen=True)
class Payload:
    """What a mark says: tag (fixed), format version, key digest (0: none)."""

    version: int = FORMAT_VERSION
    key: int = 0
    tag: int = TAG

    def bits(self) -> np.ndarray:
        """The 64 bits, most significant first: tag(32) version(8) key(16) crc(8)."""
        body = self.version.to_bytes(1, "big") + self.key.to_bytes(2, "big")
        word = (self.tag << 32) | (int.from_bytes(body, "big") << 8) | _crc8(body)
        return np.array([(word >> (N_BITS - 1 - i)) & 1 for i in range(N_BITS)], np.uint8)

    @staticmethod
    def from_bits(bits: np.ndarray) -> tuple["Payload", bool]:
        """The payload the bits spell, and whether its CRC holds."""
        word = 0
        for b in np.asarray(bits, np.uint8)[:N_BITS]:
            word = (word << 1) | int(b)
        body = ((word >> 8) & 0xFFFFFF).to_bytes(3, "big")
        payload = Payload(version=body[0], key=int.from_bytes(body[1:], "big"), tag=word >> 32)
        return payload, _crc8(body) == (word & 0xFF)


@lru_cache(maxsize=1)
def _layout() -> tuple[np.ndarray, np.ndarray]:
    """(bit index of each chip, sign of each chip), both (GRID, GRID)."""
    rng = np.random.default_rng(_SEED)
    owner = (rng.permutation(GRID * GRID) % N_BITS).reshape(GRID, GRID)
    sign = rng.choice(np.array([-1.0, 1.0], np.float32), size=(GRID, GRID))
    return owner, sign


def _chips(payload: Payload) -> np.ndarray:
    """+-1 per chip: its sign times its bit (as +-1)."""
    owner, sign = _layout()
    symbols = payload.bits().astype(np.float32) * 2.0 - 1.0
    return sign * symbols[owner]


@lru_cache(maxsize=8)
def _pattern(payload: Payload, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The mark of one frame size as (added, subtracted) uint8 RGB images."""
    chips = _chips(payload)
    # Soft bumps: the chip signs upsampled with a smooth kernel, peaking at the chip centres.
    up = cv2.resize(chips, (width, height), interpolation=cv2.INTER_NEAREST)
    k = max(1.0, 0.3 * min(height, width) / GRID)
    soft = cv2.GaussianBlur(up, (0, 0), k)
    soft *= AMPLITUDE / max(float(np.abs(soft).max()), 1e-6)
    delta = np.rint(soft).astype(np.int16)
    plus = np.clip(delta, 0, 255).astype(np.uint8)
    minus = np.clip(-delta, 0, 255).astype(np.uint8)
    return (np.repeat(plus[:, :, None], 3, axis=2), np.repeat(minus[:, :, None], 3, axis=2))


class Watermarker:
    """Marks RGB uint8 frames in place with one payload."""

    def __init__(self, key: str | None = None):
        self.payload = Payload(key=key_digest(key))

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Mark `rgb` (H, W, 3) uint8 in place and return it."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise WatermarkError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
        plus, minus = _pattern(self.payload, rgb.shape[0], rgb.shape[1])
        cv2.add(rgb, plus, dst=rgb)
        cv2.subtract(rgb, minus, dst=rgb)
        return rgb


DEFAULT_WATERMARK = Watermarker()
"""The mark frames get unless told otherwise: tag and version, no key."""


# -- detection ------------------------------------------------------------------------

def _luma(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        y = image.astype(np.float32)
    elif image.shape[2] == 4:
        y = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY).astype(np.float32)
    else:
        y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if image.dtype == np.uint16:
        y /= 257.0
    return y


@dataclass(frozen=True)
class Alignment:
    """Where an image sits in the frame it came from, for a cropped or shifted picture: the
    image, resized uniformly to `width` x `height` canonical pixels (the frame being
    CANONICAL² pixels), has its top-left corner at (`x`, `y`)."""

    width: int
    height: int
    x: int
    y: int

    @property
    def scale(self) -> float:
        """The fraction of the frame's width the image covers."""
        return self.width / CANONICAL

    def as_dict(self) -> dict:
        return {"kept_fraction": round(self.scale, 3), "x": round(self.x / CANONICAL, 4),
                "y": round(self.y / CANONICAL, 4)}


def _canonical(image: np.ndarray, alignment: Alignment | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The luma in the frame's canonical CANONICAL² pixels, and which pixels the image covers
    (None: all of them)."""
    y = _luma(image)
    h, w = y.shape
    if alignment is None:
        interp = cv2.INTER_AREA if min(h, w) >= CANONICAL else cv2.INTER_LINEAR
        return cv2.resize(y, (CANONICAL, CANONICAL), interpolation=interp), None
    a = alignment
    interp = cv2.INTER_AREA if a.width < w else cv2.INTER_LINEAR
    placed = cv2.resize(y, (a.width, a.height), interpolation=interp)
    x1, y1 = min(CANONICAL, a.x + a.width), min(CANONICAL, a.y + a.height)
    covered = np.zeros((CANONICAL, CANONICAL), np.float32)
    covered[a.y:y1, a.x:x1] = 1.0
    # outside the picture: its edge repeated, so that the neighbour predictions stay calm
    canvas = cv2.copyMakeBorder(placed[:y1 - a.y, :x1 - a.x], a.y, CANONICAL - y1, a.x, CANONICAL - x1,
                                cv2.BORDER_REPLICATE)
    return canvas, covered


def frame_evidence(image: np.ndarray, alignment: Alignment | None = None) -> np.ndarray:
    """Per-bit soft evidence of one frame (RGB or grey, any size): 64 values, each ~N(0, 1)
    on unmarked material; their signs are the bits. Add them up over the frames of a clip.
    `alignment`: where a cropped image sits in its frame (`find_alignment`); None: the image
    is the whole frame."""
    y, covered = _canonical(image, alignment)
    chip = cv2.resize(y, (GRID, GRID), interpolation=cv2.INTER_AREA)
    # Each chip predicted from its four neighbours: the picture's smooth content goes.
    pred = cv2.filter2D(chip, -1, _NEIGHBOURS, borderType=cv2.BORDER_REFLECT)
    r = np.clip(chip - pred, -CLIP, CLIP)
    # Textured chips say less: weigh each by the inverse of its fine detail's energy.
    fine = y - cv2.blur(y, (3, 3))
    weight = 1.0 / (cv2.resize(fine * fine, (GRID, GRID), interpolation=cv2.INTER_AREA) + ACTIVITY_FLOOR)
    if covered is not None:
        # only chips the picture covers whole, with their four neighbours
        full = cv2.resize(covered, (GRID, GRID), interpolation=cv2.INTER_AREA) > 0.999
        full = cv2.erode(full.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8),
                         borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
        weight = np.where(full, weight, 0.0).astype(np.float32)
    owner, sign = _layout()
    terms = (r * weight).ravel()
    corr = np.bincount(owner.ravel(), weights=terms * sign.ravel(), minlength=N_BITS)
    # Each bit's sum over its chips, divided by its spread were the signs random: ~N(0, 1) unmarked.
    spread = np.sqrt(np.bincount(owner.ravel(), weights=terms * terms, minlength=N_BITS)) + 1e-9
    return (corr / spread).astype(np.float64)


# -- finding a cropped frame's place ----------------------------------------------------

MIN_KEPT = 0.6
"""The smallest crop searched: 60 % of the frame's width kept."""
SEARCH_HYPOTHESES = 50_000
"""About how many independent placements the search tries (scales x offsets at the scale of a
chip); a mark found by search must beat this many chances (`decide(..., searched=True)`)."""
MAX_SEARCHED_TAG_ERRORS = 1


@lru_cache(maxsize=1)
def _tag_template() -> np.ndarray:
    """The pixel pattern of the 32 tag bits' chips (the rest, unknown, left at 0)."""
    owner, sign = _layout()
    symbols = Payload().bits().astype(np.float32) * 2.0 - 1.0
    chips = np.where(owner < 32, sign * symbols[owner], 0.0).astype(np.float32)
    up = cv2.resize(chips, (CANONICAL, CANONICAL), interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(up, (0, 0), 0.3 * CANONICAL / GRID)


def _band(y: np.ndarray) -> np.ndarray:
    """The luma's detail at the chips' scale, textured places weighed less."""
    cell = CANONICAL / GRID
    r = y - cv2.GaussianBlur(y, (0, 0), cell / 2)
    fine = y - cv2.blur(y, (3, 3))
    return np.clip(r, -3.0, 3.0) / (cv2.GaussianBlur(fine * fine, (0, 0), cell / 2) + ACTIVITY_FLOOR)


def find_alignment(images, min_kept: float = MIN_KEPT) -> Alignment | None:
    """Where a cropped (and possibly rescaled) picture sits in its frame, found by matching
    the tag's pattern at every scale from the whole frame down to `min_kept` of its width
    and every offset; the images (frames of one clip, cropped alike) are matched together.
    Only uniform scaling is searched: not rotation, not a changed aspect ratio. None: the
    pictures are not smaller than a frame could be."""
    lumas = [_luma(image) for image in images]
    if not lumas:
        return None
    h, w = lumas[0].shape
    template = _tag_template()
    template_rms = float(np.sqrt(np.mean(template * template)))

    def score(width: int) -> tuple[float, Alignment] | None:
        height = int(round(width * h / w))
        if not (GRID <= width <= CANONICAL and GRID <= height <= CANONICAL):
            return None
        interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
        total, energy = None, 0.0
        for y in lumas:
            band = _band(cv2.resize(y, (width, height), interpolation=interp))
            c = cv2.matchTemplate(template, band, cv2.TM_CCORR)
            total = c if total is None else total + c
            energy += float(np.sum(band * band))
        iy, ix = np.unravel_index(int(np.argmax(total)), total.shape)
        # the peak in standard deviations of the correlation with a picture that has no mark
        spread = np.sqrt(energy) * template_rms * np.sqrt(width * height) + 1e-9
        return float(total[iy, ix]) / spread, Alignment(width, height, int(ix), int(iy))

    best = None
    coarse = max(1, int(round(0.02 * CANONICAL)))
    widths = list(range(CANONICAL, int(min_kept * CANONICAL) - 1, -coarse))
    for width in widths:
        s = score(width)
        if s and (best is None or s[0] > best[0]):
            best = s
    if best is None:
        return None
    fine = max(1, int(round(0.004 * CANONICAL)))
    centre = best[1].width
    for width in range(centre - coarse, centre + coarse + 1, fine):
        s = score(width)
        if s and s[0] > best[0]:
            best = s
    return best[1]


@dataclass
class Detection:
    found: bool
    payload: Payload
    crc_ok: bool
    tag_errors: int
    score: float
    """The evidence along the tag, in standard deviations of unmarked material."""
    p_value: float
    """Chance that unmarked material matches the tag this well."""

    def as_dict(self) -> dict:
        return {"found": self.found, "tag_errors": self.tag_errors, "crc_ok": self.crc_ok,
                "version": self.payload.version if self.found else None,
                "key_digest": f"{self.payload.key:04x}" if self.found and self.crc_ok else None,
                "score": round(self.score, 2), "p_value": self.p_value}


def _tag_bits() -> np.ndarray:
    return Payload().bits()[:32]


def _binomial_tail(errors: int, n: int = 32) -> float:
    """P(at most `errors` of n fair coin tosses disagree)."""
    return float(sum(math.comb(n, k) for k in range(errors + 1)) / 2.0 ** n)


def decide(evidence: np.ndarray, frames: int = 1, searched: bool = False) -> Detection:
    """The mark read from evidence summed over `frames` frames. `searched`: read at a placement
    that `find_alignment` chose among many, so the tag must match more closely
    (MAX_SEARCHED_TAG_ERRORS) and the checksum hold, and the chance is counted over them all."""
    evidence = np.asarray(evidence, np.float64)
    bits = (evidence > 0).astype(np.uint8)
    tag = _tag_bits()
    errors = int(np.sum(bits[:32] != tag))
    payload, crc_ok = Payload.from_bits(bits)
    signed = np.where(tag == 1, 1.0, -1.0) * evidence[:32]
    score = float(signed.sum() / np.sqrt(32.0 * max(frames, 1)))
    if searched:
        # the whole tag, or all but one bit and a payload whose checksum holds
        found = errors == 0 or (errors <= MAX_SEARCHED_TAG_ERRORS and crc_ok)
        chance = _binomial_tail(errors) / (256.0 if errors and found else 1.0)  # a checksum holds by chance 1 in 256
        p_value = min(1.0, SEARCH_HYPOTHESES * chance)
    else:
        found, p_value = errors <= MAX_TAG_ERRORS, _binomial_tail(errors)
    return Detection(found=found, payload=payload, crc_ok=crc_ok, tag_errors=errors, score=score, p_value=p_value)


def detect(image: np.ndarray) -> Detection:
    """Read the mark of a single image (RGB or grey uint8)."""
    return decide(frame_evidence(image))


@dataclass
class ClipDetection:
    """A video's (or a sequence of images') reading: the evidence of all frames together,
    and how many frames carry the mark on their own."""

    detection: Detection
    frames: int
    frames_found: int
    alignment: Alignment | None = None
    """Where the pictures were found to sit in their frame, when they were read re-aligned."""

    @property
    def fraction(self) -> float:
        return self.frames_found / self.frames if self.frames else 0.0


class ClipDetector:
    """Adds up the evidence of frames as they come (at `alignment`, for cropped pictures)."""

    def __init__(self, alignment: Alignment | None = None):
        self.alignment = alignment
        self.evidence = np.zeros(N_BITS)
        self.frames = 0
        self.frames_found = 0

    def add(self, image: np.ndarray) -> Detection:
        e = frame_evidence(image, self.alignment)
        self.evidence += e
        self.frames += 1
        d = decide(e)
        self.frames_found += d.found
        return d

    def result(self) -> ClipDetection:
        return ClipDetection(decide(self.evidence, self.frames, searched=self.alignment is not None),
                             self.frames, self.frames_found, self.alignment)


def detect_clip(frames, search: bool = False) -> ClipDetection:
    """Read the mark of a sequence of frames (an iterable of images). `search`: where the
    mark is not found as it stands, look for a crop's placement (`find_alignment`, on the
    first SEARCH_FRAMES frames) and read again there."""
    frames = list(frames) if search else frames
    detector = ClipDetector()
    for image in frames:
        detector.add(image)
    result = detector.result()
    if not search or result.detection.found:
        return result
    alignment = find_alignment(frames[:SEARCH_FRAMES])
    if alignment is None:
        return result
    aligned = ClipDetector(alignment)
    for image in frames:
        aligned.add(image)
    again = aligned.result()
    return again if again.detection.found else result


SEARCH_FRAMES = 10
"""How many frames of a clip the crop search matches together."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
