//! The QoS of every topic the nodes use, stated once, with the DDS compatibility rule that
//! decides whether a publisher and a subscription match, and the log line for a change in the
//! number of publishers a subscription sees.

use super::vision_params::Reliability;
use std::collections::BTreeMap;
use std::fmt;

/// Durability of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Late subscribers get nothing old.
    Volatile,
    /// Late subscribers get the last `depth` messages (latched).
    TransientLocal,
}

/// A QoS profile (keep-last history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QosSpec {
    /// Reliability.
    pub reliability: Reliability,
    /// Durability.
    pub durability: Durability,
    /// History depth.
    pub depth: usize,
}

impl fmt::Display for QosSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self.durability {
            Durability::Volatile => "volatile",
            Durability::TransientLocal => "transient_local",
        };
        write!(f, "{}, {d}, depth {}", self.reliability, self.depth)
    }
}

/// `cues`, on both nodes' ends: reliable (a cue is a rare event that must arrive), volatile (a
/// stale cue must not steer a fresh start), ten deep (a burst of cues is not cut short).
pub const CUE_QOS: QosSpec = QosSpec {
    reliability: Reliability::Reliable,
    durability: Durability::Volatile,
    depth: 10,
};

/// `classification` and `sound_events`: the same as cues.
pub const EVENT_QOS: QosSpec = CUE_QOS;

/// `label_info`: latched, so a node started later still gets the class list.
pub const LATCHED_QOS: QosSpec = QosSpec {
    reliability: Reliability::Reliable,
    durability: Durability::TransientLocal,
    depth: 1,
};

/// The image subscription, from the `image_qos.*` parameters.
pub fn image_qos(reliability: Reliability, depth: u32) -> QosSpec {
    QosSpec {
        reliability,
        durability: Durability::Volatile,
        depth: depth.max(1) as usize,
    }
}

/// `audio` (sensor data): best effort, volatile, five deep.
pub const AUDIO_QOS: QosSpec = QosSpec {
    reliability: Reliability::BestEffort,
    durability: Durability::Volatile,
    depth: 5,
};

/// Whether a publisher with `publisher` QoS reaches a subscription with `subscription` QoS
/// (the DDS request/offer rule: the offer must be at least as strong as the request), and if
/// not, why.
pub fn compatible(publisher: &QosSpec, subscription: &QosSpec) -> Result<(), String> {
    if subscription.reliability == Reliability::Reliable
        && publisher.reliability == Reliability::BestEffort
    {
        return Err(format!(
            "the subscription asks for reliable delivery and the publisher offers best effort \
             ({publisher} vs {subscription})"
        ));
    }
    if subscription.durability == Durability::TransientLocal
        && publisher.durability == Durability::Volatile
    {
        return Err(format!(
            "the subscription asks for transient_local and the publisher offers volatile \
             ({publisher} vs {subscription})"
        ));
    }
    Ok(())
}

/// A change in the publishers a subscription sees, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchNote {
    /// A publisher appeared whose QoS matches the subscription's (log as info).
    Matched(String),
    /// A publisher appeared that the subscription cannot receive from (log as warning).
    Incompatible(String),
    /// A publisher went away (log as info).
    Gone(String),
}

impl MatchNote {
    /// Write the note to the log at its level.
    pub fn log(&self) {
        match self {
            Self::Matched(s) | Self::Gone(s) => tracing::info!("{s}"),
            Self::Incompatible(s) => tracing::warn!("{s}"),
        }
    }
}

/// Watches the publishers of a subscribed topic and says when one appears (matched or not,
/// by [`compatible`]) or goes.
#[derive(Debug, Clone)]
pub struct MatchWatch {
    topic: String,
    ours: QosSpec,
    known: BTreeMap<String, Option<QosSpec>>,
}

impl MatchWatch {
    /// A watch of `topic`, subscribed with `ours`.
    pub fn new(topic: impl Into<String>, ours: QosSpec) -> Self {
        Self {
            topic: topic.into(),
            ours,
            known: BTreeMap::new(),
        }
    }

    /// The topic watched.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishers seen last whose QoS matches (an unknown QoS counts as matching).
    pub fn matched(&self) -> usize {
        self.known
            .values()
            .filter(|q| q.is_none_or(|q| compatible(&q, &self.ours).is_ok()))
            .count()
    }

    /// Record the current publishers (node name, QoS when known); what changed since the last
    /// call.
    pub fn update(&mut self, publishers: &[(String, Option<QosSpec>)]) -> Vec<MatchNote> {
        let mut notes = Vec::new();
        let now: BTreeMap<String, Option<QosSpec>> = publishers.iter().cloned().collect();
        for (node, qos) in &now {
            if self.known.get(node) == Some(qos) {
                continue;
            }
            let t = &self.topic;
            notes.push(match qos {
                None => MatchNote::Matched(format!(
                    "{t}: publisher {node} appeared (QoS not reported), subscribed with {}",
                    self.ours
                )),
                Some(q) => match compatible(q, &self.ours) {
                    Ok(()) => MatchNote::Matched(format!(
                        "{t}: subscription matched publisher {node} ({q})"
                    )),
                    Err(why) => MatchNote::Incompatible(format!(
                        "{t}: publisher {node} does not match this subscription: {why}"
                    )),
                },
            });
        }
        for node in self.known.keys().filter(|n| !now.contains_key(*n)) {
            notes.push(MatchNote::Gone(format!(
                "{}: publisher {node} is gone",
                self.topic
            )));
        }
        self.known = now;
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_offer_rules() {
        let best_effort_pub = image_qos(Reliability::BestEffort, 1);
        assert!(compatible(&best_effort_pub, &image_qos(Reliability::BestEffort, 1)).is_ok());
        let err = compatible(&best_effort_pub, &CUE_QOS).unwrap_err();
        assert!(err.contains("best effort"), "{err}");
        assert!(compatible(&CUE_QOS, &image_qos(Reliability::BestEffort, 1)).is_ok());
        // A latched subscriber needs a latched publisher; a volatile one takes both.
        assert!(compatible(&CUE_QOS, &LATCHED_QOS).is_err());
        assert!(compatible(&LATCHED_QOS, &CUE_QOS).is_ok());
        assert!(compatible(&CUE_QOS, &CUE_QOS).is_ok());
    }

    #[test]
    fn the_watch_says_what_changed_once() {
        let mut w = MatchWatch::new("/cues", CUE_QOS);
        assert!(w.update(&[]).is_empty());
        let audio = ("/audio_cue_node".to_string(), Some(CUE_QOS));
        let cli = (
            "/_ros2cli_1".to_string(),
            Some(image_qos(Reliability::BestEffort, 1)),
        );
        let notes = w.update(&[audio.clone(), cli.clone()]);
        assert_eq!(notes.len(), 2);
        assert!(matches!(&notes[0], MatchNote::Incompatible(s) if s.contains("_ros2cli_1")));
        assert!(matches!(&notes[1], MatchNote::Matched(s) if s.contains("/audio_cue_node")));
        assert_eq!(w.matched(), 1);
        assert!(
            w.update(&[audio.clone(), cli]).is_empty(),
            "no change, no log"
        );
        let notes = w.update(&[audio]);
        assert!(matches!(&notes[..], [MatchNote::Gone(s)] if s.contains("_ros2cli_1")));
        assert_eq!(w.topic(), "/cues");
    }
}
