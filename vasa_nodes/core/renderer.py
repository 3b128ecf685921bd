"""OpenGL renderer: draws the posed face mesh textured with the portrait, over a mouth cavity.

Headless through EGL (the GPU where there is one, Mesa llvmpipe otherwise); geometric edges
are anti-aliased with alpha fins rather than multisampling (3x cheaper in software).
Per frame: the mouth interior (cavity, teeth, tongue) is drawn first, then the portrait
mesh, whose mouth-opening triangles were removed, on top.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .blendshapes import INDEX
from .face_rig import MOUTH_LOOP_CORNERS, FaceRig, PosedMesh
from .motion import MotionFrame
from .portrait import Portrait
from .watermark import DEFAULT_WATERMARK, Watermarker

log = logging.getLogger(__name__)




def _sorted_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


def _lid_closing(blink: float) -> float:
    """How much of the closed-lid texture shows at this eyeBlink: none while the eye is
    open, all once it is nearly shut."""
    t = float(np.clip((blink - 0.25) / 0.6, 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


class RendererError(RuntimeError):
    """No usable OpenGL context; the message is one line meant for the user."""


_MESH_VS = """
#version 330
uniform vec2 size;
in vec3 in_pos;             // x, y in pixels; z = depth in pixels, smaller is nearer
in vec2 in_uv;
out vec2 uv;
void main() {
    uv = in_uv / size;
    gl_Position = vec4(in_pos.xy / size * 2.0 - 1.0, clamp(in_pos.z / (4.0 * size.x), -1.0, 1.0), 1.0);
}
"""
_MESH_FS = """
#version 330
uniform sampler2D portrait;
in vec2 uv;
out vec4 color;
void main() { color = vec4(texture(portrait, uv).rgb, 1.0); }
"""
# Closing lids: the upper lid's skin in the photo is mostly folded away under the brow, so
# stretching it over the eye smears lashes and crease into streaks. While a lid closes, the
# triangles around the eyes are drawn again with their band faded into the closed-lid
# texture: smooth skin with the lash line at its margin.
_LID_FS = """
#version 330
uniform sampler2D portrait;
uniform sampler2D closed_lids;   // the portrait with its upper lids as closed skin
uniform sampler2D lid_mask;      // r: the right eye's lid band, g: the left eye's
uniform vec2 closing;            // (right, left): how far the closed-lid texture shows
in vec2 uv;
out vec4 color;
void main() {
    float w = clamp(dot(texture(lid_mask, uv).rg, closing), 0.0, 1.0);
    color = vec4(mix(texture(portrait, uv).rgb, texture(closed_lids, uv).rgb, w), 1.0);
}
"""
# Edge fins: textured like the mesh, with alpha fading outwards (see FaceRig.edge_fins).
_FIN_VS = """
#version 330
uniform vec2 size;
in vec3 in_pos;
in vec2 in_uv;
in float in_alpha;
out vec2 uv;
out float alpha;
void main() {
    uv = in_uv / size;
    alpha = in_alpha;
    gl_Position = vec4(in_pos.xy / size * 2.0 - 1.0, clamp(in_pos.z / (4.0 * size.x), -1.0, 1.0), 1.0);
}
"""
_FIN_FS = """
#version 330
uniform sampler2D portrait;
in vec2 uv;
in float alpha;
out vec4 color;
void main() { color = vec4(texture(portrait, uv).rgb, alpha); }
"""
# Eyeballs: the eye-opening triangles are shaded from portrait coordinates (uv, pixels).
# The iris disc is taken from the photo and moved by `offset`; where it leaves, the sclera
# colour fills in; where the moved disc samples what the lids hid in the photo (eye_mask
# is 0 there), the iris's mean colour is used. With offset 0 the photo is reproduced.
_EYE_FS = """
#version 330
uniform sampler2D portrait;
uniform sampler2D eye_mask;
uniform vec2 size;
uniform vec2 offset;
uniform vec3 iris[2];        // x, y, radius (pixels) of the right and left iris
uniform vec3 iris_color[2];
uniform vec3 sclera;
in vec2 uv;
out vec4 color;
void main() {
    vec2 here = uv * size;
    int e = distance(here, iris[0].xy) < distance(here, iris[1].xy) ? 0 : 1;
    vec2 c = iris[e].xy;
    float r = iris[e].z;
    vec2 src = here - offset;
    // The dark limbal ring lies a little outside the fitted iris radius: move it too.
    float rl = 1.15 * r;
    float in_src = 1.0 - smoothstep(rl - 0.75, rl + 0.75, distance(src, c));
    float in_here = 1.0 - smoothstep(rl - 0.75, rl + 0.75, distance(here, c));
    vec3 photo = texture(portrait, uv).rgb;
    float visible = texture(eye_mask, src / size).r;
    vec3 moved_iris = mix(iris_color[e], texture(portrait, src / size).rgb, visible);
    // Uncovered sclera: the photo's sclera just outside the iris along the same radius,
    // or the sclera colour where the lids hide that spot.
    vec2 out_p = c + normalize(here - c + vec2(1e-4, 0.0)) * (rl + 2.0);
    vec3 white = mix(sclera, texture(portrait, out_p / size).rgb, texture(eye_mask, out_p / size).r);
    vec3 base = mix(photo, white, clamp(in_here - in_src, 0.0, 1.0));
    color = vec4(mix(base, moved_iris, in_src * step(0.01, length(offset)) ), 1.0);
}
"""
# The cavity is a triangle fan over the inner-lip loop. Each vertex carries its distance
# (pixels) below the upper lip and above the lower lip, and its position across the mouth
# (-1 right corner .. 1 left corner); teeth and tongue are shaded from those.
_MOUTH_VS = """
#version 330
uniform vec2 size;
in vec2 in_pos;
in vec3 in_mouth;
out vec3 m;
void main() {
    m = in_mouth;
    gl_Position = vec4(in_pos / size * 2.0 - 1.0, 0.0, 1.0);
}
"""
_MOUTH_FS = """
#version 330
uniform float tooth_h;      // visible height of the upper incisors, pixels
uniform vec3 skin;          // mean lip colour of the portrait, for tone matching
uniform vec3 white;         // the portrait's sclera colour: teeth are lit like the eyes
in vec3 m;                  // (below upper lip px, above lower lip px, across -1..1)
out vec4 color;
void main() {
    float across = abs(m.z);
    float depth = 1.0 - smoothstep(0.2, 1.0, across);            // darker towards the corners
    vec3 cavity = mix(vec3(0.10, 0.03, 0.03), vec3(0.28, 0.09, 0.08), depth);
    vec3 tongue = mix(vec3(0.45, 0.17, 0.16), skin * vec3(0.9, 0.55, 0.5), 0.3) * (0.55 + 0.45 * depth);
    float tooth_w = 0.16;
    float gap = smoothstep(0.0, 0.12, abs(fract(m.z / tooth_w + 0.5) - 0.5));
    vec3 enamel = white * vec3(1.0, 0.97, 0.88) * (0.55 + 0.45 * depth) * (0.85 + 0.15 * gap);
    vec3 c = cavity;
    float tongue_h = 0.9 * tooth_h;
    c = mix(c, tongue, smoothstep(tongue_h, 0.4 * tongue_h, m.y) * step(across, 0.8));
    // Teeth follow the dental arch: full height at the front, receding towards the corners.
    float arch = 1.0 - across * across;
    // Only the front teeth catch the light; the corners of the mouth stay in shadow.
    float upper = smoothstep(tooth_h * arch, tooth_h * arch * 0.8, m.x) * smoothstep(0.72, 0.5, across);
    float lower = smoothstep(0.6 * tooth_h * arch, 0.45 * tooth_h * arch, m.y) * smoothstep(0.6, 0.4, across);
    c = mix(c, enamel, max(upper, lower * 0.85));
    color = vec4(c, 1.0);
}
"""


def create_context():
    """A headless OpenGL 3.3 context: EGL first, then the platform default."""
    import moderngl  # noqa: PLC0415

    errors = []
    for kwargs in ({"backend": "egl"}, {}):
        try:
            return moderngl.create_standalone_context(**kwargs)
        except Exception as exc:  # moderngl raises plain Exception for missing back ends
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    raise RendererError("no OpenGL context available (tried EGL and default): " + "; ".join(errors))


class FaceRenderer:
    """Renders MotionFrames of one portrait to RGB images of the portrait's size."""

    def __init__(self, portrait: Portrait, watermark: Watermarker | None = DEFAULT_WATERMARK):
        """`watermark`: the invisible mark every frame gets (core/watermark.py); None: unmarked."""
        self.portrait = portrait
        self.watermark = watermark
        self.size = portrait.size
        self.rig = FaceRig(portrait.landmarks, self.size, portrait.yaw_roll)
        self.ctx = create_context()
        ctx = self.ctx
        s = self.size
        self._tex = ctx.texture((s, s), 3, np.ascontiguousarray(portrait.image).tobytes())
        self._tex.filter = (ctx.LINEAR, ctx.LINEAR)
        self._tex.repeat_x = self._tex.repeat_y = False

        self._mesh_prog = ctx.program(vertex_shader=_MESH_VS, fragment_shader=_MESH_FS)
        self._mouth_prog = ctx.program(vertex_shader=_MOUTH_VS, fragment_shader=_MOUTH_FS)
        for prog in (self._mesh_prog, self._mouth_prog):
            prog["size"].value = (float(s), float(s))
        lips = portrait.image[self._lip_mask()].reshape(-1, 3)
        skin = lips.mean(0) / 255.0 if len(lips) else np.array([0.7, 0.45, 0.4])
        self._mouth_prog["skin"].value = tuple(float(v) for v in skin)
        mouth_w = float(np.linalg.norm(portrait.landmarks[291, :2] - portrait.landmarks[61, :2]))
        self._mouth_prog["tooth_h"].value = 0.16 * mouth_w

        n_vert = len(self.rig.rest)
        self._pos_buf = ctx.buffer(reserve=n_vert * 12, dynamic=True)
        self._uv_buf = ctx.buffer(self.rig.rest.astype("f4").tobytes(), dynamic=True)
        self._ibo = ctx.buffer(self.rig.triangles.astype("i4").tobytes())
        self._mesh_vao = ctx.vertex_array(
            self._mesh_prog, [(self._pos_buf, "3f", "in_pos"), (self._uv_buf, "2f", "in_uv")], self._ibo)
        self._setup_eyes()
        self._setup_lids()

        loop_n = len(self.rig.mouth_loop_v)
        self._mouth_buf = ctx.buffer(reserve=(loop_n + 2) * 5 * 4, dynamic=True)
        self._mouth_vao = ctx.vertex_array(self._mouth_prog, [(self._mouth_buf, "2f 3f", "in_pos", "in_mouth")])
        self._mouth_n = loop_n + 2

        # Multisampling costs 3x the frame time on a software rasteriser; geometric edges are
        # anti-aliased by fins instead, and texture detail by linear filtering.
        # RGBA: a software rasteriser reads a 4-byte format back with one copy, RGB pixel by pixel.
        self._fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((s, s), 4)],
                                    depth_attachment=ctx.depth_renderbuffer((s, s)))
        self._fin_prog = ctx.program(vertex_shader=_FIN_VS, fragment_shader=_FIN_FS)
        self._fin_prog["size"].value = (float(s), float(s))
        fin_tris = self.rig.edge_fin_triangles()
        n_fin = int(fin_tris.max()) + 1
        self._fin_buf = ctx.buffer(reserve=n_fin * 6 * 4, dynamic=True)
        self._fin_vao = ctx.vertex_array(self._fin_prog, [(self._fin_buf, "3f 2f 1f", "in_pos", "in_uv", "in_alpha")],
                                         ctx.buffer(fin_tris.astype("i4").tobytes()))
        self._frame = np.empty((s, s, 4), np.uint8)
        log.info("renderer: %s, %d vertices, %d triangles", ctx.info.get("GL_RENDERER", "?"), n_vert,
                 len(self.rig.triangles))

    def _setup_eyes(self) -> None:
        """Eyeball shading: iris discs, their colours, the sclera colour and the visible-eye mask."""
        ctx, s = self.ctx, self.size
        mask = np.zeros((s, s), np.uint8)
        for side in ("right", "left"):
            cv2.fillPoly(mask, [np.round(self.rig.eye_polygon(side) * 4).astype(np.int32)], 255, cv2.LINE_AA,
                         shift=2)
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))  # keep lid-edge pixels out of the iris
        self._eye_mask = ctx.texture((s, s), 1, mask.tobytes())
        self._eye_mask.filter = (ctx.LINEAR, ctx.LINEAR)

        image = self.portrait.image.astype(np.float32) / 255.0
        yy, xx = np.mgrid[0:s, 0:s] + 0.5
        visible = mask > 128
        in_iris = np.zeros((s, s), bool)
        colors = []
        for (c, r) in self.rig.eyes:
            disc = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 < r * r
            in_iris |= disc
            px = image[disc & visible]
            colors.append(px.mean(0) if len(px) else np.array([0.3, 0.22, 0.15]))
        white = image[visible & ~in_iris]
        if len(white):
            luma = white.mean(1)
            sclera = white[luma >= np.percentile(luma, 80)].mean(0)
        else:
            sclera = np.array([0.85, 0.82, 0.78])
        # The eyeball's surface lies behind the lid margins: lids closing over it win the depth test.
        eye_vs = _MESH_VS.replace("in_pos.z / (4.0 * size.x)", f"(in_pos.z + {0.04 * self.rig.face_h:.3f}) / (4.0 * size.x)")
        prog = ctx.program(vertex_shader=eye_vs, fragment_shader=_EYE_FS)
        prog["size"].value = (float(s), float(s))
        prog["portrait"].value = 0
        prog["eye_mask"].value = 1
        prog["iris"].write(np.array([[*c, r] for c, r in self.rig.eyes], "f4").tobytes())
        prog["iris_color"].write(np.array(colors, "f4").tobytes())
        prog["sclera"].value = tuple(float(v) for v in sclera)
        self._mouth_prog["white"].value = tuple(float(v) for v in np.clip(sclera * 1.05, 0.0, 1.0))
        self._eye_prog = prog
        self._eye_vao = ctx.vertex_array(prog, [(self._pos_buf, "3f", "in_pos"), (self._uv_buf, "2f", "in_uv")],
                                         ctx.buffer(self.rig.eye_triangles.astype("i4").tobytes()))

    def _setup_lids(self) -> None:
        """The closed-lid texture and where it applies (see _MESH_FS)."""
        from .face_rig import EYES  # noqa: PLC0415

        s = self.size
        lm = self.portrait.landmarks[:, :2].astype(np.float64)
        image = np.ascontiguousarray(self.portrait.image)
        fill = np.zeros((s, s), np.uint8)
        masks = []
        lashes = []
        for side in ("right", "left"):
            upper, lower, (outer, inner), _ = EYES[side]
            margin = lm[[outer, *upper, inner]]
            low = lm[[outer, *lower, inner]]
            eye_w = float(np.linalg.norm(lm[outer] - lm[inner]))
            lid_h = max(float((np.interp(margin[:, 0], *_sorted_xy(low)) - margin[:, 1]).max()), 0.08 * eye_w)
            # The band the closing lid stretches: from the margin up to about the crease,
            # and the eye opening below it.
            top = margin - [0.0, 1.3 * lid_h]
            band = np.concatenate([top, margin[::-1]])
            m = np.zeros((s, s), np.uint8)
            for poly in (band, self.rig.eye_polygon(side)):
                cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
            fill |= cv2.dilate(m, np.ones((3, 3), np.uint8))
            sigma = max(0.12 * lid_h, 0.6)
            masks.append(cv2.GaussianBlur(m, (0, 0), sigma))
            lashes.append((margin, lid_h, eye_w))
        closed = cv2.inpaint(image, fill, max(3.0, 0.02 * s), cv2.INPAINT_TELEA)
        for margin, lid_h, eye_w in lashes:
            # The lash line: the darkest tone along the lid margin in the photo, drawn just
            # above the margin so the lid carries it down onto the lower lid.
            thick = max(1.5, 0.045 * eye_w)
            line = np.round((margin - [0.0, 0.5 * thick]) * 4).astype(np.int32)
            on_margin = np.zeros((s, s), np.uint8)
            cv2.polylines(on_margin, [line], False, 255, max(1, int(round(2 * thick))), cv2.LINE_AA, shift=2)
            tone = image[on_margin > 0].reshape(-1, 3)
            luma = tone.mean(1) if len(tone) else np.zeros(1)
            dark = tone[luma <= np.percentile(luma, 20)].mean(0) if len(tone) else np.array([40.0, 30.0, 25.0])
            stroke = np.zeros((s, s), np.uint8)
            cv2.polylines(stroke, [line], False, 255, max(1, int(round(thick))), cv2.LINE_AA, shift=2)
            a = (stroke.astype(np.float32) / 255.0)[..., None]
            # A little shading of the lid towards its margin.
            shade = cv2.GaussianBlur(stroke, (0, 0), max(0.35 * lid_h, 1.0)).astype(np.float32)[..., None] / 255.0
            closed = np.clip(closed * (1.0 - 0.35 * shade) * (1.0 - a) + dark * a, 0, 255).astype(np.uint8)
        ctx = self.ctx
        self._closed_tex = ctx.texture((s, s), 3, np.ascontiguousarray(closed).tobytes())
        self._closed_tex.filter = (ctx.LINEAR, ctx.LINEAR)
        mask = np.zeros((s, s, 3), np.uint8)
        mask[..., 0], mask[..., 1] = masks
        self._lid_mask = ctx.texture((s, s), 3, mask.tobytes())
        self._lid_mask.filter = (ctx.LINEAR, ctx.LINEAR)
        prog = ctx.program(vertex_shader=_MESH_VS, fragment_shader=_LID_FS)
        prog["size"].value = (float(s), float(s))
        prog["portrait"].value, prog["closed_lids"].value, prog["lid_mask"].value = 0, 2, 3
        self._lid_prog = prog
        # The triangles that touch a lid band (in portrait coordinates, where the mask lives).
        rest = np.clip(np.round(self.rig.rest).astype(int), 0, s - 1)
        near = cv2.dilate(mask[..., :2].max(-1), np.ones((5, 5), np.uint8))[rest[:, 1], rest[:, 0]] > 0
        tris = self.rig.triangles[near[self.rig.triangles].any(axis=1)]
        self._lid_vao = ctx.vertex_array(prog, [(self._pos_buf, "3f", "in_pos"), (self._uv_buf, "2f", "in_uv")],
                                         ctx.buffer(tris.astype("i4").tobytes()))

    @property
    def gl_renderer(self) -> str:
        return str(self.ctx.info.get("GL_RENDERER", "unknown"))

    def _lip_mask(self) -> np.ndarray:
        from matplotlib.path import Path as PolyPath  # noqa: PLC0415 - set-up only

        from .face_rig import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER  # noqa: PLC0415

        loop = self.portrait.landmarks[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[-2:0:-1], :2]
        yy, xx = np.mgrid[0:self.size, 0:self.size]
        inside = PolyPath(loop).contains_points(np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1))
        return inside.reshape(self.size, self.size)

    def render(self, motion: MotionFrame) -> np.ndarray:
        """(S, S, 3) uint8 RGB image of the face in this motion."""
        # Several renderers (portraits) may live in one process: make ours the current context.
        with self.ctx:
            return self._render(motion)

    def _render(self, motion: MotionFrame) -> np.ndarray:
        mesh = self.rig.pose(motion)
        self._pos_buf.write(np.column_stack([mesh.positions, mesh.depth]).astype("f4").tobytes())
        self._uv_buf.write(mesh.uv.astype("f4").tobytes())
        self._mouth_buf.write(self._mouth_fan(mesh).tobytes())
        pos, uv, alpha = self.rig.edge_fins(mesh)
        # Every buffer is filled before the first draw: writing one that a queued draw still
        # reads would make a software rasteriser finish the frame so far, in two halves.
        self._fin_buf.write(np.column_stack([pos, uv, alpha]).astype("f4").tobytes())
        self._fbo.use()
        self.ctx.clear(0.5, 0.5, 0.5, depth=1.0)
        self.ctx.disable(self.ctx.DEPTH_TEST)  # the cavity lies behind everything
        self._mouth_vao.render(mode=self.ctx.TRIANGLE_FAN, vertices=self._mouth_n)
        self.ctx.enable(self.ctx.DEPTH_TEST)
        self._tex.use(0)
        self._mesh_vao.render()
        closing = tuple(_lid_closing(float(motion.blendshapes[INDEX[f"eyeBlink{side}"]]))
                        for side in ("Right", "Left"))
        if any(closing):  # the same triangles again, over themselves
            self._closed_tex.use(2)
            self._lid_mask.use(3)
            self._lid_prog["closing"].value = closing
            self.ctx.depth_func = "<="
            self._lid_vao.render()
            self.ctx.depth_func = "<"
        self._eye_mask.use(1)
        self._eye_prog["offset"].value = tuple(float(v) for v in self.rig.gaze_offset(motion))
        self._eye_vao.render()
        self.ctx.enable(self.ctx.BLEND)
        self.ctx.blend_func = self.ctx.SRC_ALPHA, self.ctx.ONE_MINUS_SRC_ALPHA
        self.ctx.depth_mask = False
        self._tex.use(0)
        self._fin_vao.render()
        self.ctx.depth_mask = True
        self.ctx.disable(self.ctx.BLEND)
        self._fbo.read_into(self._frame, components=4, alignment=1)
        # OpenGL's first row is the bottom one; our vertex y grows downwards (image rows),
        # which flips once more, so the read-back is already top-down.
        rgb = cv2.cvtColor(self._frame, cv2.COLOR_RGBA2RGB)
        if self.watermark is not None:
            self.watermark.apply(rgb)
        return rgb

    def _mouth_fan(self, mesh: PosedMesh) -> np.ndarray:
        loop = mesh.mouth_loop.astype(np.float64)
        upper = mesh.mouth_upper
        centre = loop.mean(0)
        ex = self.rig.ex
        ey = self.rig.ey
        across_px = (loop - centre) @ ex
        half_w = max(np.abs(across_px).max(), 1e-3)
        # Lip curves as functions of the position across the mouth.
        up_pts, lo_pts = loop[upper], loop[~upper]
        corners = loop[list(MOUTH_LOOP_CORNERS)]
        up_x = np.concatenate([(up_pts - centre) @ ex, (corners - centre) @ ex])
        up_y = np.concatenate([up_pts @ ey, corners @ ey])
        lo_x = np.concatenate([(lo_pts - centre) @ ex, (corners - centre) @ ex])
        lo_y = np.concatenate([lo_pts @ ey, corners @ ey])
        ou, ol = np.argsort(up_x), np.argsort(lo_x)

        def attrs(p):
            x = (p - centre) @ ex
            y = p @ ey
            top = np.interp(x, up_x[ou], up_y[ou])
            bottom = np.interp(x, lo_x[ol], lo_y[ol])
            return np.stack([np.maximum(y - top, 0.0), np.maximum(bottom - y, 0.0), x / half_w], -1)

        fan = np.concatenate([centre[None], loop, loop[:1]])
        return np.concatenate([fan, attrs(fan)], axis=1).astype("f4")

    def close(self) -> None:
        self.ctx.release()

