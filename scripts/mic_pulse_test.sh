#!/usr/bin/env bash
# The microphone path run for real without sound hardware: a user-space PulseAudio server with a
# null sink, ALSA's default device routed to PulseAudio, a WAV played into the sink, and
# `hlfp listen --mic` (cpal, ALSA host) capturing the sink's monitor. Passes when the expected
# class cue comes out.
#
# Needs (Debian 12): pulseaudio pulseaudio-utils alsa-utils libasound2-plugins libasound2-dev,
# and an hlfp built with `--features mic`.
#
#   scripts/mic_pulse_test.sh [HLFP_BIN] [WAV] [EXPECTED_CLASS]
set -euo pipefail
BIN=${1:-target/debug/hlfp}
WAV=${2:-../shared/data/audio/cat/sasmaz_kedi-part1_cat_51.wav}
EXPECT=${3:-cat}

WORK=$(mktemp -d)
export XDG_RUNTIME_DIR=$WORK/run HOME=$WORK/home PULSE_RUNTIME_PATH=$WORK/run/pulse
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
# ALSA's default PCM goes through the PulseAudio plugin (libasound2-plugins).
cat > "$HOME/.asoundrc" <<'EOF'
pcm.!default { type pulse }
ctl.!default { type pulse }
EOF
cleanup() {
    [ -n "${LISTEN_PID:-}" ] && kill "$LISTEN_PID" 2>/dev/null || true
    pulseaudio --kill 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# -n: no default.pa (no hardware probing); as root PulseAudio warns but runs.
pulseaudio -n --daemonize=yes --exit-idle-time=-1 --log-target=file:"$WORK/pulse.log" \
    --load=module-native-protocol-unix \
    --load="module-null-sink sink_name=hlfp_null rate=48000 channels=2" \
    --load=module-always-sink
for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
pactl set-default-sink hlfp_null
pactl set-default-source hlfp_null.monitor
echo "== PulseAudio up: default source $(pactl get-default-source)"

"$BIN" listen --mic --json > "$WORK/listen.jsonl" 2> "$WORK/listen.err" &
LISTEN_PID=$!
sleep 3  # cpal opens the device and the first window fills
# Play the clip a few times with pauses, then stop listening.
for _ in 1 2 3; do paplay -d hlfp_null "$WAV"; sleep 1.5; done
sleep 3  # cpal opens the device and the first window fills
kill -TERM "$LISTEN_PID" 2>/dev/null || true
wait "$LISTEN_PID" 2>/dev/null || true
LISTEN_PID=

echo "== hlfp listen --mic said:"
cat "$WORK/listen.jsonl"
grep -E "capturing from|error|Error" "$WORK/listen.err" || true
if grep '"type":"cue"' "$WORK/listen.jsonl" | grep -q "\"class\":\"$EXPECT\""; then
    echo "PASS: a $EXPECT cue from the PulseAudio monitor"
else
    echo "FAIL: no $EXPECT cue"; tail -20 "$WORK/listen.err"; exit 1
fi
