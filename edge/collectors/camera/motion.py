"""The motion detector: frames in, "is something moving, where, how much" out. No I/O.

Why it looks like this (measured on ``../shared/testdata/video``, see ``commune-iot bench motion``):

- The frame is shrunk to a small luma image first (``detect_width`` px wide) with a cheap
  bilinear resize and blurred there: every later step costs a fraction of a millisecond and the
  blur removes sensor noise and compression blocks.
- Light is compensated before differencing: a coarse *gain field* (frame / background, per cell of
  a small grid, smoothed) divides the frame, so a cloud shadow, the sun coming out or the camera's
  auto-exposure do not show as change, while an object (small against a cell) still does.
- Each pixel has its own threshold, ``sensitivity`` times a running mean of its own absolute
  deviation from the background, never below a floor: rippling water and swaying leaves raise
  their own threshold and stop triggering, still road keeps a low one.
- A change covering most of the frame at once (IR day/night switch, lightning, a camera that
  re-exposes) is not motion: the background is re-learnt from that frame, and nothing is
  reported while the model settles.
- Changed pixels are cleaned with a morphological opening, grouped into connected blobs, and
  only blobs of at least ``min_area`` count. To start motion a blob also needs a *core* of
  ``core`` x ``min_area`` pixels that changed in the previous frame too (a ripple or a leaf
  flickers in place and has none that size); while motion is on it does not (hysteresis: a
  walker at 7 fps barely overlaps himself from frame to frame, a person half hidden behind a car
  is small and faint). The blob's area is its whole change, not only its core.
- A blob on the frame's edge needs ``edge_area`` x ``min_area`` (an object entering counts once
  it is well in), unless it continues a blob counted in the previous frame (one leaving).
- The camera's own motion (pan, tilt, zoom, shake) is estimated when much of the frame changes,
  spread over at least half of a 4x4 grid (traffic is local, a camera's motion moves every edge)
  (``global_motion.py``: phase correlation on the frame's halves gives translation, zoom and
  rotation). Small motion is compensated by warping the background model onto the frame; larger
  motion enters a *camera moving* state: no motion is reported, the background follows the
  frame, and once the camera has been still for ``moving_settle_s`` the background is re-learnt
  over ``relearn_s`` (see ``commune-iot bench motion``'s ``camera_motion`` figures).
- A frame is "motion" when such blobs exist; a short hysteresis (``start_frames`` of the last
  frames to start, ``hold_frames`` quiet to end) keeps one-frame flickers out and keeps a slow
  walker from splitting into many events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.collectors.camera.config import MotionSettings
from edge.collectors.camera.global_motion import GlobalMotion, MotionEstimator, explains

U8 = npt.NDArray[Any]  # cv2 returns loosely typed arrays; uint8 by construction
F32 = npt.NDArray[Any]  # float32 by construction


@dataclass(frozen=True)
class Blob:
    """One moving region; coordinates are fractions of the frame."""

    x: float
    y: float
    w: float
    h: float
    area: float  # share of the frame covered by changed pixels of this blob


@dataclass
class MotionResult:
    motion: bool  # after hysteresis: what events and reports use
    raw: bool  # this frame alone had blobs
    area: float  # share of the frame covered by the blobs that count (0..1)
    blobs: list[Blob] = field(default_factory=list)
    score: float = 0.0  # 0..1: how far above its threshold the change is, on average
    recalibrated: bool = False  # a global change re-set the background on this frame
    mask: U8 | None = None  # the small foreground mask (for zone tests and debugging)
    # On the frame where ``motion`` turns on: how many frames earlier the motion it confirms
    # began (the first frame with blobs among the last start_window), so an event can start
    # there (pre-roll); 0 otherwise.
    onset: int = 0
    camera_moving: bool = False  # the camera itself is moving: nothing is reported


Box = tuple[int, int, int, int]  # x, y, w, h in detector pixels


def _touches(boxes: Sequence[Box], x: int, y: int, w: int, h: int, margin: int = 2) -> bool:
    """Whether the box (x, y, w, h) meets one of ``boxes`` (pixel boxes), within ``margin`` px."""
    return any(
        x <= bx + bw + margin and bx <= x + w + margin and y <= by + bh + margin and by <= y + h + margin
        for bx, by, bw, bh in boxes
    )


def to_luma(frame: npt.NDArray[Any], width: int) -> U8:
    """Shrink first, convert after. Reading a whole 720p frame from memory is most of the
    detector's cost, so a large reduction (4x and more, e.g. 1280 -> 320) samples pixels
    (nearest) and lets the blur that follows average them; smaller ones interpolate."""
    h, w = frame.shape[:2]
    height = max(8, round(h * width / w))
    if (w, h) != (width, height):
        how = cv2.INTER_NEAREST if w >= 3.5 * width else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (width, height), interpolation=how)
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    out: U8 = cv2.GaussianBlur(frame, (5, 5), 0)
    return out


class MotionDetector:
    """Feed frames in order with :meth:`detect`; one detector per camera stream.

    ``fps`` is the rate frames are fed at (the detect rate), so that time constants given in
    seconds mean the same at 5 fps on a board and at 25 fps in the benchmark.
    """

    GRID = (8, 6)  # cells of the light-compensation gain field (x, y)
    # The background model's warp: bicubic blurs it less than bilinear on every compensated
    # frame, so it can learn the frame more slowly (MOVED_LEARN 0.25, was 0.5 with bilinear),
    # which keeps small moving objects out of it while the camera shakes.
    WARP = cv2.INTER_CUBIC
    MOVED_LEARN = 0.25  # background learning rate on a frame whose camera motion was compensated
    MOVED_FG = 0.1  # relative learning under moving pixels then (edges left by the warp vs objects)
    MISALIGN_PX = 0.5  # error allowed for in a compensated frame's alignment (px at detect size)
    MISALIGN_REF_PX = 4.0  # shifts longer than this (px) are allowed proportionally more error
    FLAT_GREY = 3.0  # slack below this (grey levels) is dropped: flat road cannot look misaligned
    AFTER_MOVE_S = 0.5  # after a compensated move: edge slack and fast learning this long
    ROLL_PX = 4.0  # largest roll compensated (px at the corners, ~1 degree at 320 px)
    CONFIRM_FRAMES = 2  # consecutive frames of too large a camera motion that enter the moving state
    UNREFINED_STILL = 0.5  # phase correlation under this share of still_px: still, not refined
    MIN_RESPONSE = 0.1  # weakest half's phase-correlation peak trusted as the camera's motion
    STRONG = 2.0  # change this many times the threshold is "solid": kept out of the gain field
    SPREAD_GRID = (4, 4)  # cells (x, y) the camera check's trigger looks at the change's spread in
    SPREAD_SHARE = 0.005  # a cell counts as changed above this share of its pixels
    SPREAD_CELLS = 0.5  # the check needs at least this share of the cells changed (8 of 16)

    def __init__(
        self,
        settings: MotionSettings | None = None,
        *,
        fps: float = 5.0,
        ignore_mask: U8 | None = None,
    ) -> None:
        self.s = settings or MotionSettings()
        self.fps = fps
        self._ignore_src = ignore_mask
        self._bg: F32 | None = None
        self._dev: F32 | None = None
        self._keep: U8 | None = None  # 1 where motion counts (not masked), detector-sized
        self._shape: tuple[int, int] | None = None
        self._settle = 0
        self._recent: deque[bool] = deque(maxlen=self.s.start_window)
        self._quiet = 0
        self._active = False
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        k = self.s.spread | 1
        self._spread_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        self._prev_fg: U8 | None = None
        self._boxes: list[Box] = []  # blobs counted in the last frame (px)
        self._prev_obj: U8 | None = None  # the previous frame's blobs (kept out of the gain field)
        self._learnt = 0  # frames learnt since the background was (re)started
        self._level = 0.0  # median frame/background brightness ratio of the previous frame
        self.frames = 0
        self.shifts = 0  # camera movements compensated
        self.moves = 0  # times the camera was seen moving (state entered)
        self._estimator = MotionEstimator()
        self._moving = False
        self._misalign = self.MISALIGN_PX  # alignment error allowed for after the last move (px)
        self._suspect = 0  # consecutive frames whose camera motion was too large to compensate
        self._after_move = 0  # frames left of the catching-up after a compensated move
        self._still = 0  # consecutive still frames while moving
        self.last_motion: GlobalMotion | None = None  # the last camera motion estimated

    # -- rates -----------------------------------------------------------------------------

    def _alpha(self, seconds: float) -> float:
        return float(min(1.0, 1.0 / max(1.0, seconds * self.fps)))

    def set_fps(self, fps: float) -> None:
        self.fps = max(0.1, fps)

    # -- state -----------------------------------------------------------------------------

    @property
    def camera_moving(self) -> bool:
        return self._moving

    @property
    def ready(self) -> bool:
        """Whether motion can be reported (not learning, not moving)."""
        return self._bg is not None and not self._moving and self._settle <= 0

    def reset(self) -> None:
        """Forget the background (e.g. after a reconnect: the camera may have moved)."""
        self._moving = False
        self._still = 0
        self._bg = None
        self._dev = None
        self._recent.clear()
        self._quiet = 0
        self._active = False
        self._boxes = []

    def _start(self, luma: U8) -> None:
        h, w = luma.shape
        self._shape = (h, w)
        self._bg = luma.astype(np.float32)
        self._learnt = 0
        self._prev_fg = None
        self._dev = np.full((h, w), self.s.min_threshold / self.s.sensitivity, np.float32)
        self._settle = max(1, round(max(self.s.settle_s, self.s.warmup_s) * self.fps))
        if self._ignore_src is not None and self._keep is None:
            self._keep = self._fit(self._ignore_src, w, h)

    def set_ignore_mask(self, mask: U8 | None) -> None:
        """``mask``: any size, non-zero where motion counts. Applied from the next frame."""
        self._ignore_src = mask
        self._keep = None
        if mask is not None and self._shape is not None:
            h, w = self._shape
            self._keep = self._fit(mask, w, h)

    @staticmethod
    def _fit(mask: U8, w: int, h: int) -> U8:
        """The mask at detector size, 255 where motion counts."""
        fitted: U8 = (cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0).astype(np.uint8) * 255
        return fitted

    # -- the work --------------------------------------------------------------------------

    def _gain(self, cur: F32, bg: F32) -> tuple[F32, float]:
        """Per-cell brightness ratio frame/background, smoothed back to full detector size,
        and its median (the frame's overall brightness against the background).

        Cells are compared on the pixels that did not change strongly in the previous frame: a large
        dark object would otherwise pull its cell's ratio down and the compensation would
        paint a bright halo around it (and partly erase it)."""
        gw, gh = self.GRID
        h, w = cur.shape
        prev = self._prev_obj
        if prev is None or prev.shape != cur.shape:
            c = cv2.resize(cur, (gw, gh), interpolation=cv2.INTER_AREA)
            b = cv2.resize(bg, (gw, gh), interpolation=cv2.INTER_AREA)
            ratio = (c + 4.0) / (b + 4.0)
        else:
            still = (prev == 0).astype(np.float32)
            n = cv2.resize(still, (gw, gh), interpolation=cv2.INTER_AREA)
            c = cv2.resize(cur * still, (gw, gh), interpolation=cv2.INTER_AREA)
            b = cv2.resize(bg * still, (gw, gh), interpolation=cv2.INTER_AREA)
            ratio = (c + 4.0 * n) / (b + 4.0 * n + 1e-6)
            few = n < 0.25  # mostly moving cell: trust the frame's overall ratio instead
            if few.any():
                ratio[few] = float(np.median(ratio[~few])) if (~few).any() else 1.0
        g: F32 = cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR)
        return g, float(np.median(ratio))

    def detect(self, frame: npt.NDArray[Any]) -> MotionResult:
        """One frame (BGR or grey, any size). Costs ~1 ms for 1280x720 input (see the bench)."""
        self.frames += 1
        luma = to_luma(frame, self.s.detect_width)
        if self._bg is None or self._dev is None or luma.shape != self._shape:
            self._start(luma)
            return MotionResult(False, False, 0.0, recalibrated=True)
        bg, dev, s = self._bg, self._dev, self.s
        last_boxes, self._boxes = self._boxes, []
        cur = luma.astype(np.float32)
        if self._moving:
            return self._follow(cur)
        gain, level = self._gain(cur, bg)
        step = abs(np.log(level / self._level)) if self._level > 0 else 0.0
        self._level = level
        comp = cv2.divide(cur, gain)
        diff = cv2.absdiff(comp, bg)
        spread = dev if s.spread <= 1 else cv2.dilate(dev, self._spread_kernel)
        thr = np.maximum(spread * np.float32(s.sensitivity), np.float32(s.min_threshold))
        if self._after_move > 0:  # the model is still catching up with a compensated move
            self._after_move -= 1
            thr = thr + self._slack(bg)
        fg_now = cv2.compare(diff, thr, cv2.CMP_GT)  # 255 where changed
        # Strong change (a solid object, masked or not) is kept out of the next gain field;
        # the faint edge of a drifting cloud is not, so the gain goes on absorbing it.
        self._prev_obj = cv2.compare(diff, thr * np.float32(self.STRONG), cv2.CMP_GT)
        fg = cv2.bitwise_and(fg_now, self._prev_fg) if s.persist and self._prev_fg is not None else fg_now
        self._prev_fg = fg_now
        if self._keep is not None:
            fg = cv2.bitwise_and(fg, self._keep)
            fg_now = cv2.bitwise_and(fg_now, self._keep)
        total = float(fg.size)
        changed = cv2.countNonZero(fg) / total
        # The camera check looks at this frame's change alone: the first frame of a shake has no
        # persistent change yet, and the model must be moved before it teaches anything.
        moved = False
        suspect, self._suspect = self._suspect, 0
        much = cv2.countNonZero(fg_now) >= s.shake_check * total
        if s.camera_motion and (self._after_move > 0 or (much and self._spread(fg_now))):
            camera = self._camera(comp, bg)
            if camera is not None:
                if not self._compensable(camera):
                    # One frame's large estimate is not yet a move: a shaking camera gives a
                    # wrong one now and then (the highway clip under shake: a 9 px "shift", a
                    # 4 px "roll"), and entering the moving state for it cost ~60 frames of
                    # reports each time. Hold this frame (no report, nothing learnt), look again.
                    self._suspect = suspect + 1
                    if self._suspect >= self.CONFIRM_FRAMES:
                        return self._enter_moving(cur, camera)
                    self._after_move = max(self._after_move, 1)
                    self._boxes = last_boxes
                    return self._finish(False, 0.0, [], 0.0)
                # The camera moved a little, the scene did not: move the model with it, look again.
                moved = True
                # A long shift (a pan near shake_px) is registered less well than a shake's.
                self._misalign = self.MISALIGN_PX * max(1.0, camera.shift / self.MISALIGN_REF_PX)
                bg, dev = self._move(camera, comp)
                gain, _ = self._gain(cur, bg)  # the light field too was measured on the misaligned model
                comp = cv2.divide(cur, gain)
                diff = cv2.absdiff(comp, bg)
                thr = np.maximum(dev * np.float32(s.sensitivity), np.float32(s.min_threshold))
                thr = thr + self._slack(bg)
                self._after_move = max(1, round(self.AFTER_MOVE_S * self.fps))
                fg_now = cv2.compare(diff, thr, cv2.CMP_GT)
                self._prev_obj = cv2.compare(diff, thr * np.float32(self.STRONG), cv2.CMP_GT)
                fg = cv2.bitwise_and(fg_now, self._prev_fg) if self._prev_fg is not None else fg_now
                self._prev_fg = fg_now
                if self._keep is not None:
                    fg = cv2.bitwise_and(fg, self._keep)
                    fg_now = cv2.bitwise_and(fg_now, self._keep)
                changed = cv2.countNonZero(fg) / total
                if changed >= s.global_change:  # the model did not fit: the camera is moving
                    return self._enter_moving(cur, camera)

        if changed >= s.global_change or step >= np.log1p(s.sudden_gain):
            # Whole-frame change: not an event. Start over from this frame.
            self._bg = cur
            self._level = 1.0
            self._learnt = 0
            self._prev_fg = None
            self._prev_obj = None
            self._dev = np.maximum(dev, np.float32(s.min_threshold / s.sensitivity))
            self._settle = max(1, round(s.settle_s * self.fps))
            self._recent.clear()
            return self._finish(False, 0.0, [], 0.0, recalibrated=True, mask=fg)

        # Learn: background everywhere but slower under foreground (a parked car is absorbed
        # in time), deviation only where quiet (a passing object does not teach "this is noisy").
        self._learnt += 1
        a_bg = max(self._alpha(s.background_s), 1.0 / (self._learnt + 1))  # warm-up: plain average
        if moved:
            # Each warp of the model blurs it a little (interpolation); during a slow pan those
            # add up into edges that look like change. Learning the frame fast keeps it sharp.
            # Only on a frame that was warped onto: learning fast from a frame left misaligned
            # (its motion too small or not explained) blends two poses into a model no single
            # warp fits, and the next frames of a shake then go uncompensated too (measured on
            # the highway clip under shake: 343 of 1625 frames compensated, 781 without it).
            a_bg = max(a_bg, self.MOVED_LEARN)
        quiet = cv2.bitwise_not(fg)
        cv2.accumulateWeighted(comp, bg, a_bg, mask=quiet)
        if (
            moved or self._after_move > 0
        ):  # an edge the warp left misaligned must not linger as a blob once the camera stops
            cv2.accumulateWeighted(comp, bg, a_bg * self.MOVED_FG, mask=fg)
        elif s.fg_learn > 0:
            cv2.accumulateWeighted(comp, bg, a_bg * s.fg_learn, mask=fg)
        a_dev = self._alpha(s.deviation_s)
        if self._settle > 0:
            # Still learning the scene: every pixel teaches its deviation, capped so that a car
            # driving through the warm-up does not teach "this road is noisy".
            capped = np.minimum(diff, np.float32(3 * s.min_threshold))
            cv2.accumulateWeighted(capped, dev, max(a_dev, 1.0 / (self._learnt + 1)))
            self._settle -= 1
            return self._finish(False, 0.0, [], 0.0, mask=fg)
        cv2.accumulateWeighted(diff, dev, a_dev, mask=quiet)

        # Blobs are this frame's change, whole (a walker at 7 fps barely overlaps himself from one
        # frame to the next: requiring every pixel to persist would leave little of him).
        # Persistence decides whether motion starts: a blob needs a core of core x min_area
        # that also changed in the previous frame (ripples and leaves flicker in place and have
        # none that size). While motion is on, blobs of min_area go on with it (hysteresis).
        clean = cv2.morphologyEx(fg_now, cv2.MORPH_OPEN, self._kernel)
        if cv2.countNonZero(clean) < s.min_area * total * 0.25:  # nothing that could make a blob
            return self._finish(False, 0.0, [], 0.0, mask=clean)
        min_px = s.min_area * total
        need_core = 0.0 if self._active or not s.persist else s.core * min_px
        core = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel) if need_core > 0 else None
        clean = cv2.dilate(clean, self._kernel, iterations=2)
        # Outer contours, not connected-component labelling: ~10x cheaper on a sparse mask.
        contours, _ = cv2.findContours(clean, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = clean.shape
        blobs: list[Blob] = []
        covered = 0.0
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            at_edge = x == 0 or y == 0 or x + bw >= w or y + bh >= h
            need = min_px * s.edge_area if at_edge and not _touches(last_boxes, x, y, bw, bh) else min_px
            if bw * bh < need:  # the box bounds the pixel count: too small either way
                continue
            px = cv2.countNonZero(clean[y : y + bh, x : x + bw])
            if px < need:
                continue
            if core is not None:
                held = cv2.countNonZero(core[y : y + bh, x : x + bw])
                if held < need_core:
                    continue  # no persistent core worth the name: flicker
            self._boxes.append((x, y, bw, bh))
            covered += px
            blobs.append(Blob(x / w, y / h, bw / w, bh / h, px / total))
        score = 0.0
        if blobs:
            # How far above threshold the moving pixels are: 0.5 at the threshold, 1.0 at 2.5x.
            over = cv2.mean(diff, mask=clean)[0] / max(1e-3, cv2.mean(thr, mask=clean)[0])
            score = float(min(1.0, max(0.0, (over - 1.0) / 3.0 + 0.5)))
        return self._finish(bool(blobs), covered / total, blobs, score, mask=clean)

    def _spread(self, fg: U8) -> bool:
        """Whether the change is spread over the image (at least ``SPREAD_CELLS`` of a coarse grid's
        cells have ``SPREAD_SHARE`` of their pixels changed), as a camera's motion makes it: it moves
        every edge. Traffic is local: a fixed camera on a dense highway passes the 2 %-changed rule
        on most frames, and the estimate (~1.4 ms CPU per 720p frame) then ran for nothing.

        Half the cells, not most: a slow zoom (0.5 %/frame) first changes the outer cells only, and
        waiting for 10 or 13 of 16 let its edges through as motion (PETS zoom 0.5 %: 5 frames at
        10, highway zoom 0.5 %: 17 at 13, none at 8)."""
        cells = cv2.resize(fg, self.SPREAD_GRID, interpolation=cv2.INTER_AREA)
        n = int(np.count_nonzero(cells > 255.0 * self.SPREAD_SHARE))
        return n >= self.SPREAD_CELLS * cells.size

    def _camera(self, cur: F32, bg: F32) -> GlobalMotion | None:
        """The camera's motion between background and frame, or None when there is none worth
        acting on (too small, or not explaining the change: a real change of the scene).

        Every decision is taken on the refined estimate: phase correlation alone is 0.5-1.5 px
        off (and under-reads zoom), enough for a 2 px shake over dense traffic to fail the
        ``explains`` test and go uncompensated, and for the model to be warped to the wrong place."""
        gm = self._estimator.estimate(bg, cur)
        self.last_motion = gm
        h, w = cur.shape
        if gm.response < self.MIN_RESPONSE or gm.size(w, h) < self.s.still_px * self.UNREFINED_STILL:
            # A weak peak, or one at (almost) no motion: the refinement (the check's main cost)
            # is not worth running. A static camera over dense traffic takes this exit.
            return None
        # One step first: on a static camera it already shows the motion is nothing (the four
        # halves' zoom and roll are noisy, the step removes that), and the other steps are saved.
        gm = self.last_motion = self._estimator.refine_small(gm, 1)
        if gm.size(w, h) < self.s.still_px * self.UNREFINED_STILL:
            return None
        gm = self.last_motion = self._estimator.refine_small(gm, 3)
        if gm.size(w, h) < self.s.still_px:
            return None
        if not explains(bg, cur, gm):
            return None
        return gm

    def _slack(self, bg: F32) -> F32:
        """The model is only as aligned as the estimate (~0.1-0.3 px) and each warp blurs it: a
        strong edge (a painted line) then differs by its gradient times that error. Allow for it,
        but only at edges: where the allowance would be under ``FLAT_GREY`` (half the noise floor)
        a misalignment cannot show, and raising the threshold there only hid small far cars on
        the highway clip under shake (one run: recall 0.93 with it, 0.98 without)."""
        gx = cv2.Sobel(bg, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(bg, cv2.CV_32F, 0, 1, ksize=3)
        out: F32 = cv2.magnitude(gx, gy) * np.float32(self._misalign / 8.0)
        out[out < np.float32(self.FLAT_GREY)] = 0
        return out

    def _compensable(self, gm: GlobalMotion) -> bool:
        """Small enough to warp the model onto the frame: a shift of up to ``shake_px``, a zoom of
        up to ``zoom_px`` at the corners, the roll of a shaking pole (PTZ domes do not roll)."""
        h, w = self._shape or (0, 0)
        return (
            gm.shift <= self.s.shake_px
            and gm.zoom_px(w, h) <= self.s.zoom_px
            and gm.roll_px(w, h) <= self.ROLL_PX
        )

    def _move(self, gm: GlobalMotion, cur: F32) -> tuple[F32, F32]:
        """Warp the background model onto the frame; the strip newly in view is taken from the
        frame itself (a replicated border would show as an object at the edge)."""
        assert self._bg is not None and self._dev is not None
        h, w = self._bg.shape
        m = gm.matrix(w, h)
        seen = cv2.warpAffine(np.ones((h, w), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
        new = cv2.erode(seen, self._kernel, iterations=2) == 0  # interpolation smears the border too
        self._bg = cv2.warpAffine(self._bg, m, (w, h), flags=self.WARP, borderMode=cv2.BORDER_REPLICATE)
        self._dev = cv2.warpAffine(self._dev, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        self._bg[new] = cur[new]
        if self._prev_fg is not None:
            self._prev_fg = cv2.warpAffine(self._prev_fg, m, (w, h), flags=cv2.INTER_NEAREST)
        self.shifts += 1
        return self._bg, self._dev

    def _enter_moving(self, cur: F32, gm: GlobalMotion | None) -> MotionResult:
        """The camera moves more than can be compensated: report nothing until it settles."""
        self._moving = True
        self._still = 0
        self.moves += 1
        self._bg = cur
        self._active = False
        self._recent.clear()
        self._boxes = []
        self.last_motion = gm
        return self._finish(False, 0.0, [], 0.0, camera_moving=True)

    def _follow(self, cur: F32) -> MotionResult:
        """While the camera moves: the background is just the last frame; once the camera has been
        still for ``moving_settle_s``, the background is re-learnt from scratch over ``relearn_s``."""
        assert self._bg is not None and self._dev is not None
        s = self.s
        prev, self._bg = self._bg, cur
        h, w = cur.shape
        gm = self._estimator.estimate(prev, cur)
        self.last_motion = gm
        changed = int(np.count_nonzero(cv2.absdiff(cur, prev) > 3 * s.min_threshold))
        # "Still" here means: nothing left that cannot be compensated (a pole shaking in the wind
        # goes on shaking; a pan slow enough is followed by the model).
        still = (
            changed < 0.01 * cur.size
            or (gm.response >= 0.1 and (gm.size(w, h) < s.still_px or self._compensable(gm)))
            or not explains(prev, cur, gm)
        )
        self._still = self._still + 1 if still else 0
        if self._still < max(1, round(s.moving_settle_s * self.fps)):
            return self._finish(False, 0.0, [], 0.0, camera_moving=True)
        self._moving = False
        self._level = 0.0
        self._learnt = 0
        self._prev_fg = None
        self._prev_obj = None
        self._dev = np.maximum(self._dev, np.float32(s.min_threshold / s.sensitivity))
        self._settle = max(1, round(s.relearn_s * self.fps))
        return self._finish(False, 0.0, [], 0.0, recalibrated=True)

    def _finish(
        self,
        raw: bool,
        area: float,
        blobs: Sequence[Blob],
        score: float,
        *,
        recalibrated: bool = False,
        mask: U8 | None = None,
        camera_moving: bool = False,
    ) -> MotionResult:
        self._recent.append(raw)
        onset = 0
        if raw:
            self._quiet = 0
            if not self._active and sum(self._recent) >= self.s.start_frames:
                self._active = True
                onset = len(self._recent) - 1 - list(self._recent).index(True)
        elif self._active:
            self._quiet += 1
            if self._quiet > self.s.hold_frames:
                self._active = False
        return MotionResult(
            self._active,
            raw,
            area,
            list(blobs),
            score,
            recalibrated=recalibrated,
            mask=mask,
            onset=onset,
            camera_moving=camera_moving,
        )
