"""vasa-detect: tell a talking face made by vasa_nodes from real footage.

For each video, image or rosbag2 bag: whether the invisible watermark is in its pictures,
what the mark says (format version, key digest), in how many frames it was found on its
own, how sure the reading is, and the provenance the file carries (MP4 tags, C2PA manifest,
PNG text, bag metadata).

Exit status: 0 the mark was found in every file; 1 at least one file has no mark (and all
could be read); 2 at least one file could not be read, or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys

PROG = "vasa-detect"
EXIT_FOUND, EXIT_NOT_FOUND, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Look for the vasa_nodes watermark and provenance in videos, images and rosbag2 bags.",
        epilog="Exit status: 0 mark found in every file, 1 some file without the mark, 2 some file unreadable.",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="video (mp4, mkv, webm, …), image (PNG, JPEG, WebP, …) or bag (rosbag2 directory, .mcap, .db3)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout: a list with one object per file")
    p.add_argument("--key", metavar="KEY", default=None,
                   help="also check that the mark carries this key (vasa-generate --watermark-key KEY)")
    p.add_argument("--no-search", action="store_true",
                   help="do not look for a cropped picture's place in its frame when the mark is not found as it "
                        "stands (the search reads the file a second time)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="read at most N frames of each video or bag (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        print(f"{PROG}: error: --max-frames must be at least 1, got {args.max_frames}", file=sys.stderr)
        return EXIT_ERROR

    from ..core.forensics import UnreadableFile, inspect_file  # noqa: PLC0415

    results, status = [], EXIT_FOUND
    for path in args.files:
        try:
            report = inspect_file(path, key=args.key, max_frames=args.max_frames, search=not args.no_search)
        except UnreadableFile as exc:
            status = EXIT_ERROR
            results.append({"path": path, "error": str(exc)})
            print(f"{PROG}: {path}: cannot read: {exc}", file=sys.stderr)
            continue
        if not report.found and status == EXIT_FOUND:
            status = EXIT_NOT_FOUND
        results.append(report.as_dict())
        if not args.json:
            print(_describe(report))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status


def _describe(report) -> str:
    """Two or three lines for a person."""
    if report.found:
        p = report.payload
        if not report.crc_ok:
            key = "payload checksum broken (tag readable, key unknown)"
        elif p.key:
            key = f"key digest {p.key:04x}"
            if report.key_match is not None:
                key += ", matches --key" if report.key_match else ", does NOT match --key"
        else:
            key = "no key" + (", so it does NOT match --key" if report.key_match is False else "")
        head = f"{report.path}: MARKED by vasa_nodes (mark v{p.version}, {key})"
    else:
        head = f"{report.path}: no vasa_nodes mark"
    unit = "image" if report.kind == "image" else "frames"
    lines = [head,
             f"  {report.kind}: mark in {report.frames_found}/{report.frames} {unit} on their own "
             f"({100 * report.fraction:.0f} %); all together: {32 - report.tag_errors}/32 tag bits, "
             f"score {report.score:.1f}, chance of this from unmarked material {report.p_value:.1e}"]
    if report.alignment:
        a = report.alignment
        lines.append(f"  read re-aligned: a crop keeping {100 * a['kept_fraction']:.0f} % of the frame's width, "
                     f"its corner at ({100 * a['x']:.1f} %, {100 * a['y']:.1f} %) of the frame")
    if report.topics:
        lines.append(f"  image topics: {', '.join(report.topics)}")
    if report.provenance:
        prov = report.provenance
        lines.append(f"  metadata: {prov.get('generator', '?')}, synthetic={prov.get('synthetic', '?')}, "
                     f"{prov.get('digital_source_type', '').rsplit('/', 1)[-1]}")
    if report.c2pa:
        c = report.c2pa
        lines.append(f"  C2PA manifest: {c['claim_generator']}, {str(c['digital_source_type']).rsplit('/', 1)[-1]}, "
                     f"signed by {c['signer']} ({', '.join(c['validation'])})")
    if not report.provenance and not report.c2pa:
        lines.append("  no provenance metadata")
    if report.warning:
        lines.append(f"  warning: {report.warning}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
