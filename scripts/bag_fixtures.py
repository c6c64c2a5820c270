#!/usr/bin/env python3
"""rosbag2 (MCAP) fixtures and checks made with an implementation that is not ours: the
official Python `mcap` and `mcap-ros2-support` packages, installed into a local venv
(`venv-bag/`, created on first use).

    python3 scripts/bag_fixtures.py make            # tests/fixtures/bag/*.mcap + expected.json
    python3 scripts/bag_fixtures.py check --input IN.mcap --output OUT.mcap --results OUT.jsonl
                                         [--expected tests/fixtures/bag/expected.json]
    python3 scripts/bag_fixtures.py big --frames 1000 --out /tmp/big.mcap

`make` is deterministic (fixed times, colours and samples; no randomness). `check` decodes a
bag recorded by `hlfp run --bag IN --record OUT --out OUT.jsonl` (or by the Rust round-trip
test) with mcap-ros2-support and checks every field of every message against the input bag and
the run's JSON lines; with `--expected` also the classes the fixture's colours call for.

The message definitions below are written here from the upstream .msg files (ros2/common_interfaces,
ros-perception/vision_msgs 4.x, ros-drivers/audio_common and mgonzs13/audio_common), not taken
from the Rust code, so the two sides are checked against each other.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "venv-bag"
PACKAGES = ["mcap==1.6.0", "mcap-ros2-support==0.6.0", "pillow==11.3.0"]
FIXTURES = ROOT / "tests" / "fixtures" / "bag"


def ensure_venv():
    """Re-run this script inside venv-bag/ with the pinned packages."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


SEP = "=" * 80
TIME = "int32 sec\nuint32 nanosec"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id"


def msgdef(main, *deps):
    return main + "".join(f"\n{SEP}\nMSG: {name}\n{text}" for name, text in deps)


HDR_DEPS = (("std_msgs/Header", HEADER), ("builtin_interfaces/Time", TIME))
IMAGE = msgdef(
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
    "uint8 is_bigendian\nuint32 step\nuint8[] data",
    *HDR_DEPS,
)
COMPRESSED = msgdef("std_msgs/Header header\nstring format\nuint8[] data", *HDR_DEPS)
CLASSIFICATION = msgdef(
    "std_msgs/Header header\nObjectHypothesis[] results",
    *HDR_DEPS,
    ("vision_msgs/ObjectHypothesis", "string class_id\nfloat64 score"),
)
AUDIO_DATA_STAMPED = msgdef(
    "std_msgs/Header header\naudio_common_msgs/AudioData audio",
    *HDR_DEPS,
    ("audio_common_msgs/AudioData", "uint8[] data"),
)
AUDIO_STAMPED = msgdef(
    "std_msgs/Header header\naudio_common_msgs/Audio audio",
    *HDR_DEPS,
    ("audio_common_msgs/Audio", "AudioData audio_data\nAudioInfo info"),
    (
        "audio_common_msgs/AudioData",
        "float32[] float32_data\nint32[] int32_data\nint16[] int16_data\nint8[] int8_data\nuint8[] uint8_data",
    ),
    ("audio_common_msgs/AudioInfo", "int32 format\nint32 channels\nint32 rate\nint32 chunk"),
)
# An Image whose definition differs from the real one (uint16 sizes): must be refused.
BAD_IMAGE = IMAGE.replace("uint32 height\nuint32 width", "uint16 height\nuint16 width")

T0 = 1_700_000_000 * 10**9  # log time of the first message (ns)
W, H = 8, 6
COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "gray": (128, 128, 128)}
PA_INT16 = 8


def header(ns, frame_id):
    return {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": frame_id}


def yuv(rgb):
    """BT.601 limited-range Y, U, V of an RGB colour (rounded)."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return [max(0, min(255, round(c))) for c in (y, u, v)]


def pixels(encoding, rgb, pad=0):
    """One image's data and step in `encoding`, every pixel `rgb`."""
    r, g, b = rgb
    per_pixel = {
        "rgb8": [r, g, b],
        "bgr8": [b, g, r],
        "rgba8": [r, g, b, 255],
        "bgra8": [b, g, r, 255],
        "mono8": [r],
    }
    if encoding in per_pixel:
        row = per_pixel[encoding] * W
    elif encoding in ("yuv422", "uyvy"):
        y, u, v = yuv(rgb)
        row = [u, y, v, y] * (W // 2)
    elif encoding in ("yuv422_yuy2", "yuyv"):
        y, u, v = yuv(rgb)
        row = [y, u, y, v] * (W // 2)
    elif encoding == "16UC1":
        row = [0, 1] * W
    else:
        raise ValueError(encoding)
    step = len(row) + pad
    return bytes((row + [0] * pad) * H), step


# The image topic, in order: (encoding, colour or expected rejection, row padding).
FRAMES = [
    ("rgb8", "red", 0),
    ("bgr8", "green", 0),
    ("rgba8", "blue", 0),
    ("bgra8", "red", 0),
    ("mono8", "gray", 0),
    ("yuv422", "blue", 0),
    ("yuv422_yuy2", "green", 0),
    ("uyvy", "red", 0),
    ("yuyv", "blue", 0),
    ("rgb8", "green", 4),
    ("16UC1", {"reject": "unknown_encoding"}, 0),
    ("corrupt", {"reject": "cdr"}, 0),
    ("bgr8", "blue", 0),
]
FRAME_PERIOD_NS = 100_000_000
STAMP_OFFSET_NS = -5_000_000  # header stamps 5 ms before the log times: which one is copied shows


def encoded(fmt, rgb):
    """A W x H image of one colour as PNG or JPEG bytes (Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (W, H), rgb).save(buf, format={"png": "PNG", "jpeg": "JPEG"}[fmt], quality=95)
    return buf.getvalue()


def tone(n, rate, hz, amp):
    return [int(round(amp * 32767 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n)]


def write_inputs(path, expected):
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f, compression=CompressionType.ZSTD)
        img = w.register_msgdef("sensor_msgs/msg/Image", IMAGE)
        cmp = w.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED)
        cls = w.register_msgdef("vision_msgs/msg/Classification", CLASSIFICATION)
        ads = w.register_msgdef("audio_common_msgs/msg/AudioDataStamped", AUDIO_DATA_STAMPED)
        ast = w.register_msgdef("audio_common_msgs/msg/AudioStamped", AUDIO_STAMPED)
        bad = w.register_msgdef("sensor_msgs/msg/Image", BAD_IMAGE)
        events = []  # (log_time, writer call)

        frames = []
        for i, (enc, want, pad) in enumerate(FRAMES):
            t = T0 + i * FRAME_PERIOD_NS
            stamp = t + STAMP_OFFSET_NS
            frame_id = f"cam{i}"
            entry = {"index": i, "log_time_ns": t, "stamp_ns": stamp, "frame_id": frame_id, "encoding": enc}
            entry.update({"class": want} if isinstance(want, str) else want)
            frames.append(entry)
            if enc == "corrupt":
                events.append((t, ("raw", "/camera/image_raw", b"\x00\x01\x00\x00\x07\x00")))
                continue
            colour = COLOURS.get(want, (0, 0, 0)) if isinstance(want, str) else (0, 0, 0)
            data, step = pixels(enc, colour, pad)
            msg = {"header": header(stamp, frame_id), "height": H, "width": W, "encoding": enc,
                   "is_bigendian": 0, "step": step, "data": data}
            events.append((t, ("msg", "/camera/image_raw", img, msg)))
        expected["frames"] = frames

        compressed = []
        for i, (fmt, colour) in enumerate([("jpeg", "green"), ("png", "red")]):
            t = T0 + 50_000_000 + i * FRAME_PERIOD_NS
            frame_id = f"ccam{i}"
            msg = {"header": header(t, frame_id), "format": fmt, "data": encoded(fmt, COLOURS[colour])}
            events.append((t, ("msg", "/camera/image_raw/compressed", cmp, msg)))
            compressed.append({"index": i, "log_time_ns": t, "stamp_ns": t, "frame_id": frame_id, "class": colour})
        expected["compressed"] = compressed

        cues = [
            {"log_time_ns": T0 + 250_000_000, "class": "blue", "score": 0.9},
            {"log_time_ns": T0 + 650_000_000, "class": "zebra", "score": 0.8},
        ]
        for c in cues:
            msg = {"header": header(c["log_time_ns"], "mic"), "results": [{"class_id": c["class"], "score": c["score"]}]}
            events.append((c["log_time_ns"], ("msg", "/cues", cls, msg)))
        expected["cues"] = cues

        # AudioStamped: 16 kHz mono int16, 5 chunks of 100 ms of a 440 Hz tone.
        rate, chunk = 16000, 1600
        samples = tone(5 * chunk, rate, 440.0, 0.5)
        for k in range(5):
            t = T0 + k * 100_000_000
            part = samples[k * chunk:(k + 1) * chunk]
            msg = {"header": header(t, "mic"), "audio": {
                "audio_data": {"int16_data": part},
                "info": {"format": PA_INT16, "channels": 1, "rate": rate, "chunk": chunk}}}
            events.append((t, ("msg", "/audio", ast, msg)))
        # AudioDataStamped: S16LE stereo at 8 kHz (rate and channels from flags), 3 chunks.
        left, right = tone(3 * 800, 8000, 300.0, 0.4), tone(3 * 800, 8000, 500.0, 0.2)
        for k in range(3):
            t = T0 + 20_000_000 + k * 100_000_000
            inter = [s for i in range(k * 800, (k + 1) * 800) for s in (left[i], right[i])]
            msg = {"header": header(t, "mic"), "audio": {"data": struct.pack(f"<{len(inter)}h", *inter)}}
            events.append((t, ("msg", "/audio_raw", ads, msg)))
        expected["audio"] = {
            "/audio": {"rate_hz": rate, "channels": 1, "samples": len(samples), "first": samples[:8]},
            "/audio_raw": {"rate_hz": 8000, "channels": 2, "samples": 3 * 800,
                           "first_left": left[:4], "first_right": right[:4]},
        }

        # Refused: a different Image definition, and a channel that is not CDR.
        events.append((T0 + 10_000_000, ("msg", "/camera/bad_schema", bad,
                                         {"header": header(T0, "x"), "height": 1, "width": 1, "encoding": "rgb8",
                                          "is_bigendian": 0, "step": 3, "data": b"\x01\x02\x03"})))
        json_schema = w._writer.register_schema("sensor_msgs/msg/Image", "jsonschema", b"{}")
        json_channel = w._writer.register_channel("/camera/json", "json", json_schema)
        events.append((T0 + 10_000_000, ("json", json_channel, b'{"width": 1}')))
        expected["refused"] = {"/camera/bad_schema": "schema_mismatch", "/camera/json": "message_encoding"}

        events.sort(key=lambda e: e[0])
        for seq, (t, ev) in enumerate(events):
            if ev[0] == "msg":
                w.write_message(ev[1], ev[2], ev[3], log_time=t, publish_time=t, sequence=seq)
            elif ev[0] == "raw":
                # A message cut short after its encapsulation header: written below the ROS
                # writer, on the image topic's channel.
                w._writer.add_message(w._channel_ids[ev[1]], log_time=t, data=ev[2], publish_time=t, sequence=seq)
            else:
                w._writer.add_message(ev[1], log_time=t, data=ev[2], publish_time=t, sequence=seq)
        w.finish()


def write_damaged(path, truncated_path, expected):
    """12 frames in small chunks; the second chunk's compressed bytes are flipped. A copy cut
    inside the fourth chunk is the truncated bag."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f, chunk_size=400, compression=CompressionType.ZSTD)
        img = w.register_msgdef("sensor_msgs/msg/Image", IMAGE)
        names = list(COLOURS)
        for i in range(12):
            t = T0 + i * FRAME_PERIOD_NS
            data, step = pixels("rgb8", COLOURS[names[i % 4]])
            w.write_message("/camera/image_raw", img, {
                "header": header(t, f"cam{i}"), "height": H, "width": W, "encoding": "rgb8",
                "is_bigendian": 0, "step": step, "data": data}, log_time=t, publish_time=t, sequence=i)
        w.finish()
    with open(path, "rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    chunks = sorted(chunks, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 5, len(chunks)
    blob = bytearray(Path(path).read_bytes())
    bad = chunks[1]
    # Flip bytes in the middle of the chunk's record data (past its header fields).
    mid = bad.chunk_start_offset + bad.chunk_length // 2
    for k in range(mid, mid + 16):
        blob[k] ^= 0xFF
    Path(path).write_bytes(bytes(blob))
    lost = [i for i in range(12) if bad.message_start_time <= T0 + i * FRAME_PERIOD_NS <= bad.message_end_time]
    cut = chunks[3]
    Path(truncated_path).write_bytes(bytes(blob[: cut.chunk_start_offset + cut.chunk_length // 2]))
    before = [i for i in range(12) if T0 + i * FRAME_PERIOD_NS < cut.message_start_time and i not in lost]
    expected["damaged"] = {"frames": 12, "lost": lost, "classes": [names[i % 4] for i in range(12)]}
    expected["truncated"] = {"frames_kept": before}


def make(_args):
    FIXTURES.mkdir(parents=True, exist_ok=True)
    expected = {"t0_ns": T0, "width": W, "height": H, "classes": list(COLOURS),
                "stamp_offset_ns": STAMP_OFFSET_NS}
    write_inputs(FIXTURES / "inputs.mcap", expected)
    write_damaged(FIXTURES / "damaged.mcap", FIXTURES / "truncated.mcap", expected)
    (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for p in sorted(FIXTURES.glob("*")):
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


def big(args):
    """A bench bag: `frames` bgr8 images of `size` at 30 Hz, a moving gradient."""
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    w_px, h_px = (int(x) for x in args.size.split("x"))
    row = bytes((x * 255 // max(1, w_px - 1)) for x in range(w_px) for _ in range(3))
    with open(args.out, "wb") as f:
        w = Writer(f, compression=CompressionType.ZSTD)
        img = w.register_msgdef("sensor_msgs/msg/Image", IMAGE)
        for i in range(args.frames):
            t = T0 + i * 33_333_333
            shift = (i * 3 * 7) % len(row)
            line = row[shift:] + row[:shift]
            data = b"".join(bytes([(v + y) & 0xFF for v in line[:6]]) + line[6:] for y in range(h_px))
            w.write_message("/camera/image_raw", img, {
                "header": header(t, "camera"), "height": h_px, "width": w_px, "encoding": "bgr8",
                "is_bigendian": 0, "step": 3 * w_px, "data": data}, log_time=t, publish_time=t, sequence=i)
        w.finish()
    print(f"{args.out}: {args.frames} frames {w_px}x{h_px}, {Path(args.out).stat().st_size} bytes")


def read(path, topics=None):
    """Messages by topic, each `(log_time, decoded message or None when it does not decode)`."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    factory = DecoderFactory()
    decoders = {}
    out = {}
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(topics=topics):
            if channel.id not in decoders:
                decoders[channel.id] = factory.decoder_for(channel.message_encoding, schema)
            try:
                decoded = decoders[channel.id](message.data)
            except Exception:
                decoded = None
            out.setdefault(channel.topic, []).append((message.log_time, decoded))
    return out


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(args):
    from mcap.reader import make_reader

    results = [json.loads(l) for l in Path(args.results).read_text().splitlines() if l.strip()]
    res = [r for r in results if r["type"] == "result"]
    cue_events = [r for r in results if r["type"] == "cue" and r["queued"]]
    summary = [r for r in results if r["type"] == "summary"]
    if len(summary) != 1:
        fail(f"{len(summary)} summaries in {args.results}")

    with open(args.output, "rb") as f:
        reader = make_reader(f)
        header_rec = reader.get_header()
        schemas = {s.name: s for s in reader.get_summary().schemas.values()}
        channels = {c.topic: c for c in reader.get_summary().channels.values()}
    if header_rec.profile != "ros2":
        fail(f"profile {header_rec.profile!r}, expected ros2")
    for topic, ty in [("/classification", "vision_msgs/msg/Classification"), ("/cues", "vision_msgs/msg/Classification"),
                      ("/label_info", "vision_msgs/msg/LabelInfo"), ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")]:
        ch = channels.get(topic) or fail(f"no channel {topic}")
        if ch.message_encoding != "cdr" or schemas[ty].encoding != "ros2msg" or "offered_qos_profiles" not in ch.metadata:
            fail(f"{topic}: encoding {ch.message_encoding}, schema {schemas[ty].encoding}, metadata {ch.metadata}")

    out = read(args.output)
    if any(m is None for msgs in out.values() for _, m in msgs):
        fail("a recorded message does not decode")
    out = {t: [m for _, m in msgs] for t, msgs in out.items()}
    frames_in = read(args.input, [args.image_topic])[args.image_topic]

    # One Classification per result, in order, with the input frame's header and the run's classes.
    got = out.get("/classification", [])
    if len(got) != len(res):
        fail(f"{len(got)} classifications recorded, {len(res)} results in the JSON lines")
    log_times = {}
    with open(args.output, "rb") as f:
        for _, channel, message in make_reader(f).iter_messages(topics=["/classification"]):
            log_times.setdefault("c", []).append(message.log_time)
    for m, r, log_time in zip(got, res, log_times.get("c", [])):
        in_log_time, src = frames_in[r["id"]]
        h = m.header
        if (h.stamp.sec, h.stamp.nanosec, h.frame_id) != (src.header.stamp.sec, src.header.stamp.nanosec, src.header.frame_id):
            fail(f"frame {r['id']}: header {h} is not the input's {src.header}")
        if r["stamp_ns"] != src.header.stamp.sec * 10**9 + src.header.stamp.nanosec or r["frame_id"] != src.header.frame_id:
            fail(f"frame {r['id']}: JSON stamp/frame_id differ from the input")
        classes = [(x.class_id, x.score) for x in m.results]
        want = [(t["class"], t["score"]) for t in r["top"]]
        if [c for c, _ in classes] != [c for c, _ in want] or any(abs(a - b) > 1e-6 for (_, a), (_, b) in zip(classes, want)):
            fail(f"frame {r['id']}: recorded {classes}, JSON {want}")
        if any(a[1] < b[1] for a, b in zip(classes, classes[1:])):
            fail(f"frame {r['id']}: results not best first: {classes}")
        if not in_log_time <= log_time < in_log_time + 10**9:
            fail(f"frame {r['id']}: result logged at {log_time}, its input at {in_log_time}")

    labels = out.get("/label_info", [])
    if len(labels) != 1:
        fail(f"{len(labels)} label_info messages, expected 1")
    class_map = [(c.class_id, c.class_name) for c in labels[0].class_map]
    if [i for i, _ in class_map] != list(range(len(class_map))):
        fail(f"label_info ids {class_map}")
    names = [n for _, n in class_map]
    if labels[0].threshold != 0.0:
        fail(f"label_info threshold {labels[0].threshold}")
    if any(t["class"] not in names for r in res for t in r["top"]):
        fail("a result names a class that label_info does not list")

    cues = out.get("/cues", [])
    if [(c.results[0].class_id, round(c.results[0].score, 6)) for c in cues] != \
            [(c["class"], round(c["score"], 6)) for c in cue_events]:
        fail(f"recorded cues {[c.results for c in cues]} differ from the accepted ones {cue_events}")

    for c, e in zip(cues, cue_events):
        if c.header.frame_id != e["source"] or len(c.results) != 1:
            fail(f"cue {c} does not match {e}")

    diags = out.get("/diagnostics", [])
    if not diags:
        fail("no diagnostics")
    for d in diags:
        if len(d.status) != 1 or d.status[0].name != "hlfp run: bag replay" or d.status[0].level not in (0, 1, 2):
            fail(f"diagnostics {d}")
    last = {kv.key: kv.value for kv in diags[-1].status[0].values}
    if int(last["frames_classified"]) != len(res):
        fail(f"last diagnostics say {last['frames_classified']} frames classified, {len(res)} results")

    if args.expected:
        exp = json.loads(Path(args.expected).read_text())
        if names != exp["classes"]:
            fail(f"label_info classes {names}, expected {exp['classes']}")
        want_classes = {f["index"]: f["class"] for f in exp["frames"] if "class" in f}
        got_classes = {r["id"]: r["top"][0]["class"] for r in res}
        if got_classes != want_classes:
            fail(f"top classes {got_classes}, expected {want_classes}")
    print(f"OK: {len(got)} classifications (headers = inputs'), {len(cues)} cues, 1 label_info, "
          f"{len(diags)} diagnostics decoded by mcap-ros2-support")


def main():
    ensure_venv()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make")
    c = sub.add_parser("check")
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    c.add_argument("--results", required=True)
    c.add_argument("--expected")
    c.add_argument("--image-topic", default="/camera/image_raw")
    b = sub.add_parser("big")
    b.add_argument("--frames", type=int, default=1000)
    b.add_argument("--size", default="640x480")
    b.add_argument("--out", required=True)
    args = p.parse_args()
    {"make": make, "check": check, "big": big}[args.cmd](args)


if __name__ == "__main__":
    main()
