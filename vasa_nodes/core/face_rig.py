"""The face rig: ARKit blendshapes, head pose and gaze as deformations of the portrait's mesh.

Built once per portrait from its 478 landmarks. Each blendshape is a displacement field
over the mesh vertices, defined in the head's own frame (x along the eye line towards
the subject's left, y down the face, unit = face height), so an expression means the
same on every face and at every head pose. Head pose is a 3D rotation of the deformed
landmarks about a pivot inside the head; the surroundings (hair, neck, background) are
carried by two rings of vertices that follow the head partially, and the frame border
stays put.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from .blendshapes import INDEX, NUM_BLENDSHAPES
from .motion import MotionFrame

# MediaPipe face-mesh landmark indices (subject's left = image right on a frontal face).
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
MOUTH_CORNERS = {"right": (61, 78), "left": (291, 308)}
EYES = {
    # upper lid (corner to corner, without corners), lower lid, corners (outer, inner), iris centre
    "right": ([246, 161, 160, 159, 158, 157, 173], [7, 163, 144, 145, 153, 154, 155], (33, 133), 468),
    "left": ([466, 388, 387, 386, 385, 384, 398], [249, 390, 373, 374, 380, 381, 382], (263, 362), 473),
}
BROWS = {"right": [46, 53, 52, 65, 55, 70, 63, 105, 66, 107], "left": [276, 283, 282, 295, 285, 300, 293, 334, 296, 336]}
IRIS_RING = [469, 470, 471, 472, 474, 475, 476, 477]  # not mesh vertices: the iris moves as a whole
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
NOSE_WINGS = {"right": 129, "left": 358}
CHEEKS = {"right": 205, "left": 425}

# MediaPipe's z is flatter than the real face: with it as is, a commanded 20° yaw looks
# like 15° to a face tracker. Calibrated so the tracker recovers commanded rotations.
DEPTH_SCALE = 1.3

# Inner-lip loop in order (upper from right corner to left, lower back): the mouth opening.
MOUTH_LOOP = LIPS_INNER_UPPER + LIPS_INNER_LOWER[-2:0:-1]
MOUTH_LOOP_CORNERS = (0, len(LIPS_INNER_UPPER) - 1)  # positions of 78 and 308 in MOUTH_LOOP


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation in image coordinates (x right, y down, z away from the camera), FaceMotion's
    convention: + yaw turns the face to its own left, + pitch looks up, + roll tilts the top of
    the head to its own left. Applied as pitch, then yaw, then roll."""
    cy, sy, cp, sp, cr, sr = (np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(d2: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-d2 / (radius * radius))


def _even_outline_depth(lm: np.ndarray, face_h: float) -> np.ndarray:
    """Landmark depths with the face's outline region smoothed over image neighbours.

    Where the face turns away from the camera (the sides of the cheeks and jaw), landmarks
    lie almost on top of each other in the picture but far apart in depth. Turning that side
    towards the camera spreads them apart again, in an order the picture need not have:
    triangles fold over and the sliver of hair and background at the outline is stretched
    into spikes across the cheek. Near the outline, points close in the image therefore
    take (nearly) the same depth; the face's inner relief is kept."""
    xy, z = lm[:468, :2], lm[:468, 2]
    w = _gauss(((xy[:, None] - xy[None]) ** 2).sum(-1), 0.04 * face_h)
    smooth = (w @ z) / w.sum(axis=1)
    to_outline = np.sqrt(((xy[:, None] - lm[FACE_OVAL, :2][None]) ** 2).sum(-1)).min(axis=1)
    near = 1.0 - _smoothstep(0.05 * face_h, 0.15 * face_h, to_outline)
    out = lm[:, 2].copy()
    out[:468] = z + near * (smooth - z)
    return out


@dataclass(frozen=True)
class PosedMesh:
    """A deformed, posed mesh ready to draw (pixel coordinates of the output image)."""

    positions: np.ndarray    # (V, 2) float32
    depth: np.ndarray        # (V,) float32, pixels from the head's pivot along the view axis; smaller = nearer
    uv: np.ndarray           # (V, 2) float32, texture coordinates (portrait pixels)
    mouth_loop: np.ndarray   # (L, 2) float32, the inner-lip loop in order
    mouth_upper: np.ndarray  # (L,) bool, True for upper-lip vertices of the loop


@dataclass(frozen=True)
class _EdgeLines:
    """Index layout of the anti-aliasing fins (see FaceRig.edge_fins)."""

    ids: np.ndarray        # (E,) mesh vertices of all edges, edge after edge
    next: np.ndarray       # (E,) position in `ids` of each vertex's neighbours along its edge
    prev: np.ndarray
    outwards: np.ndarray   # (E, 2) fixed outward direction (lip rows); the outline's is computed
    on_oval: np.ndarray    # (E,) bool
    order: np.ndarray      # (2E,) [inner, outer] rows -> per edge: inner vertices, then outer twins
    uv: np.ndarray         # (2E, 2) texture coordinates of the fin vertices, in that order
    lengths: list
    closed: list


class FaceRig:
    """Deforms one portrait's mesh by a MotionFrame. All heavy set-up happens in __init__."""

    def __init__(self, landmarks: np.ndarray, size: int, own_yaw_roll: tuple[float, float] = (0.0, 0.0)):
        """`own_yaw_roll`: the face's own turn and tilt in the portrait (radians), see Portrait.yaw_roll."""
        lm = np.asarray(landmarks, np.float64)
        if lm.shape != (478, 3):
            raise ValueError(f"expected (478, 3) landmarks, got {lm.shape}")
        lm = lm.copy()
        lm[:, 2] *= DEPTH_SCALE
        self.face_h = float(np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2]))  # the unit of the head frame
        lm[:, 2] = _even_outline_depth(lm, self.face_h)
        self.size = size
        self._lm = lm
        self._own = rotation_matrix(own_yaw_roll[0], 0.0, own_yaw_roll[1])

        # Head frame in the image: the eye line.
        eye_r = lm[[33, 133, 159, 145]].mean(0)
        eye_l = lm[[263, 362, 386, 374]].mean(0)
        ex = (eye_l - eye_r)[:2]
        self.ex = ex / np.linalg.norm(ex)
        self.ey = np.array([-self.ex[1], self.ex[0]])
        self.origin = ((eye_r + eye_l) / 2)[:2]
        self.centre3 = lm[:468].mean(0)
        self.pivot = self.centre3 + np.array([0.0, 0.0, 0.55 * self.face_h])  # inside the head

        face_ids = np.array([i for i in range(478) if i not in IRIS_RING])
        rings, ring_weights = self._surrounding_rings(lm)
        border = self._border_points(size)
        self.face_ids = face_ids
        self.n_face = len(face_ids)
        rest2 = np.concatenate([lm[face_ids, :2], rings, border])
        self.rest = rest2.astype(np.float32)  # also the texture coordinates (pixels)
        # Surrounding vertices take the depth of the nearest face-outline point, so they turn
        # with the outline beside them (a turned portrait has a near and a far side).
        oval = lm[FACE_OVAL]
        nearest = np.argmin(((rings[:, None, :] - oval[None, :, :2]) ** 2).sum(-1), axis=1)
        border_z = np.full(len(border), float(oval[:, 2].mean()))
        self.rest_z = np.concatenate([lm[face_ids, 2], oval[nearest, 2], border_z])
        self.follow = np.concatenate([np.ones(self.n_face), ring_weights, np.zeros(len(border))])
        self._vertex_of = {int(lmi): k for k, lmi in enumerate(face_ids)}
        self.mouth_loop_v = np.array([self._vertex_of[i] for i in MOUTH_LOOP])
        self.fields = self._build_fields()  # (52, V, 2) pixels per unit activation
        face_triangles, self.eye_triangles = self._split_eye_openings(self._triangulate())
        self.triangles = np.concatenate([face_triangles, self._split_mouth_interior()])
        self.eyes = self._eye_geometry(lm)
        upper_lip = set(LIPS_INNER_UPPER[1:-1])
        self.mouth_upper = np.array([i in upper_lip for i in MOUTH_LOOP])
        self.eye_width = float(np.linalg.norm(lm[33, :2] - lm[133, :2]))
        self._close_portrait_mouth()
        self._edges = self._edge_lines()

    # -- set-up ---------------------------------------------------------------------

    def _head_uv(self, pts2: np.ndarray) -> np.ndarray:
        """Image points -> head-frame (u, v) in face heights."""
        d = pts2 - self.origin
        return np.stack([d @ self.ex, d @ self.ey], axis=-1) / self.face_h

    def _to_image(self, duv: np.ndarray) -> np.ndarray:
        """Head-frame displacements (face heights) -> image pixels."""
        return (duv[..., :1] * self.ex + duv[..., 1:] * self.ey) * self.face_h

    def _surrounding_rings(self, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices around the face that carry hair, ears and neck with the head."""
        oval = lm[FACE_OVAL, :2]
        c = oval.mean(0)
        pts, weights = [], []
        for scale, weight in ((1.25, 0.85), (1.6, 0.5), (2.1, 0.2)):
            ring = c + (oval - c) * scale
            pts.append(ring[::2] if scale > 1.5 else ring)
            weights.append(np.full(len(pts[-1]), weight))
        pts, weights = np.concatenate(pts), np.concatenate(weights)
        margin = 0.02 * self.size
        inside = np.all((pts > margin) & (pts < self.size - margin), axis=1)
        return pts[inside], weights[inside]

    @staticmethod
    def _border_points(size: int) -> np.ndarray:
        n = 8
        t = np.linspace(0, size, n + 1)
        top = np.stack([t, np.zeros_like(t)], 1)
        bottom = np.stack([t, np.full_like(t, size)], 1)
        left = np.stack([np.zeros(n - 1), t[1:-1]], 1)
        right = np.stack([np.full(n - 1, size), t[1:-1]], 1)
        return np.concatenate([top, bottom, left, right])

    def _triangulate(self) -> np.ndarray:
        tri = Delaunay(self.rest.astype(np.float64)).simplices
        # Drop the triangles that fill the mouth opening: find them with the jaw open,
        # where the opening is unambiguous. The cavity is drawn there instead.
        opened = self.rest + self.fields[INDEX["jawOpen"]]
        loop = opened[self.mouth_loop_v]
        centroids = opened[tri].mean(axis=1)
        from matplotlib.path import Path as PolyPath  # noqa: PLC0415 - set-up only

        on_loop = np.isin(tri, self.mouth_loop_v).all(axis=1)
        in_mouth = on_loop & PolyPath(loop).contains_points(centroids)
        return tri[~in_mouth].astype(np.int32)

    def _close_portrait_mouth(self) -> None:
        """Estimate how open the portrait's mouth is, and make the zero-motion geometry closed.

        `own_jaw_open` is the portrait's own jawOpen. `base` (vertex positions for an all-zero
        motion) is the photo's geometry with that opening undone, so every portrait rests
        with closed lips and a commanded jawOpen means the same on all of them. The photo's
        own mouth interior (teeth, if it shows any) grows back between the lips as the jaw
        reaches the portrait's opening; rendering `own_expression()` reproduces the photo.
        """
        jaw = self.fields[INDEX["jawOpen"]]
        top, bottom = self._vertex_of[13], self._vertex_of[14]
        gap = float((self.rest[bottom] - self.rest[top]) @ self.ey)
        rate = float((jaw[bottom] - jaw[top]) @ self.ey)
        closed_gap = 0.008 * self.face_h  # lips touching still leave a landmark gap this wide
        self.own_jaw_open = float(np.clip((gap - closed_gap) / max(rate, 1e-6), 0.0, 1.0))
        self.base = self.rest - self.own_jaw_open * jaw
        upper_row, lower_row = self.mouth_gap_rows
        mids = np.concatenate([upper_row[1:-1], lower_row[1:-1]])
        lips = np.array([self._vertex_of[i] for i in LIPS_INNER_UPPER[1:-1] + LIPS_INNER_LOWER[1:-1]])
        self._mid_ids, self._mid_lips = mids, lips
        half = len(lips) // 2
        self._mid_partner = np.concatenate([lips[half:], lips[:half]])  # the facing lip vertex
        vid = self._vertex_of
        corners = np.array([vid[LIPS_INNER_UPPER[0]], vid[LIPS_INNER_UPPER[-1]]])
        beside = [(LIPS_INNER_UPPER[1], LIPS_INNER_LOWER[1]), (LIPS_INNER_UPPER[-2], LIPS_INNER_LOWER[-2])]
        self._corner_uv = (corners, np.array([(self.rest[vid[a]] + self.rest[vid[b]]) / 2 for a, b in beside]))
        self._mid_offsets = self.rest[mids] - self.rest[lips]  # interior layout of the photo

    def own_expression(self) -> MotionFrame:
        """The portrait's own expression as estimated at load time (rendering it gives the photo back)."""
        return MotionFrame.neutral().with_blendshapes(jawOpen=self.own_jaw_open)

    def eye_polygon(self, side: str) -> np.ndarray:
        """The portrait's eye opening (corner, upper lid, corner, lower lid) as an ordered polygon, pixels."""
        upper, lower, (outer, inner), _ = EYES[side]
        return self._lm[[outer, *upper, inner, *lower[::-1]], :2].astype(np.float64)

    def _split_eye_openings(self, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Separate the triangles that fill the eye openings: the renderer shades them as eyeballs."""
        from matplotlib.path import Path as PolyPath  # noqa: PLC0415 - set-up only

        inside = np.zeros(len(tri), bool)
        centroids = self.rest[tri].mean(axis=1)
        for side, (upper, lower, corners, iris) in EYES.items():
            ids = [self._vertex_of[i] for i in (*upper, *lower, *corners, iris)]
            on_eye = np.isin(tri, ids).all(axis=1)
            inside |= on_eye & PolyPath(self.eye_polygon(side)).contains_points(centroids)
        return tri[~inside].astype(np.int32), tri[inside].astype(np.int32)

    def _eye_geometry(self, lm: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(iris centre (x, y), iris radius) of each eye in the portrait, pixels; right eye first."""
        out = []
        for ring, centre in (([469, 470, 471, 472], 468), ([474, 475, 476, 477], 473)):
            c = lm[centre, :2]
            r = float(np.linalg.norm(lm[ring, :2] - c, axis=1).mean())
            out.append((c.astype(np.float32), r))
        return out

    def gaze_offset(self, motion: MotionFrame) -> np.ndarray:
        """Where the irises move for this frame, pixels in portrait coordinates (both eyes alike)."""
        gaze_yaw, gaze_pitch = float(motion.gaze[0]), float(motion.gaze[1])
        b = motion.blendshapes
        # ARKit eyeLook* coefficients add to the gaze (average of both eyes).
        gaze_yaw += 0.35 * ((b[INDEX["eyeLookOutLeft"]] - b[INDEX["eyeLookInLeft"]])
                            + (b[INDEX["eyeLookInRight"]] - b[INDEX["eyeLookOutRight"]])) / 2
        gaze_pitch += 0.3 * ((b[INDEX["eyeLookUpLeft"]] - b[INDEX["eyeLookDownLeft"]])
                             + (b[INDEX["eyeLookUpRight"]] - b[INDEX["eyeLookDownRight"]])) / 2
        # The iris sits about 0.45 eye-widths in front of the eyeball's centre of rotation.
        shift = np.array([np.sin(gaze_yaw), -np.sin(gaze_pitch) * 0.7]) * 0.45 * self.eye_width
        return (shift[0] * self.ex + shift[1] * self.ey).astype(np.float32)

    def _split_mouth_interior(self) -> np.ndarray:
        """Texture the portrait's own mouth interior in two halves that part with the lips.

        Between each upper/lower inner-lip pair a midpoint vertex is added twice: one copy
        moves with the upper lip, one with the lower. At rest they coincide, so the photo's
        mouth (teeth of an open-mouthed portrait included) is reproduced; as the jaw opens
        the halves separate and the synthesised cavity shows between them. Returns the
        triangles of the two strips; extends the vertex arrays.
        """
        vid = self._vertex_of
        upper = [vid[i] for i in LIPS_INNER_UPPER]
        lower = [vid[i] for i in LIPS_INNER_LOWER]
        inner = range(1, len(upper) - 1)
        base = len(self.rest)
        mids = np.array([(self.rest[upper[k]] + self.rest[lower[k]]) / 2 for k in inner], np.float32)
        mid_z = np.array([(self.rest_z[upper[k]] + self.rest_z[lower[k]]) / 2 for k in inner])
        n = len(mids)
        self.rest = np.concatenate([self.rest, mids, mids])
        self.rest_z = np.concatenate([self.rest_z, mid_z, mid_z])
        self.follow = np.concatenate([self.follow, np.ones(2 * n)])
        src = [upper[k] for k in inner] + [lower[k] for k in inner]
        self.fields = np.concatenate([self.fields, self.fields[:, src]], axis=1)
        self.mouth_gap_rows = (np.array([upper[0], *range(base, base + n), upper[-1]]),
                               np.array([lower[0], *range(base + n, base + 2 * n), lower[-1]]))
        tris = []
        for lip, first in ((upper, base), (lower, base + n)):
            row = [lip[0]] + [first + j for j in range(n)] + [lip[-1]]
            for k in range(len(lip) - 1):
                a, b, c, d = lip[k], lip[k + 1], row[k + 1], row[k]
                tris.append((a, b, c))
                if c != d:
                    tris.append((a, c, d))
        return np.array(tris, np.int32)

    def edge_fins(self, mesh: PosedMesh, width: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anti-aliasing fins along the mesh's geometric edges (face outline, lip gap).

        Each edge vertex gets a twin `width` pixels outwards; the strip between them is drawn
        with the edge's own texture and alpha falling from 1 to 0, which smooths the edge
        where something else lies beyond it and changes nothing where the texture continues.
        Returns (positions (F, 3) with depth, texture coordinates (F, 2), alpha (F,)).
        """
        e = self._edges
        p = mesh.positions[e.ids]
        t = p[e.next] - p[e.prev]
        n = np.stack([-t[:, 1], t[:, 0]], 1) / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-6)
        outwards = e.outwards.copy()
        outwards[e.on_oval] = p[e.on_oval] - p[e.on_oval].mean(0)
        n *= np.sign((outwards * n).sum(1, keepdims=True) + 1e-9)
        d = mesh.depth[e.ids, None] - 0.5  # just in front of its own triangles
        # Lip-gap fins fade out as the lips meet: closed lips have no edge to smooth, and the
        # fin's texture (the photo's mouth interior) would draw a line between them.
        upper_row, lower_row = self.mouth_gap_rows
        gap = np.linalg.norm(mesh.positions[lower_row] - mesh.positions[upper_row], axis=1)
        alpha = np.ones(len(e.ids), np.float32)
        alpha[~e.on_oval] = np.tile(np.clip(gap / 2.0, 0.0, 1.0), 2)
        pos = np.concatenate([np.hstack([p, d]), np.hstack([p + width * n, d])])[e.order]
        alpha = np.concatenate([alpha, np.zeros_like(alpha)])[e.order]
        return pos.astype(np.float32), e.uv, alpha

    def _edge_lines(self) -> _EdgeLines:
        """The geometric edges (face outline: closed; upper and lower lip gap rows: open), laid
        out once for edge_fins: per edge its inner vertices, then their outer twins."""
        oval = np.array([self._vertex_of[i] for i in FACE_OVAL])
        upper_row, lower_row = self.mouth_gap_rows
        ids, nxt, prv, out_dirs, order = [], [], [], [], []
        total = len(oval) + len(upper_row) + len(lower_row)
        start = 0
        for line, closed, direction in ((oval, True, None), (upper_row, False, self.ey), (lower_row, False, -self.ey)):
            k = len(line)
            local = np.arange(k)
            if closed:
                nxt.append(start + (local + 1) % k)
                prv.append(start + (local - 1) % k)
            else:  # the ends take their one neighbour's direction
                nxt.append(start + np.minimum(local + 1, k - 1))
                prv.append(start + np.maximum(local - 1, 0))
            ids.append(line)
            out_dirs.append(np.zeros((k, 2)) if direction is None else np.tile(direction, (k, 1)))
            order += [start + local, total + start + local]
            start += k
        ids = np.concatenate(ids)
        on_oval = np.zeros(total, bool)
        on_oval[:len(oval)] = True
        order = np.concatenate(order)
        uv = np.concatenate([self.rest[ids], self.rest[ids]])[order].astype(np.float32)
        return _EdgeLines(ids, np.concatenate(nxt), np.concatenate(prv), np.concatenate(out_dirs), on_oval,
                          order, uv, [len(oval), len(upper_row), len(lower_row)], [True, False, False])

    def edge_fin_triangles(self) -> np.ndarray:
        """Triangle indices into the arrays `edge_fins` returns (constant per rig)."""
        tris, start = [], 0
        for k, closed in zip(self._edges.lengths, self._edges.closed):
            for i in range(k if closed else k - 1):
                j = (i + 1) % k
                a, b, c, d = start + i, start + j, start + k + j, start + k + i
                tris += [(a, b, c), (a, c, d)]
            start += 2 * k
        return np.array(tris, np.int32)

    def _build_fields(self) -> np.ndarray:
        V = len(self.rest)
        uv = np.zeros((V, 2))
        uv[: self.n_face] = self._head_uv(self.rest[: self.n_face].astype(np.float64))
        is_face = np.zeros(V, bool)
        is_face[: self.n_face] = True
        f = np.zeros((NUM_BLENDSHAPES, V, 2))  # head-frame displacements, face heights
        at = lambda i: uv[self._vertex_of[i]]  # noqa: E731
        vid = self._vertex_of

        mouth_c = (at(13) + at(14)) / 2
        mouth_w = abs(at(291)[0] - at(61)[0])
        inner_upper = {vid[i] for i in LIPS_INNER_UPPER} - {vid[78], vid[308]}
        inner_lower = {vid[i] for i in LIPS_INNER_LOWER} - {vid[78], vid[308]}
        outer_upper = {vid[i] for i in LIPS_OUTER_UPPER} - {vid[61], vid[291]}
        corners = {vid[i] for pair in MOUTH_CORNERS.values() for i in pair}

        # Jaw: rotation about the ears. Below the lip line the weight is 1, fading at the
        # sides of the face; upper lip 0, corners half.
        du = uv[:, 0] - mouth_c[0]
        below = _smoothstep(-0.02, 0.04, uv[:, 1] - mouth_c[1])
        side = 1.0 - _smoothstep(0.22, 0.45, np.abs(du))
        jaw_w = below * side * is_face
        for k in inner_upper | outer_upper:
            jaw_w[k] = 0.0
        for k in inner_lower:
            jaw_w[k] = 1.0
        for k in corners:
            jaw_w[k] = 0.45
        pivot_v = 0.0
        # Ring vertices below the chin follow the jaw a little (the neck skin stretches).
        ring_below = (~is_face) & (self.follow > 0)
        ring_uv = self._head_uv(self.rest[ring_below].astype(np.float64))
        jaw_w[ring_below] = 0.35 * (ring_uv[:, 1] > at(CHIN)[1] - 0.05) * (np.abs(ring_uv[:, 0] - mouth_c[0]) < 0.3)
        uv_all = uv.copy()
        uv_all[ring_below] = ring_uv
        theta = 0.36
        lever = np.clip(uv_all[:, 1] - pivot_v, 0.0, None)
        f[INDEX["jawOpen"], :, 1] = jaw_w * lever * np.sin(theta)
        f[INDEX["jawOpen"], :, 0] = 0.0
        f[INDEX["jawLeft"], :, 0] = -0.05 * jaw_w
        f[INDEX["jawRight"], :, 0] = 0.05 * jaw_w
        f[INDEX["jawForward"], :, 1] = 0.015 * jaw_w

        d_mouth2 = ((uv - mouth_c) ** 2).sum(1)
        # The lips' soft surroundings, but nothing above the base of the nose (landmark 2).
        below_nose = _smoothstep(at(2)[1], at(0)[1], uv[:, 1])
        mouth_region = _gauss(d_mouth2, 0.7 * mouth_w) * is_face * below_nose
        lip_w = np.zeros(V)
        for k in inner_upper | inner_lower | outer_upper | corners | {vid[i] for i in LIPS_OUTER_LOWER}:
            lip_w[k] = 1.0
        lips_soft = np.maximum(lip_w, mouth_region)
        upper_side = uv[:, 1] < mouth_c[1]
        lower_side = ~upper_side

        # Lips close over an open jaw: the lower lip and the corners rise back to the upper lip
        # (mouthClose = jawOpen seals them, as in ARKit).
        f[INDEX["mouthClose"], :, 1] = -f[INDEX["jawOpen"], :, 1] * lips_soft
        f[INDEX["mouthLowerDownLeft"], :, 1] = 0.035 * lips_soft * lower_side * (du > -0.02 * mouth_w)
        f[INDEX["mouthLowerDownRight"], :, 1] = 0.035 * lips_soft * lower_side * (du < 0.02 * mouth_w)
        f[INDEX["mouthUpperUpLeft"], :, 1] = -0.022 * lips_soft * upper_side * (du > -0.02 * mouth_w)
        f[INDEX["mouthUpperUpRight"], :, 1] = -0.022 * lips_soft * upper_side * (du < 0.02 * mouth_w)

        # Rounding: corners in, lips forward/open into an O (funnel) or pursed (pucker).
        toward = -np.sign(du) * np.clip(np.abs(du) / (0.5 * mouth_w), 0, 1.2)
        f[INDEX["mouthFunnel"], :, 0] = 0.22 * mouth_w * toward * lips_soft
        f[INDEX["mouthFunnel"], :, 1] = 0.018 * lips_soft * np.where(lower_side, 1.0, -1.0) * (1 - np.abs(toward) * 0.5)
        f[INDEX["mouthPucker"], :, 0] = 0.32 * mouth_w * toward * lips_soft
        f[INDEX["mouthPucker"], :, 1] = 0.006 * lips_soft * np.where(lower_side, -1.0, 1.0)
        f[INDEX["mouthLeft"], :, 0] = 0.04 * lips_soft
        f[INDEX["mouthRight"], :, 0] = -0.04 * lips_soft
        f[INDEX["mouthPressLeft"], :, 1] = 0.01 * lips_soft * np.where(lower_side, -1, 1) * (du > 0)
        f[INDEX["mouthPressRight"], :, 1] = 0.01 * lips_soft * np.where(lower_side, -1, 1) * (du < 0)
        f[INDEX["mouthRollLower"], :, 1] = -0.012 * lips_soft * lower_side
        f[INDEX["mouthRollUpper"], :, 1] = 0.012 * lips_soft * upper_side
        f[INDEX["mouthShrugLower"], :, 1] = -0.015 * lips_soft * lower_side
        f[INDEX["mouthShrugUpper"], :, 1] = -0.01 * lips_soft * upper_side

        for side_name, sign, smile, frown, dimple, stretch, sneer, cheek_sq in (
            ("left", 1.0, "mouthSmileLeft", "mouthFrownLeft", "mouthDimpleLeft", "mouthStretchLeft",
             "noseSneerLeft", "cheekSquintLeft"),
            ("right", -1.0, "mouthSmileRight", "mouthFrownRight", "mouthDimpleRight", "mouthStretchRight",
             "noseSneerRight", "cheekSquintRight"),
        ):
            corner = at(MOUTH_CORNERS[side_name][0])
            wc = _gauss(((uv - corner) ** 2).sum(1), 0.09) * is_face
            f[INDEX[smile]] += wc[:, None] * np.array([sign * 0.035, -0.035])
            f[INDEX[frown]] += wc[:, None] * np.array([sign * 0.005, 0.03])
            f[INDEX[dimple]] += wc[:, None] * np.array([sign * 0.02, 0.0])
            f[INDEX[stretch]] += wc[:, None] * np.array([sign * 0.035, 0.01])
            cheek = at(CHEEKS[side_name])
            wk = _gauss(((uv - cheek) ** 2).sum(1), 0.09) * is_face
            f[INDEX[smile]] += wk[:, None] * np.array([0.0, -0.012])
            f[INDEX[cheek_sq]] += wk[:, None] * np.array([0.0, -0.015])
            wing = at(NOSE_WINGS[side_name])
            wn = _gauss(((uv - wing) ** 2).sum(1), 0.05) * is_face
            f[INDEX[sneer]] += wn[:, None] * np.array([0.0, -0.018])
            f[INDEX["cheekPuff"]] += wk[:, None] * np.array([sign * 0.03, 0.0])

        self._build_eye_fields(f, uv, is_face)
        return np.stack([self._to_image(fi) for fi in f]).astype(np.float32)

    def _build_eye_fields(self, f: np.ndarray, uv: np.ndarray, is_face: np.ndarray) -> None:
        """Fill the eye and brow blendshape fields."""
        vid = self._vertex_of
        for side_name, (upper, lower, (outer, inner), iris) in EYES.items():
            suffix = "Left" if side_name == "left" else "Right"
            up = np.array([uv[vid[i]] for i in upper])
            lo = np.array([uv[vid[i]] for i in lower])
            # Lower lid height at each upper-lid point's u: where the lid closes to.
            order = np.argsort(lo[:, 0])
            ends = np.array([uv[vid[outer]], uv[vid[inner]]])
            lo_u = np.concatenate([lo[order, 0], ends[:, 0]])
            lo_v = np.concatenate([lo[order, 1], ends[:, 1]])
            o2 = np.argsort(lo_u)
            close_to = np.interp(up[:, 0], lo_u[o2], lo_v[o2])
            drop = close_to - up[:, 1]  # >0: down
            lid_h = float(np.maximum(drop, 1e-3).max())
            eye_c = (uv[vid[outer]] + uv[vid[inner]]) / 2
            half_w = abs(uv[vid[outer]][0] - uv[vid[inner]][0]) / 2

            blink = f[INDEX["eyeBlink" + suffix]]
            # The upper lid comes down most of the way and the lower lid rises to meet it.
            # It closes slightly past the lower lid so no sliver of eyeball stays visible;
            # the eyeball is drawn behind the lids (see the renderer), so the lid covers it.
            rise = 0.15 * lid_h
            for i, d in zip(upper, drop):
                blink[vid[i], 1] = d - rise + 0.06 * lid_h
            for i in lower:
                blink[vid[i], 1] = -rise
            # The lower lid keeps its own texture as it rises: taking skin from further down
            # folded the under-eye texture into vertical streaks (and the closed-lid pass
            # covers the white of the eye at its margin).
            # Lid skin above follows with decreasing weight up to the brow.
            lid_top = np.interp(uv[:, 0], up[np.argsort(up[:, 0]), 0], up[np.argsort(up[:, 0]), 1])
            above = lid_top - uv[:, 1]
            in_span = np.abs(uv[:, 0] - eye_c[0]) < 1.15 * half_w
            w = np.where((above > 1e-4) & in_span & is_face, 1.0 - _smoothstep(0.0, 2.2 * lid_h + 0.02, above), 0.0)
            d_at = np.interp(uv[:, 0], up[np.argsort(up[:, 0]), 0], drop[np.argsort(up[:, 0])])
            ids = np.where(w > 0)[0]
            blink[ids, 1] = np.maximum(blink[ids, 1], 0.6 * w[ids] * d_at[ids])
            blink[vid[iris], 1] = 0.5 * float(drop.mean())

            wide = f[INDEX["eyeWide" + suffix]]
            squint = f[INDEX["eyeSquint" + suffix]]
            for i in upper:
                wide[vid[i], 1] = -0.3 * lid_h
            for i in lower:
                squint[vid[i], 1] = -0.25 * lid_h
            wide[ids, 1] += -0.3 * lid_h * w[ids]

            brow_ids = [vid[i] for i in BROWS[side_name]]
            brow_c = uv[brow_ids].mean(0)
            wb = _gauss(((uv - brow_c) ** 2).sum(1), 0.12) * is_face * (uv[:, 1] < eye_c[1] - 0.3 * lid_h)
            inner_side = np.clip((eye_c[0] - uv[:, 0]) * np.sign(eye_c[0]) / half_w + 0.5, 0.0, 1.0)
            f[INDEX["browInnerUp"], :, 1] += -0.04 * wb * inner_side
            f[INDEX["browOuterUp" + suffix], :, 1] += -0.04 * wb * (1.0 - inner_side)
            f[INDEX["browDown" + suffix], :, 1] += 0.03 * wb
            f[INDEX["browDown" + suffix], :, 0] += -np.sign(eye_c[0]) * 0.01 * wb

    # -- per frame ------------------------------------------------------------------

    def pose(self, motion: MotionFrame) -> PosedMesh:
        """Vertex positions (pixels) for a motion frame."""
        w = np.asarray(motion.blendshapes, np.float32)
        jaw, close = INDEX["jawOpen"], INDEX["mouthClose"]
        if w[close] > w[jaw]:
            # mouthClose undoes jawOpen at the lips; beyond it the lower lip would ride over the upper.
            w = w.copy()
            w[close] = w[jaw]
        active = np.nonzero(w > 1e-4)[0]
        pts = self.base.copy()
        if len(active):
            pts += np.tensordot(w[active], self.fields[active], axes=1)
        grow = 1.0
        if self.own_jaw_open > 0:
            # The photo's mouth interior follows the lips and opens up to its own size. Below
            # that, both halves meet half-way between the lips (no gap for the cavity to show
            # through) and show only the lips' own edge texture (no squeezed line of teeth).
            # mouthClose seals the lips over an open jaw, so only the jaw it leaves counts.
            parted = w[jaw] - w[close]
            grow = float(np.clip(parted / self.own_jaw_open, 0.0, 1.0))
            lips = pts[self._mid_lips]
            partner = pts[self._mid_partner]
            pts[self._mid_ids] = lips + grow * self._mid_offsets + (1.0 - grow) * 0.5 * (partner - lips)
        pts = pts.astype(np.float64)

        # The command turns the head about its own axes: expressed in the camera frame, the
        # rotation is conjugated by the portrait's own turn and tilt.
        rotation = self._own @ rotation_matrix(*motion.head_rotation) @ self._own.T
        p3 = (np.concatenate([pts, self.rest_z[:, None]], axis=1) - self.pivot) @ rotation.T
        x, y, z = p3[:, 0], p3[:, 1], p3[:, 2]
        posed = np.stack([x, y], 1) * motion.head_scale + self.pivot[:2]
        posed += np.asarray(motion.head_translation[:2], np.float64) * self.face_h
        a = self.follow[:, None]
        out = (a * posed + (1.0 - a) * pts).astype(np.float32)
        # Depth lets the renderer hide what a turned head occludes (no fold-over stripes);
        # the fixed frame border lies far behind everything.
        depth = self.follow * z * motion.head_scale + (1.0 - self.follow) * (self.rest_z - self.pivot[2])
        depth[self.follow == 0] = 2.0 * self.size
        uv = self.rest.copy()
        if grow < 1.0:
            lip_uv = self.rest[self._mid_lips]
            uv[self._mid_ids] = lip_uv + grow * (self.rest[self._mid_ids] - lip_uv)
            # The photo's mouth corners are dark where its lips part; closed lips take their
            # corner colour from the lips next to them instead.
            corners, neighbours = self._corner_uv
            uv[corners] = self.rest[corners] + (1.0 - grow) * (neighbours - self.rest[corners])
        return PosedMesh(out, depth.astype(np.float32), uv, out[self.mouth_loop_v], self.mouth_upper)
