#!/usr/bin/env python3
"""Sounds from Debian packages: training sounds from eight packages, held-out background from eight more.

Educational software and games in Debian ship recorded sound effects: Scratch's sound library,
Tux Paint's stamp sounds, GCompris's farm animals, qABCs's noises, and a few games. They hold a
handful of cat and dog clips from recording setups no `audio_extra` source has, and hundreds of
everyday sounds (crying babies, sneezes, coughs, laughter, clocks, engines, instruments, other
animals) that no other source has either. This script fetches pinned package versions with
`apt-get download` (the Debian registry is reachable where nothing else is), unpacks them,
picks the sounds by an explicit table of file names, decodes them to 16 kHz mono 16-bit WAV
(the front-end's rate), keeps at most the first 10 s, and writes

    OUT/<label>/<source>_<name>.wav      (the layout `hlfp train-audio --data` reads)
    OUT/manifest.csv                     (file, label, package, version, path, licence)

Every source of the default set is a training source only: the held-out test folds stay as
they were, so results stay comparable with earlier models. Labels: `cat`, `dog`, the existing
labels where a file name says what it is (`crying_baby`, `sneezing`, `rooster`, `bird`, ...),
`animal` for other animals and `sfx` for every other sound. `--speech-minutes M` also keeps
their speech and two more games' human cries as `speech` (not in the shipped models' data).

`--heldout` takes eight *other* packages instead, none of them ever a training source: real
speech (telephone prompts, game dialogue, spoken words, letters and syllables in a dozen
languages, cartoon voices), typing, and foley and city sounds (doors, footsteps, fire, water,
trains, traffic, industry). Files whose name suggests animals might be in them (farms, parks,
gardens, homes) are left out, and each package contributes at most HELDOUT_MINUTES. It is
background that no model here has heard, for measuring false cues per minute: it writes the
same layout plus `OUT/list.txt`, every clip as `<OUT's name>/<label>/<file>`, for
`hlfp eval-audio --data <OUT's parent> --fold MODEL:OUT/list.txt`.

Deterministic: same packages, same files, same bytes.

    python3 scripts/debian_sounds.py --out ../audio_debian      # needs apt-get, dpkg-deb
    python3 scripts/debian_sounds.py --heldout --out ../audio_heldout
    pip install soundfile scipy numpy                           # decoders and resampler
"""
import argparse
import csv
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

RATE = 16000
MAX_S = 10.0
MIN_S = 0.1

# package -> (version, source prefix, subtrees searched; None = the whole package)
PACKAGES = {
    "scratch": ("1.4.0.6~dfsg1-6.1", "scratch", ["usr/share/scratch/Media/Sounds"]),
    "tuxpaint-stamps-default": ("2022.06.04-1", "tuxpaint", ["usr/share/tuxpaint/stamps"]),
    "qabcs-data": ("1.0.2-6", "qabcs", ["usr/share/qabcs/abcs/all"]),
    "gcompris-qt-data": ("3.1-2", "gcompris", ["usr/share/gcompris-qt/rcc"]),
    "brainparty-data": ("0.61+dfsg-7", "brainparty", None),
    "xemacs21-basesupport": ("2009.02.17.dfsg.3-1", "xemacs", None),
    "etw-data": ("3.6+svn162-6", "etw", None),
    "scorched3d-data": ("44+dfsg-8", "scorched3d", None),
}

# Held-out background: package -> (version, source prefix, subtrees, label, files left out).
HELDOUT_PACKAGES = {
    "asterisk-core-sounds-en-wav": ("1.6.1-1", "asterisk", ["usr/share/asterisk/sounds"],
                                    "speech", r"/silence/"),
    "fillets-ng-data-nl": ("1.0.1-1.1", "fillets", ["usr/share/games/fillets-ng/sound"],
                           "speech", None),
    "ktuberling-data": ("4:22.12.3-1", "ktuberling", ["usr/share/ktuberling/sounds"],
                        "speech", None),
    "klettres-data": ("4:22.12.3-1", "klettres", ["usr/share/klettres"], "speech", None),
    "hedgewars-data": ("1.0.2-6", "hedgewars", ["usr/share/games/hedgewars/Data/Sounds/voices"],
                       "speech", None),
    "bucklespring-data": ("1.4.0-2", "bucklespring", ["usr/share/buckle/wav"],
                          "keyboard_typing", None),
    "minetest-data": ("5.6.1+dfsg+~1.9.0mt8+dfsg-2", "minetest",
                      ["usr/share/games/minetest/games/minetest_game/mods"], "sfx", None),
    "lincity-ng-data": ("2.9~git20150314-5", "lincity", ["usr/share/games/lincity-ng/sounds"],
                        "sfx", r"Farm|Commune|Green|Parkland|Residential|Shanty"),
}
HELDOUT_MINUTES = 8.0

# Speech in the training packages (Tux Paint's spoken stamp descriptions, letters and numbers,
# in a dozen languages): label `speech` with `--speech-minutes M` (at most M minutes per
# package, a spread over the package), skipped otherwise (the shipped models' data).
SPEECH = re.compile(r"(_desc|/alphabets/|/math/)")

# With `--speech-minutes`, two more training packages for their human cries alone (shouts,
# grunts, groans, laughs of people and of humanoid game characters voiced by people), labelled
# `speech`: package -> (version, source prefix, subtrees, files taken).
VOICE_PACKAGES = {
    "wesnoth-1.16-data": ("1:1.16.9-1", "wesnoth", ["usr/share/games/wesnoth/1.16/data/core/sounds"],
                          r"/((human|dwarf|elf|orc|goblin|ogre)[-a-z]*-(hit|die)(-\d)?|groan"
                          r"|dwarf-laugh)\.(ogg|wav)$"),
    "warmux-data": ("1:11.04.1+repack2-4", "warmux", ["usr/share/games/warmux/sound"],
                    r"/voices/"),
}

# Files never used: speech (spoken letters, digits, descriptions, words), music loops that
# are long songs, and animals a user might call a dog or a cat (wolves, foxes, cartoon dogs).
SKIP = re.compile(
    r"(_desc|/alphabets/|/math/|/faces/|/words/|/voices/|/Vocals/|wolf|fox|dogmatix|hyena"
    r"|jackal|coyote|README|intro\.ogg|explore_world_music|/music/)",
    re.IGNORECASE,
)

# (regex on the file's base name without extension, label); the first match wins.
LABELS = [
    (r"^(cat|kitten|meow|catmeow|blackcat)$", "cat"),
    (r"^(dog|dog[0-9]|bark)$", "dog"),
    (r"babycry|^cry$", "crying_baby"),
    (r"sneeze", "sneezing"),
    (r"cough", "coughing"),
    (r"laugh", "laughing"),
    (r"footstep", "footsteps"),
    (r"handclap|clapping|applause", "clapping"),
    (r"^(clock|watch)$", "clock_tick"),
    (r"rooster", "rooster"),
    (r"sheep|^baa|lamb|^ram$|goat", "sheep"),
    (r"cow|^moo$|bull|calf|bison", "cow"),
    (r"^(hen|chickens?)$", "chicken"),
    (r"^frogs?$", "frog"),
    (r"donkey", "donkey"),
    (r"chimp|gorilla|monkey", "monkey"),
    (r"^lion$", "lion"),
    (r"bird|owl|crow|duck|drake|goose|gander|gull|cuckoo|lark|sparrow|turkey|penguin|heron"
     r"|vulture|tucan|quetzal|nandou|pheasant|stork|pelican|flamingo|albatross|emu|booby"
     r"|guinea_fowl|wood_grouse|iora|adjutant|crane", "bird"),
    (r"helicopter|apache", "helicopter"),
    (r"vacuum", "vacuum"),
    (r"carhorn", "car_horn"),
    (r"policecar|firetruck|siren", "siren"),
    (r"rain$", "rain"),
    (r"oceanwaves", "sea_waves"),
    (r"horse|zebra|pig|elephant|bear|whale|orca|dolphin|sea_?lion|camel|dromedary|deer|doe"
     r"|caribou|moose|giraffe|hippo|rhino|beaver|mouse|rabbit|squirrel|ferret|badger|koala"
     r"|wombat|tiger|lynx|jaguar|panda|otter|hamster|chinchilla|hedgehog|raccoon|porcupine"
     r"|wallaby|foal|bee|hornet|mosquito|grasshopper|cricket|iguana|snake|python|newt"
     r"|turtle|snail|spider|bat|ladybug|weevil|beetle|moth|urchin|fish", "animal"),
]

AUDIO = (".ogg", ".wav", ".mp3", ".oga")


def rcc_files(path):
    """(name, bytes) of every file in a Qt resource bundle (`.rcc`, format versions 1-3)."""
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file")
    ver, tree, data, names = struct.unpack(">IIII", b[4:20])
    node = 22 if ver >= 2 else 14

    def name(off):
        (n,) = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out = []

    def walk(i, prefix):
        o = tree + i * node
        noff, flags = struct.unpack(">IH", b[o:o + 6])
        nm = name(noff) if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", b[o + 6:o + 14])
            for c in range(first, first + count):
                walk(c, prefix + nm + "/")
        elif not flags & 4:  # zstd-compressed entries are skipped
            (doff,) = struct.unpack(">I", b[o + 10:o + 14])
            (size,) = struct.unpack(">I", b[data + doff:data + doff + 4])
            raw = b[data + doff + 4:data + doff + 4 + size]
            if flags & 1:
                raw = zlib.decompress(raw[4:])
            out.append((prefix + nm, raw))

    walk(0, "")
    return out


def label_of(rel):
    if SKIP.search(rel):
        return None
    stem = os.path.splitext(os.path.basename(rel))[0].lower()
    for pat, label in LABELS:
        if re.search(pat, stem):
            return label
    return "sfx"


def to_16k_mono(src):
    """16 kHz mono samples of the first MAX_S seconds of `src` (a path or a file object)."""
    x, rate = sf.read(src, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    x = x[: int(MAX_S * rate)]
    if rate != RATE:
        g = np.gcd(int(rate), RATE)
        x = resample_poly(x, RATE // g, int(rate) // g)
    return np.clip(x, -1.0, 1.0)


def licence_of(root, pkg):
    p = os.path.join(root, "usr/share/doc", pkg, "copyright")
    if not os.path.exists(p):
        return "see the package's copyright file"
    lic = []
    for line in open(p, errors="replace"):
        if line.startswith("License:"):
            v = line.split(":", 1)[1].strip()
            if v and v not in lic:
                lic.append(v)
    return "; ".join(lic) or "see the package's copyright file"


def candidates(root, subtrees):
    """(path in the package, path or file object) of every sound under `subtrees` of `root`."""
    found = []
    for sub in subtrees or [""]:
        for dirpath, _, files in os.walk(os.path.join(root, sub)):
            for f in files:
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, root)
                if f.endswith(".rcc"):
                    for name, raw in rcc_files(full):
                        if name.lower().endswith(AUDIO):
                            found.append((f"{rel}:{name}", io.BytesIO(raw)))
                elif f.lower().endswith(AUDIO):
                    found.append((rel, full))
    return sorted(found, key=lambda f: f[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. ../audio_debian)")
    ap.add_argument("--debs", help="directory with the .deb files already downloaded")
    ap.add_argument("--heldout", action="store_true",
                    help="the held-out background packages instead of the training ones")
    ap.add_argument("--speech-minutes", type=float, default=0.0,
                    help="training packages: keep up to this much of their speech as `speech`")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="debian_sounds_")
    debs = args.debs or os.path.join(work, "debs")
    os.makedirs(debs, exist_ok=True)
    if args.heldout:
        table = {k: (v, src, sub, (lab, skip, None)) for k, (v, src, sub, lab, skip)
                 in HELDOUT_PACKAGES.items()}
    else:
        table = {k: (v, src, sub, None) for k, (v, src, sub) in PACKAGES.items()}
        if args.speech_minutes > 0:
            table.update({k: (v, src, sub, ("speech", None, take)) for k, (v, src, sub, take)
                          in VOICE_PACKAGES.items()})
    # Capped files come as a spread over a package (speakers, languages, scenes) rather than
    # its first folders: in the order of a hash of their path, after the others.
    def capped(rel):
        return args.heldout or (args.speech_minutes > 0 and SPEECH.search(rel))

    cap = HELDOUT_MINUTES * 60 if args.heldout else args.speech_minutes * 60
    rows = []
    # `fixed`: every file taken gets one label, (label, files left out, files taken).
    for pkg, (ver, source, subtrees, fixed) in table.items():
        deb = [f for f in os.listdir(debs) if f.startswith(pkg + "_")]
        if not deb:
            subprocess.run(["apt-get", "download", f"{pkg}={ver}"], cwd=debs, check=True)
            deb = [f for f in os.listdir(debs) if f.startswith(pkg + "_")]
        root = os.path.join(work, pkg)
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, deb[0]), root], check=True)
        licence = licence_of(root, pkg)
        found = candidates(root, subtrees)
        found.sort(key=lambda f: (1, zlib.crc32(f[0].encode()), f[0]) if capped(f[0])
                   else (0, 0, f[0]))
        n, used, seconds = 0, set(), 0.0
        for rel, path in found:
            if fixed:
                label, skip, take = fixed
                if (skip and re.search(skip, rel)) or (take and not re.search(take, rel)):
                    continue
            elif capped(rel):
                label = "speech"
            else:
                label = label_of(rel)
                if label is None:
                    continue
            try:
                x = to_16k_mono(path)
            except Exception as e:  # a file libsndfile cannot read is reported and skipped
                print(f"skip {pkg}:{rel}: {e}", file=sys.stderr)
                continue
            if len(x) < MIN_S * RATE or np.max(np.abs(x)) < 1e-4:
                continue
            if capped(rel):
                if seconds + len(x) / RATE > cap:
                    break
                seconds += len(x) / RATE
            parts = os.path.splitext(rel.replace(":", "/"))[0].split("/")[-2:]
            stem = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-")
            name = f"{source}_{stem}.wav"
            k = 2
            while name in used:
                name, k = f"{source}_{stem}-{k}.wav", k + 1
            used.add(name)
            os.makedirs(os.path.join(args.out, label), exist_ok=True)
            sf.write(os.path.join(args.out, label, name), x, RATE, subtype="PCM_16")
            rows.append([f"{label}/{name}", label, pkg, ver, rel, licence, f"{len(x) / RATE:.3f}"])
            n += 1
        print(f"{pkg} {ver}: {n} clips ({seconds / 60:.1f} min capped)", file=sys.stderr)
    rows.sort()
    with open(os.path.join(args.out, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "package", "version", "path", "license", "duration_s"])
        w.writerows(rows)
    if args.heldout:
        top = os.path.basename(os.path.normpath(args.out))
        with open(os.path.join(args.out, "list.txt"), "w") as f:
            f.writelines(f"{top}/{r[0]}\n" for r in rows)
    counts = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
