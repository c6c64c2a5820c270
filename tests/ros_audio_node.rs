//! The audio node's logic driven in-process, as the r2r callbacks drive it: S16LE
//! `AudioDataStamped` messages of a synthetic scene in, `sound_events` and `cues` messages out
//! with the input's header; bad messages counted; parameters through the node's `ParamStore`
//! and applied in place; cues checked against the vision model's classes; the audio thread;
//! and the cue path from the audio node into the vision node.

mod audio_common;

use audio_common::{tone, BandScorer, ScriptedScorer};
use hlfp::audio::cues::CueConfig;
use hlfp::audio::detector::{DetectorConfig, Thresholds};
use hlfp::node::audio::{config_check, detector_config, AudioCore, AudioOutput};
use hlfp::node::params::ParamStore;
use hlfp::node::{AudioNodeConfig, NodeParams, ParamValue};
use hlfp::ros::msgs::{AudioData, AudioDataStamped, DiagnosticStatus, Header, Time};

const RATE: u32 = 16_000;

/// The shipped mapping, restricted to the fake scorer's labels.
fn mapping(labels: &[&str]) -> CueConfig {
    let mut cfg = CueConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/cues.toml"
    )))
    .unwrap();
    cfg.cues.retain(|k, _| labels.contains(&k.as_str()));
    cfg.detector
        .label_thresholds
        .retain(|k, _| labels.contains(&k.as_str()));
    cfg
}

fn config() -> AudioNodeConfig {
    let mut c = AudioNodeConfig::default();
    c.apply("input", &ParamValue::String("topic".into()))
        .unwrap();
    c
}

/// Low band "cat", high band "dog" (BandScorer's two labels).
fn core() -> AudioCore<BandScorer> {
    AudioCore::new(
        config(),
        &mapping(&["cat", "dog"]),
        BandScorer::new("cat", "dog", 96),
    )
    .unwrap()
}

/// The parameter store `audio_cue_node` builds for [`core`]'s mapping and labels.
fn store() -> ParamStore<AudioNodeConfig> {
    let labels = vec!["cat".to_string(), "dog".to_string()];
    let mut s = ParamStore::new(config())
        .with_check(config_check(mapping(&["cat", "dog"]).detector, labels));
    s.start(&[]).unwrap();
    s
}

/// `ros2 param set` as the node runs it: the store decides, the core follows what it accepted.
fn set(
    store: &mut ParamStore<AudioNodeConfig>,
    core: &mut AudioCore<BandScorer>,
    name: &str,
    value: ParamValue,
) -> Result<(), String> {
    store.set(name, &value).map_err(|e| e.to_string())?;
    core.sync_config(store.config()).map_err(|e| e.to_string())
}

fn header(i: usize) -> Header {
    Header {
        stamp: Time {
            sec: 100 + i as i32,
            nanosec: 5,
        },
        frame_id: format!("mic_link_{i}"),
    }
}

fn message(samples: &[f32], h: Header) -> AudioDataStamped {
    let data = samples
        .iter()
        .flat_map(|&x| ((x * 32767.0).round() as i16).to_le_bytes())
        .collect();
    AudioDataStamped {
        header: h,
        audio: AudioData { data },
    }
}

/// 1.5 s of a 5 kHz tone (the "dog" band) followed by 1.5 s of silence.
fn dog_scene() -> Vec<f32> {
    let mut x = tone(RATE, 5_000.0, 0.3, RATE as usize * 3 / 2);
    x.extend(vec![0.0; RATE as usize * 3 / 2]);
    x
}

/// Feed `x` in messages of `chunk` samples; returns each message's output.
fn feed(core: &mut AudioCore<BandScorer>, x: &[f32], chunk: usize) -> Vec<AudioOutput> {
    x.chunks(chunk)
        .enumerate()
        .map(|(i, c)| core.on_message(&message(c, header(i))).unwrap())
        .collect()
}

/// `(class_id, score)` of every hypothesis, flattened.
fn hyps(msgs: &[hlfp::ros::msgs::Classification]) -> Vec<(String, f64)> {
    msgs.iter()
        .flat_map(|m| m.results.iter().map(|h| (h.class_id.clone(), h.score)))
        .collect()
}

#[test]
fn silence_publishes_nothing() {
    let mut c = core();
    let outs = feed(&mut c, &vec![0.0; RATE as usize * 3], 1600);
    assert!(outs.iter().all(AudioOutput::is_empty));
    assert_eq!(c.counters.chunks_in, 30);
    assert_eq!(c.counters.samples_in, u64::from(RATE) * 3);
    assert_eq!((c.counters.sound_events, c.counters.cues), (0, 0));
    assert!(c.pipeline_stats().detector.silent_windows > 0);
}

#[test]
fn a_dog_tone_gives_one_event_and_its_cues_with_the_header_copied() {
    let mut c = core();
    let outs = feed(&mut c, &dog_scene(), 1600);
    let with_output: Vec<(usize, &AudioOutput)> = outs
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_empty())
        .collect();
    assert_eq!(with_output.len(), 1, "{outs:?}");
    let (i, out) = with_output[0];
    // Decided once a window holds enough of the tone: within the tone's 1.5 s.
    assert!((5..15).contains(&i), "event in message {i}");

    assert_eq!(out.sound_events.len(), 1);
    let ev = &out.sound_events[0];
    assert_eq!(ev.header, header(i));
    assert_eq!(ev.results.len(), 1);
    assert_eq!(ev.results[0].class_id, "dog");
    let score = ev.results[0].score;
    assert!((0.6..=1.0).contains(&score), "{score}");

    assert_eq!(out.cues.len(), 1);
    let cue = &out.cues[0];
    assert_eq!(cue.header, header(i));
    assert_eq!(
        hyps(&out.cues),
        vec![
            ("dog".to_string(), score),
            ("english_springer".to_string(), score)
        ]
    );
    assert_eq!((c.counters.sound_events, c.counters.cues), (1, 2));

    let d = c.diagnostics(header(0), "fake", "topic audio");
    let values = &d.status[0].values;
    let get = |k: &str| {
        values
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(get("sound_events").as_deref(), Some("1"));
    assert_eq!(get("cues").as_deref(), Some("2"));
    assert_eq!(get("messages_rejected").as_deref(), Some("0"));
    assert_eq!(d.status[0].level, DiagnosticStatus::OK);
}

#[test]
fn chunking_does_not_change_the_events() {
    let x = dog_scene();
    let mut one = core();
    let whole = one.on_message(&message(&x, header(0))).unwrap();
    assert_eq!(whole.sound_events.len(), 1);
    assert!(whole.sound_events[0].header == header(0));
    for chunk in [160, 441, 1600, 7_919] {
        let mut c = core();
        let outs = feed(&mut c, &x, chunk);
        let events: Vec<_> = outs.iter().flat_map(|o| o.sound_events.clone()).collect();
        let cues: Vec<_> = outs.iter().flat_map(|o| o.cues.clone()).collect();
        assert_eq!(hyps(&events), hyps(&whole.sound_events), "chunk {chunk}");
        assert_eq!(hyps(&cues), hyps(&whole.cues), "chunk {chunk}");
    }
}

#[test]
fn malformed_messages_are_counted_and_later_ones_still_work() {
    let mut c = core();
    let mut odd = message(&[0.1, 0.2], header(0));
    odd.audio.data.pop();
    let err = c.on_message(&odd).unwrap_err().to_string();
    assert!(err.contains("S16LE"), "{err}");
    let err = c
        .on_chunk(&[0.0; 160], 0, &header(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample rate"), "{err}");
    assert!(c.on_chunk(&[0.0; 160], 1_000_000, &header(1)).is_err());
    c.count_bad_message("json");
    assert_eq!(c.rejections.total(), 4);
    assert_eq!(
        (
            c.rejections.get("s16le"),
            c.rejections.get("rate"),
            c.rejections.get("json")
        ),
        (1, 2, 1)
    );
    assert_eq!(c.counters.samples_in, 0);

    // The stream carries on: the dog tone is still detected.
    let outs = feed(&mut c, &dog_scene(), 1600);
    let events: Vec<_> = outs.iter().flat_map(|o| o.sound_events.clone()).collect();
    assert_eq!(hyps(&events).len(), 1);
    assert_eq!(hyps(&events)[0].0, "dog");
    let d = c.diagnostics(header(0), "fake", "topic audio");
    assert_eq!(d.status[0].level, DiagnosticStatus::WARN);
    assert!(d.status[0]
        .values
        .iter()
        .any(|kv| kv.key == "messages_rejected.rate" && kv.value == "2"));
}

#[test]
fn stereo_topic_audio_is_downmixed() {
    let mut cfg = config();
    cfg.apply("channels", &ParamValue::Integer(2)).unwrap();
    let mut c = AudioCore::new(
        cfg,
        &mapping(&["cat", "dog"]),
        BandScorer::new("cat", "dog", 96),
    )
    .unwrap();
    let x: Vec<f32> = dog_scene().iter().flat_map(|&s| [s, s]).collect();
    let outs: Vec<AudioOutput> = x
        .chunks(3200)
        .enumerate()
        .map(|(i, ch)| c.on_message(&message(ch, header(i))).unwrap())
        .collect();
    let events: Vec<_> = outs.iter().flat_map(|o| o.sound_events.clone()).collect();
    assert_eq!(hyps(&events).len(), 1);
    assert_eq!(c.counters.samples_in, dog_scene().len() as u64);
    // An odd number of samples is not a whole number of stereo frames.
    assert!(c.on_message(&message(&[0.1, 0.2, 0.3], header(0))).is_err());
}

#[test]
fn node_parameters_replace_the_mapping_files_detector_settings() {
    let file = DetectorConfig {
        hop_frames: 10,
        smoothing_windows: 3,
        label_thresholds: [("dog".to_string(), Thresholds { on: 0.9, off: 0.8 })]
            .into_iter()
            .collect(),
        ..DetectorConfig::default()
    };
    let mut p = AudioNodeConfig::default();
    p.apply("on_threshold", &ParamValue::Double(0.7)).unwrap();
    p.apply("off_threshold", &ParamValue::Double(0.3)).unwrap();
    p.apply("hold_ms", &ParamValue::Integer(250)).unwrap();
    p.apply("refractory_ms", &ParamValue::Integer(2000))
        .unwrap();
    p.apply("rms_gate_dbfs", &ParamValue::Double(-40.0))
        .unwrap();
    let d = detector_config(&file, &p);
    assert_eq!(d.default_thresholds, Thresholds { on: 0.7, off: 0.3 });
    assert!(d.label_thresholds.is_empty());
    assert_eq!(
        (d.hold_s, d.refractory_s, d.silence_rms_dbfs),
        (0.25, 2.0, -40.0)
    );
    assert_eq!((d.hop_frames, d.smoothing_windows), (10, 3));

    // The defaults keep the shipped mapping file's thresholds, per label, so the node and
    // `hlfp listen` detect the same sounds out of the box.
    let shipped = mapping(&["cat", "dog", "chainsaw"]).detector;
    assert!(!shipped.label_thresholds.is_empty());
    let d = detector_config(&shipped, &AudioNodeConfig::default());
    assert_eq!(d.default_thresholds, shipped.default_thresholds);
    assert_eq!(d.label_thresholds, shipped.label_thresholds);
    assert_eq!(
        (d.hold_s, d.refractory_s, d.silence_rms_dbfs),
        (
            shipped.hold_s,
            shipped.refractory_s,
            shipped.silence_rms_dbfs
        )
    );
}

#[test]
fn one_threshold_parameter_replaces_that_threshold_for_every_label_and_keeps_the_other() {
    let file = DetectorConfig {
        default_thresholds: Thresholds { on: 0.6, off: 0.4 },
        label_thresholds: [
            ("cat".to_string(), Thresholds { on: 0.5, off: 0.3 }),
            ("dog".to_string(), Thresholds { on: 0.9, off: 0.8 }),
        ]
        .into_iter()
        .collect(),
        ..DetectorConfig::default()
    };
    let mut p = AudioNodeConfig::default();
    p.apply("on_threshold", &ParamValue::Double(0.7)).unwrap();
    let d = detector_config(&file, &p);
    assert_eq!(d.default_thresholds, Thresholds { on: 0.7, off: 0.4 });
    assert_eq!(d.label_thresholds["cat"], Thresholds { on: 0.7, off: 0.3 });
    // dog's file `off` (0.8) is above the new `on`: the detector refuses that combination.
    assert_eq!(d.label_thresholds["dog"], Thresholds { on: 0.7, off: 0.8 });
    assert!(d.validate(&["cat".into(), "dog".into()]).is_err());

    // Back to -1: the file's thresholds again.
    p.apply("on_threshold", &ParamValue::Double(-1.0)).unwrap();
    assert_eq!(
        detector_config(&file, &p).label_thresholds,
        file.label_thresholds
    );
    // Other negative values are refused, not read as -1.
    assert!(p.apply("on_threshold", &ParamValue::Double(-0.5)).is_err());
}

#[test]
fn a_threshold_update_that_conflicts_with_a_file_threshold_is_refused_and_changes_nothing() {
    let (mut st, mut c) = (store(), core());
    let before = (c.config().clone(), c.detector_config().clone());
    // An `on` below every `off` of the mapping file leaves the labels with off > on.
    let lowest_off = std::iter::once(c.detector_config().default_thresholds.off)
        .chain(c.detector_config().label_thresholds.values().map(|t| t.off))
        .fold(f32::INFINITY, f32::min);
    assert!(lowest_off > 0.0);
    let err = set(
        &mut st,
        &mut c,
        "on_threshold",
        ParamValue::Double(lowest_off as f64 / 2.0),
    )
    .unwrap_err();
    assert!(err.contains("off <= on"), "{err}");
    assert_eq!((c.config().clone(), c.detector_config().clone()), before);
    // The parameter server and the node agree.
    assert_eq!(st.config(), c.config());
    assert_eq!(c.counters.detector_updates, 0);
    // Both for every label, `off` first: accepted by both.
    set(&mut st, &mut c, "off_threshold", ParamValue::Double(0.1)).unwrap();
    set(&mut st, &mut c, "on_threshold", ParamValue::Double(0.2)).unwrap();
    assert_eq!(
        c.detector_config().default_thresholds,
        Thresholds { on: 0.2, off: 0.1 }
    );
    assert!(c.detector_config().label_thresholds.is_empty());
    assert_eq!(st.config(), c.config());
}

#[test]
fn a_parameter_change_applies_in_place_and_keeps_buffered_audio() {
    let x = dog_scene();
    let reference: Vec<AudioOutput> = feed(&mut core(), &x, 1600);
    // The same stream with refractory and hold changed after 0.4 s, while the tone is buffered
    // in the detector's window: the event comes at the same message with the same score.
    let (mut st, mut c) = (store(), core());
    let mut outs = Vec::new();
    for (i, chunk) in x.chunks(1600).enumerate() {
        if i == 4 {
            set(&mut st, &mut c, "refractory_ms", ParamValue::Integer(1500)).unwrap();
            set(&mut st, &mut c, "hold_ms", ParamValue::Integer(400)).unwrap();
        }
        outs.push(c.on_message(&message(chunk, header(i))).unwrap());
    }
    assert_eq!(outs, reference);
    assert_eq!(c.counters.detector_updates, 2);
    assert_eq!(c.detector_config().refractory_s, 1.5);

    // A gate above the tone's level (0.3 amplitude: about -13.5 dBFS RMS) makes it silence.
    let (mut st, mut c) = (store(), core());
    set(&mut st, &mut c, "rms_gate_dbfs", ParamValue::Double(-10.0)).unwrap();
    assert!(feed(&mut c, &x, 1600).iter().all(AudioOutput::is_empty));
    // Refused updates change nothing.
    let before = c.config().clone();
    assert!(set(&mut st, &mut c, "off_threshold", ParamValue::Double(0.9)).is_err());
    assert!(set(
        &mut st,
        &mut c,
        "model_path",
        ParamValue::String("x".into())
    )
    .is_err());
    assert_eq!(c.config(), &before);
    // Back to the default gate: heard again; the counters continue.
    set(&mut st, &mut c, "rms_gate_dbfs", ParamValue::Double(-55.0)).unwrap();
    let windows_before = c.pipeline_stats().detector.windows;
    let outs = feed(&mut c, &x, 1600);
    assert_eq!(outs.iter().map(|o| o.sound_events.len()).sum::<usize>(), 1);
    assert!(c.pipeline_stats().detector.windows > windows_before);
}

#[test]
fn cues_are_checked_against_the_vision_models_classes_and_unknown_ones_reported_once() {
    let mut c = core();
    // The model lacks english_springer: reported once, when the list arrives.
    let classes = ["cat", "dog", "church"].map(String::from).to_vec();
    assert_eq!(c.set_visual_classes(classes.clone()), ["english_springer"]);
    assert!(c.set_visual_classes(classes).is_empty(), "reported once");
    let outs = feed(&mut c, &dog_scene(), 1600);
    let cues: Vec<_> = outs.iter().flat_map(|o| o.cues.clone()).collect();
    let events: Vec<_> = outs.iter().flat_map(|o| o.sound_events.clone()).collect();
    assert_eq!(hyps(&events).len(), 1);
    let got: Vec<String> = hyps(&cues).into_iter().map(|(c, _)| c).collect();
    assert_eq!(got, ["dog"]);
    assert_eq!((c.counters.cues, c.counters.cues_skipped), (1, 1));
    // A model with none of the mapped classes: the event is still published, no cue.
    let mut c = core();
    c.set_visual_classes(vec!["church".into()]);
    let outs = feed(&mut c, &dog_scene(), 1600);
    assert_eq!(outs.iter().map(|o| o.sound_events.len()).sum::<usize>(), 1);
    assert!(outs.iter().all(|o| o.cues.is_empty()));
    let d = c.diagnostics(header(0), "fake", "topic audio");
    assert!(d.status[0]
        .values
        .iter()
        .any(|kv| kv.key == "cues_skipped" && kv.value == "2"));
}

#[test]
fn the_mapping_is_checked_against_the_labels() {
    // The shipped file names "chainsaw", which this scorer does not have.
    let err = AudioCore::new(
        config(),
        &mapping(&["cat", "dog", "chainsaw"]),
        ScriptedScorer::new(&["cat", "dog"], 96, vec![vec![0.0, 0.0]]),
    )
    .err()
    .expect("unknown sound label accepted")
    .to_string();
    assert!(err.contains("chainsaw"), "{err}");
}
