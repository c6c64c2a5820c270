//! Node parameters as one table per config: each row holds a parameter's name, type, range,
//! whether it may change while the node runs, its description, and how it reads and writes the
//! config. Params files, `ros2 param set`, r2r's declarations, `config/guided.yaml` and the
//! tables in `docs/ros.md` all derive from that table (see [`super::param_docs`]).
//!
//! [`ParamStore`] is what the nodes hand to r2r's parameter services: start-up values, checks
//! and later updates all go through it, so the tests of the store test the path that ships.

use crate::{Error, Result};
use std::fmt;

/// A parameter value, mirroring `rcl_interfaces/ParameterValue` (and r2r's `ParameterValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// Declared without a value.
    NotSet,
    /// `bool`.
    Bool(bool),
    /// `integer` (int64).
    Integer(i64),
    /// `double`.
    Double(f64),
    /// `string`.
    String(String),
    /// `bool[]`.
    BoolArray(Vec<bool>),
    /// `byte[]`.
    ByteArray(Vec<u8>),
    /// `integer[]`.
    IntegerArray(Vec<i64>),
    /// `double[]`.
    DoubleArray(Vec<f64>),
    /// `string[]`.
    StringArray(Vec<String>),
}

impl ParamValue {
    /// The ROS type name of the value, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::NotSet => "not set",
            Self::Bool(_) => "bool",
            Self::Integer(_) => "integer",
            Self::Double(_) => "double",
            Self::String(_) => "string",
            Self::BoolArray(_) => "bool array",
            Self::ByteArray(_) => "byte array",
            Self::IntegerArray(_) => "integer array",
            Self::DoubleArray(_) => "double array",
            Self::StringArray(_) => "string array",
        }
    }

    /// A `double` holding the decimal an `f32` prints as (1.8, not 1.7999999523).
    pub fn from_f32(x: f32) -> Self {
        Self::Double(x.to_string().parse().unwrap_or(f64::from(x)))
    }

    // Readers for values a [`ParamType`] already checked; the fallbacks are unreachable then.
    fn flag(&self) -> bool {
        matches!(self, Self::Bool(true))
    }
    fn int(&self) -> i64 {
        match self {
            Self::Integer(i) => *i,
            _ => 0,
        }
    }
    fn double(&self) -> f64 {
        match self {
            Self::Double(d) => *d,
            _ => 0.0,
        }
    }
    fn text(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            _ => String::new(),
        }
    }
    fn texts(&self) -> Vec<String> {
        match self {
            Self::StringArray(s) => s.clone(),
            _ => Vec::new(),
        }
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    f.write_str("]")
}

/// The value as a person writes it (`ros2 param set` syntax): `true`, `5`, `1.5`, `focus`,
/// `[cat, dog]`.
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSet => f.write_str("<not set>"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Integer(v) => write!(f, "{v}"),
            Self::Double(v) if v.fract() == 0.0 && v.abs() < 1e15 => write!(f, "{v:.1}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::String(v) => f.write_str(v),
            Self::BoolArray(v) => join(f, v),
            Self::ByteArray(v) => join(f, v),
            Self::IntegerArray(v) => join(f, v),
            Self::DoubleArray(v) => join(f, v),
            Self::StringArray(v) => join(f, v),
        }
    }
}

/// Why a parameter update was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The node has no parameter of that name.
    #[error("unknown parameter {name:?}; known: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The node's parameter names, comma separated.
        known: String,
    },
    /// The value has the wrong type.
    #[error("parameter {name:?}: expected {expected}, got {got} {value}")]
    WrongType {
        /// Parameter name.
        name: String,
        /// The expected type.
        expected: &'static str,
        /// The type received.
        got: &'static str,
        /// The value received.
        value: String,
    },
    /// The value has the right type but is out of range.
    #[error("parameter {name:?} = {value}: {reason}")]
    Invalid {
        /// Parameter name.
        name: String,
        /// The value received.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The values together break a rule (e.g. `gain_min` above `gain_max`); the reason names
    /// the fields.
    #[error("rejected: {reason}")]
    Inconsistent {
        /// What is wrong, naming the fields.
        reason: String,
    },
    /// The parameter is read at start-up only.
    #[error("parameter {name:?} is read at start-up only; restart the node to change it")]
    ReadOnly {
        /// Parameter name.
        name: String,
    },
}

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::Config(e.to_string())
    }
}

/// The type of a parameter and the values it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamType {
    /// `bool`.
    Bool,
    /// `integer` in `min..=max`.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value (`i64::MAX`: no bound).
        max: i64,
    },
    /// A finite `double` in `min..=max`; an integer is taken too (`ros2 param set x 2`).
    Double {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// `string`, one of `choices` when that is not empty.
    String {
        /// The allowed values (empty: any).
        choices: &'static [&'static str],
    },
    /// `string[]` (unset or an empty array of another type reads as empty: a params file
    /// cannot type an empty list).
    StringArray,
}

impl ParamType {
    /// The ROS type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Integer { .. } => "integer",
            Self::Double { .. } => "double",
            Self::String { .. } => "string",
            Self::StringArray => "string array",
        }
    }

    /// The allowed values in words (`1..=1000`, `>= 0`, `focus, boost, off`), empty for any.
    pub fn range(&self) -> String {
        match *self {
            Self::Integer { min, max: i64::MAX } => format!(">= {min}"),
            Self::Integer { min, max } => format!("{min}..={max}"),
            Self::Double { min, max } => format!("[{min}, {max}]"),
            Self::String { choices } => choices.join(", "),
            Self::Bool | Self::StringArray => String::new(),
        }
    }

    /// `v` checked against this type and normalised (an integer for a double becomes a
    /// double, the empty forms of an array become an empty string array).
    pub fn check(&self, name: &str, v: &ParamValue) -> std::result::Result<ParamValue, ParamError> {
        let invalid = |reason: String| ParamError::Invalid {
            name: name.to_string(),
            value: v.to_string(),
            reason,
        };
        let ok = match (*self, v) {
            (Self::Bool, ParamValue::Bool(_)) => v.clone(),
            (Self::Integer { min, max }, ParamValue::Integer(i)) => {
                if !(min..=max).contains(i) {
                    return Err(invalid(format!("expected an integer {}", self.range())));
                }
                v.clone()
            }
            (Self::Double { min, max }, ParamValue::Double(_) | ParamValue::Integer(_)) => {
                let x = match v {
                    ParamValue::Integer(i) => *i as f64,
                    _ => v.double(),
                };
                if !x.is_finite() || x < min || x > max {
                    return Err(invalid(format!("expected a number in {}", self.range())));
                }
                ParamValue::Double(x)
            }
            (Self::String { choices }, ParamValue::String(s)) => {
                if !choices.is_empty() && !choices.contains(&s.as_str()) {
                    return Err(invalid(format!("expected one of {}", choices.join(", "))));
                }
                v.clone()
            }
            (Self::StringArray, ParamValue::StringArray(_)) => v.clone(),
            (Self::StringArray, ParamValue::NotSet) => ParamValue::StringArray(Vec::new()),
            (Self::StringArray, ParamValue::BoolArray(a)) if a.is_empty() => {
                ParamValue::StringArray(Vec::new())
            }
            (Self::StringArray, ParamValue::IntegerArray(a)) if a.is_empty() => {
                ParamValue::StringArray(Vec::new())
            }
            (Self::StringArray, ParamValue::DoubleArray(a)) if a.is_empty() => {
                ParamValue::StringArray(Vec::new())
            }
            _ => {
                return Err(ParamError::WrongType {
                    name: name.to_string(),
                    expected: self.type_name(),
                    got: v.type_name(),
                    value: v.to_string(),
                })
            }
        };
        Ok(ok)
    }
}

/// One parameter of a config `T`: the single description every use derives from.
pub struct ParamSpec<T> {
    /// Dotted name (`guidance.policy`).
    pub name: &'static str,
    /// Type and range.
    pub ty: ParamType,
    /// May change while the node runs (`ros2 param set`); others are read at start-up.
    pub dynamic: bool,
    /// What it does, for people (params file comments, docs, r2r's descriptor).
    pub description: &'static str,
    /// The current value.
    pub get: fn(&T) -> ParamValue,
    /// Store a value that [`ParamSpec::ty`] accepted; an error is a refusal in words (rules
    /// the type cannot say, e.g. a device spelling).
    pub set: fn(&mut T, &ParamValue) -> std::result::Result<(), String>,
}

/// Readers for [`ParamSpec::set`] functions (the value is already checked against the type).
pub mod read {
    use super::ParamValue;
    /// A bool.
    pub fn flag(v: &ParamValue) -> bool {
        v.flag()
    }
    /// An integer.
    pub fn int(v: &ParamValue) -> i64 {
        v.int()
    }
    /// A non-negative integer as u64 (types with `min >= 0`).
    pub fn uint(v: &ParamValue) -> u64 {
        u64::try_from(v.int()).unwrap_or(0)
    }
    /// A double.
    pub fn double(v: &ParamValue) -> f64 {
        v.double()
    }
    /// A string.
    pub fn text(v: &ParamValue) -> String {
        v.text()
    }
    /// A string array.
    pub fn texts(v: &ParamValue) -> Vec<String> {
        v.texts()
    }
}

/// A node config described by a parameter table.
pub trait NodeParams: Clone + Default + Send + 'static {
    /// The node name that keys its section in a params file.
    const NODE_NAME: &'static str;
    /// Every parameter, in declaration order.
    fn table() -> &'static [ParamSpec<Self>];
    /// Check the whole config (relations between fields); the error names the fields.
    fn check(&self) -> std::result::Result<(), ParamError>;

    /// The row of `name`.
    fn spec(name: &str) -> Option<&'static ParamSpec<Self>> {
        Self::table().iter().find(|s| s.name == name)
    }

    /// Every parameter name, in table order.
    fn names() -> Vec<&'static str> {
        Self::table().iter().map(|s| s.name).collect()
    }

    /// Apply one update, as from a params file or `-p name:=value` at start-up. On error the
    /// config is unchanged.
    fn apply(&mut self, name: &str, value: &ParamValue) -> std::result::Result<(), ParamError> {
        let spec = Self::spec(name).ok_or_else(|| ParamError::Unknown {
            name: name.to_string(),
            known: Self::names().join(", "),
        })?;
        let v = spec.ty.check(name, value)?;
        let mut next = self.clone();
        (spec.set)(&mut next, &v).map_err(|reason| ParamError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            reason,
        })?;
        next.check()?;
        *self = next;
        Ok(())
    }

    /// Apply an update while the node runs: start-up-only parameters are refused.
    fn apply_runtime(
        &mut self,
        name: &str,
        value: &ParamValue,
    ) -> std::result::Result<(), ParamError> {
        if Self::spec(name).is_some_and(|s| !s.dynamic) {
            return Err(ParamError::ReadOnly {
                name: name.to_string(),
            });
        }
        self.apply(name, value)
    }

    /// Defaults, then every pair in order; the first bad pair is the error.
    fn from_pairs(pairs: &[(String, ParamValue)]) -> std::result::Result<Self, ParamError> {
        let mut cfg = Self::default();
        for (name, value) in pairs {
            cfg.apply(name, value)?;
        }
        Ok(cfg)
    }

    /// Parse this node's section of a ROS 2 params file (YAML text).
    fn from_params_yaml(text: &str) -> Result<Self> {
        let pairs = params_file_section(text, Self::NODE_NAME)?;
        Ok(Self::from_pairs(&pairs)?)
    }

    /// The current values as `(name, value)` pairs, in table order.
    fn to_pairs(&self) -> Vec<(&'static str, ParamValue)> {
        Self::table()
            .iter()
            .map(|s| (s.name, (s.get)(self)))
            .collect()
    }
}

/// A check of a whole config that needs more than the parameters (the model's classes, the
/// sound labels and the mapping file).
pub type ConfigCheck<T> = Box<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync>;

/// The parameter store behind a node's parameter services. Start-up values go through
/// [`NodeParams::apply`], later updates through [`NodeParams::apply_runtime`]; a config check
/// given with [`ParamStore::with_check`] runs on both, so what the services accept is what the
/// node can run.
pub struct ParamStore<T: NodeParams> {
    config: T,
    started: bool,
    check: Option<ConfigCheck<T>>,
}

impl<T: NodeParams> ParamStore<T> {
    /// A store holding `config` (the start-up config, or `T::default()`).
    pub fn new(config: T) -> Self {
        Self {
            config,
            started: false,
            check: None,
        }
    }

    /// Also run `check` on every config before accepting it.
    pub fn with_check(mut self, check: ConfigCheck<T>) -> Self {
        self.check = Some(check);
        self
    }

    /// The config in force.
    pub fn config(&self) -> &T {
        &self.config
    }

    fn checked(&self, next: T) -> std::result::Result<T, ParamError> {
        if let Some(check) = &self.check {
            check(&next).map_err(|reason| ParamError::Inconsistent { reason })?;
        }
        Ok(next)
    }

    /// Declare the parameters: apply the values given at start-up (those of `given` that name
    /// a parameter; others, like `use_sim_time`, belong to r2r), check the result, and return
    /// every parameter with its value and description, in table order.
    pub fn start(
        &mut self,
        given: &[(String, ParamValue)],
    ) -> std::result::Result<Vec<(&'static str, ParamValue, &'static str)>, ParamError> {
        let mut next = self.config.clone();
        for (name, value) in given {
            if T::spec(name).is_some() {
                next.apply(name, value)?;
            }
        }
        self.config = self.checked(next)?;
        self.started = true;
        Ok(T::table()
            .iter()
            .map(|s| (s.name, (s.get)(&self.config), s.description))
            .collect())
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> std::result::Result<ParamValue, ParamError> {
        T::spec(name)
            .map(|s| (s.get)(&self.config))
            .ok_or_else(|| ParamError::Unknown {
                name: name.to_string(),
                known: T::names().join(", "),
            })
    }

    /// The config with one update applied, or why it is refused; the store is unchanged.
    pub fn check(&self, name: &str, value: &ParamValue) -> std::result::Result<T, ParamError> {
        let mut next = self.config.clone();
        if self.started {
            next.apply_runtime(name, value)?;
        } else {
            next.apply(name, value)?;
        }
        self.checked(next)
    }

    /// Apply one update (`ros2 param set`); on error nothing changes.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> std::result::Result<(), ParamError> {
        self.config = self.check(name, value)?;
        Ok(())
    }
}

/// Read the `ros__parameters` of `node_name` from a ROS 2 params file, flattened to dotted names.
/// A `/**` (all nodes) section applies first, then `node_name` or `/node_name`.
pub fn params_file_section(text: &str, node_name: &str) -> Result<Vec<(String, ParamValue)>> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| Error::Config(format!("params file is not valid YAML: {e}")))?;
    let top = doc
        .as_mapping()
        .ok_or_else(|| Error::Config("params file: expected a mapping of node names".into()))?;
    let mut pairs = Vec::new();
    let mut found = false;
    for key in [
        "/**".to_string(),
        node_name.to_string(),
        format!("/{node_name}"),
    ] {
        let Some(section) = top.get(key.as_str()) else {
            continue;
        };
        found |= key != "/**";
        let params = section.get("ros__parameters").ok_or_else(|| {
            Error::Config(format!(
                "params file: section {key:?} has no ros__parameters"
            ))
        })?;
        flatten("", params, &mut pairs)?;
    }
    if !found {
        return Err(Error::Config(format!(
            "params file has no section for node {node_name:?}"
        )));
    }
    Ok(pairs)
}

fn flatten(
    prefix: &str,
    v: &serde_yaml_ng::Value,
    out: &mut Vec<(String, ParamValue)>,
) -> Result<()> {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Mapping(m) => {
            for (k, child) in m {
                let k = k.as_str().ok_or_else(|| {
                    Error::Config(format!("params file: non-string key under {prefix:?}"))
                })?;
                let name = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, child, out)?;
            }
            Ok(())
        }
        other => {
            out.push((prefix.to_string(), yaml_to_param(prefix, other)?));
            Ok(())
        }
    }
}

fn yaml_scalar(v: &serde_yaml_ng::Value) -> Option<ParamValue> {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Bool(b) => Some(ParamValue::Bool(*b)),
        Y::Number(n) => n
            .as_i64()
            .map(ParamValue::Integer)
            .or_else(|| n.as_f64().map(ParamValue::Double)),
        Y::String(s) => Some(ParamValue::String(s.clone())),
        _ => None,
    }
}

fn yaml_to_param(name: &str, v: &serde_yaml_ng::Value) -> Result<ParamValue> {
    use serde_yaml_ng::Value as Y;
    let bad = || Error::Config(format!("params file: {name}: unsupported value {v:?}"));
    let items = match v {
        Y::Null => return Ok(ParamValue::NotSet),
        Y::Sequence(items) => items
            .iter()
            .map(|i| yaml_scalar(i).ok_or_else(bad))
            .collect::<Result<Vec<_>>>()?,
        other => return yaml_scalar(other).ok_or_else(bad),
    };
    // One type per array, as rcl requires; integers widen to doubles in a mixed list.
    let all = |f: fn(&ParamValue) -> bool| items.iter().all(f);
    Ok(if all(|i| matches!(i, ParamValue::String(_))) {
        ParamValue::StringArray(items.iter().map(ParamValue::text).collect())
    } else if all(|i| matches!(i, ParamValue::Bool(_))) {
        ParamValue::BoolArray(items.iter().map(ParamValue::flag).collect())
    } else if all(|i| matches!(i, ParamValue::Integer(_))) {
        ParamValue::IntegerArray(items.iter().map(ParamValue::int).collect())
    } else if all(|i| matches!(i, ParamValue::Integer(_) | ParamValue::Double(_))) {
        ParamValue::DoubleArray(
            items
                .iter()
                .map(|i| match i {
                    ParamValue::Integer(x) => *x as f64,
                    other => other.double(),
                })
                .collect(),
        )
    } else {
        return Err(Error::Config(format!(
            "params file: {name}: an array must hold one type"
        )));
    })
}
