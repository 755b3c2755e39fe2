# Fast synthetic scene-text images with word-level quads: lines of words from a built-in list rendered with
# many TTF fonts onto procedural backgrounds or ICDAR img_1-250 views (whose own labels are kept).
import glob
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from icdar import IcdarSamples, order_clockwise

WORDS = """the of and to in is for on with by at from open exit sale shop food cafe bar hotel bank store
market mall street road avenue park station taxi bus stop parking entrance closed new free best city centre
center restaurant coffee tea noodle rice chicken fish beef pork fresh hot cold drinks beer wine water juice
pharmacy clinic dental medical hospital school college library museum gallery cinema theatre office tower
plaza square level floor lift toilet ladies gents way out in push pull caution danger warning keep left
right no smoking entry only staff service sushi pizza burger bakery bread cake ice cream fashion beauty
salon hair nails spa gold jewellery watch watches phone mobile electronics camera books toys sports shoes
bags optical eyewear travel tours money exchange atm credit card cash discount offer promotion limited
special price off save up to members welcome thank you please sorry love happy life style home living
design studio world global asia singapore orchard marina bay raffles chinatown little india changi express
north south east west central mrt line platform ticket gate arrival departure information counter help
desk customer mart supermarket grocery fruit vegetable seafood dim sum kopi tiam hawker court lane block
unit tel fax www com sg net email call now daily mon tue wed thu fri sat sun am pm hours year years sale
brand original genuine quality premium luxury collection season summer winter spring autumn kids men
women baby home kitchen garden tools hardware paint lighting furniture bed bath mattress sofa table
chair lamp fan air con wifi zone area reserved private public police fire emergency first aid blood
donor bike cycle lorry car van truck motor oil petrol gas diesel shell esso caltex mobil honda toyota
nissan samsung apple sony canon nike adidas puma uniqlo zara guess levi mango cotton on starbucks
subway mcdonald kfc burger king pizza hut dunkin donuts""".split()


def random_word(rng):
    r = rng.random()
    if r < 0.72:
        w = WORDS[rng.integers(len(WORDS))]
    elif r < 0.82:
        w = str(rng.integers(0, 10 ** int(rng.integers(1, 6))))
    elif r < 0.88:
        w = f"${rng.integers(1, 999)}.{rng.integers(0, 100):02d}"
    elif r < 0.94:
        n = int(rng.integers(2, 8))
        w = "".join(chr(c) for c in rng.integers(65, 91, n))
    else:
        w = f"{rng.integers(10, 99)}-{rng.integers(100, 9999)}"
    c = rng.random()
    if c < 0.35:
        return w.upper()
    if c < 0.6:
        return w.capitalize()
    return w


FONT_SIZES = (14, 18, 24, 32, 42, 56, 74, 96)


class FontBank:
    """Fonts that load and have Latin glyphs; ImageFont objects cached per (font, size bucket)."""

    def __init__(self, font_dir):
        paths = sorted(glob.glob(os.path.join(font_dir, "*.ttf")) + glob.glob(os.path.join(font_dir, "*.otf")))
        self.paths = []
        for p in paths:
            try:
                f = ImageFont.truetype(p, 24)
                bb = f.getbbox("Hag")
                if bb[2] - bb[0] > 10:
                    self.paths.append(p)
            except OSError:
                continue
        if not self.paths:
            raise FileNotFoundError(f"{font_dir}: no usable .ttf/.otf fonts (run train/pack_fonts.sh)")
        self.cache = {}

    def get(self, rng):
        key = (int(rng.integers(len(self.paths))), int(rng.integers(len(FONT_SIZES))))
        if key not in self.cache:
            self.cache[key] = ImageFont.truetype(self.paths[key[0]], FONT_SIZES[key[1]])
        return self.cache[key]


def procedural_background(rng, size):
    """Gradient or low-frequency noise built at 64x64 and upsampled (cheap), then random shapes."""
    c0, c1 = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
    n = 64
    if rng.random() < 0.35:  # linear gradient
        t = np.linspace(0, 1, n, dtype=np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        g = np.cos(ang) * t[None, :] + np.sin(ang) * t[:, None]
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    else:  # low-frequency noise texture
        k = int(rng.integers(2, 24))
        g = cv2.resize(rng.random((k, k), dtype=np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    small = c0 * (1 - g[..., None]) + c1 * g[..., None]
    img = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(0, 8))):  # random shapes
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = rng.integers(0, size, 4)
        s = rng.random()
        if s < 0.4:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, -1 if rng.random() < 0.7 else 3)
        elif s < 0.7:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(5, size // 3)), col, -1)
        else:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, int(rng.integers(1, 12)))
    return img


def render_line(font, words, rng):
    """-> (alpha uint8 [h,w], word boxes [n,4] as x0,y0,x1,y1 of the ink) for words drawn on one line."""
    space = max(4, int(font.size * rng.uniform(0.25, 0.6)))
    boxes, x = [], 0
    for w in words:
        bb = font.getbbox(w)
        boxes.append((x + bb[0], bb[1], x + bb[2], bb[3]))
        x += bb[2] + space
    pad = 4
    W = int(x - space + 2 * pad)
    H = int(max(b[3] for b in boxes) - min(b[1] for b in boxes) + 2 * pad)
    y_off = pad - min(b[1] for b in boxes)
    canvas = Image.new("L", (max(W, 1), max(H, 1)), 0)
    d = ImageDraw.Draw(canvas)
    x = pad
    for w, b in zip(words, boxes):
        d.text((b[0] + pad, y_off), w, fill=255, font=font)
    boxes = np.array([(b[0] + pad, b[1] + y_off, b[2] + pad, b[3] + y_off) for b in boxes], np.float32)
    return np.asarray(canvas), boxes


class SynthText:
    def __init__(self, font_dir, icdar_root=None, size=512, icdar_bg_prob=0.4):
        self.fonts = FontBank(font_dir)
        self.icdar = IcdarSamples(icdar_root, size) if icdar_root and os.path.isdir(icdar_root) else None
        self.size = size
        self.icdar_bg_prob = icdar_bg_prob if self.icdar else 0.0

    def sample(self, rng):
        S = self.size
        if rng.random() < self.icdar_bg_prob:
            img, quads, dc = self.icdar.sample(rng)
            img = img.copy()
            quads, dc = list(quads), list(dc)
        else:
            img, quads, dc = procedural_background(rng, S), [], []
        occ = np.zeros((S // 4, S // 4), np.uint8)  # occupancy at 1/4: lines never overlap text
        for q in quads:
            cv2.fillPoly(occ, [np.round(q / 4).astype(np.int32)], 1)
        imgf = img.astype(np.float32)
        for _ in range(int(rng.integers(1, 8))):
            font = self.fonts.get(rng)
            words = [random_word(rng) for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3, 4])))]
            alpha, boxes = render_line(font, words, rng)
            placed = self._place(alpha, boxes, rng, occ)
            if placed is None:
                continue
            H, x0, y0, warped = placed
            h, w = warped.shape
            col = self._text_colour(imgf[y0:y0 + h, x0:x0 + w], rng)
            a = warped.astype(np.float32)[..., None] * (rng.uniform(0.7, 1.0) / 255.0)
            region = imgf[y0:y0 + h, x0:x0 + w]
            if rng.random() < 0.2:  # drop shadow / outline in a contrasting colour
                sh = np.roll(a, (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (0, 1))
                region[:] = region * (1 - sh) + (255 - col) * sh
            region[:] = region * (1 - a) + col * a
            for b in boxes:
                pts = np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], np.float32)
                q = cv2.perspectiveTransform(pts[None], H)[0]
                quads.append(order_clockwise(q))
                dc.append(False)
        img = self._degrade(imgf, rng)
        quads = np.array(quads, np.float32).reshape(-1, 4, 2)
        return img, quads, np.array(dc, bool)

    def _place(self, alpha, boxes, rng, occ, tries=6):
        S = self.size
        h, w = alpha.shape
        scale = rng.uniform(0.5, 1.6)
        deg = rng.uniform(-10, 10) if rng.random() < 0.6 else rng.uniform(-45, 45)
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        for _ in range(tries):
            c, s = np.cos(np.deg2rad(deg)) * scale, np.sin(np.deg2rad(deg)) * scale
            dst = (src - [w / 2, h / 2]) @ np.array([[c, -s], [s, c]]).T  # rotates counter-clockwise on screen
            # perspective: corners moved by a fraction of the line height (of the width it would fold thin lines)
            dst += rng.normal(0, 0.12, dst.shape) * h * scale
            if not cv2.isContourConvex(dst.astype(np.float32).reshape(-1, 1, 2)):
                continue
            lo, hi = dst.min(0), dst.max(0)
            if hi[0] - lo[0] >= S - 2 or hi[1] - lo[1] >= S - 2:
                scale *= 0.6
                continue
            off = np.array([rng.uniform(-lo[0], S - 1 - hi[0]), rng.uniform(-lo[1], S - 1 - hi[1])])
            dst = (dst + off).astype(np.float32)
            poly = np.round(dst / 4).astype(np.int32)
            test = np.zeros_like(occ)
            cv2.fillPoly(test, [poly], 1)
            if (test & occ).any():
                continue
            occ |= test
            x0, y0 = np.floor(dst.min(0)).astype(int)
            x1, y1 = np.ceil(dst.max(0)).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, S), min(y1, S)
            H = cv2.getPerspectiveTransform(src, dst)
            T = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
            warped = cv2.warpPerspective(alpha, T @ H, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
            return H, x0, y0, warped
        return None

    @staticmethod
    def _text_colour(region, rng):
        bg = region.reshape(-1, 3).mean(0) if region.size else np.full(3, 128.0)
        for _ in range(8):
            col = rng.integers(0, 256, 3).astype(np.float32)
            if abs(col @ [0.299, 0.587, 0.114] - bg @ [0.299, 0.587, 0.114]) > 60:
                return col
        return np.where(bg.mean() > 128, 0.0, 255.0) * np.ones(3, np.float32)

    def _degrade(self, imgf, rng):
        S = self.size
        if rng.random() < 0.15:  # occlusion: a bar or blob over part of the image, labels unchanged
            col = tuple(float(v) for v in rng.integers(0, 256, 3))
            p = rng.integers(0, S, 4)
            if rng.random() < 0.5:
                cv2.line(imgf, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, int(rng.integers(2, 10)))
            else:
                cv2.circle(imgf, (int(p[0]), int(p[1])), int(rng.integers(4, 30)), col, -1)
        if rng.random() < 0.5:  # contrast / brightness
            imgf = imgf * rng.uniform(0.6, 1.3) + rng.uniform(-40, 40)
        r = rng.random()
        if r < 0.2:
            imgf = cv2.GaussianBlur(imgf, (0, 0), rng.uniform(0.5, 1.8))
        elif r < 0.3:  # motion blur
            k = int(rng.integers(3, 8))
            ker = np.zeros((k, k), np.float32)
            ker[k // 2] = 1.0 / k
            M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            ker = cv2.warpAffine(ker, M, (k, k))
            imgf = cv2.filter2D(imgf, -1, ker / max(ker.sum(), 1e-6))
        if rng.random() < 0.3:
            sigma = rng.uniform(2, 10)
            noise = rng.standard_normal((S // 2, S // 2, 1), dtype=np.float32) * sigma
            imgf = imgf + cv2.resize(noise, (S, S), interpolation=cv2.INTER_NEAREST)[..., None]
        img = np.clip(imgf, 0, 255).astype(np.uint8)
        if rng.random() < 0.4:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return img
