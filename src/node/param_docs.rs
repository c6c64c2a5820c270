//! The parameter tables rendered for people: the ROS 2 params file (`config/guided.yaml`) and
//! the Markdown tables of `docs/ros.md`. Tests compare the committed files with these renders,
//! so the table stays the one description.

use super::params::{NodeParams, ParamSpec, ParamType, ParamValue};

/// The params file's opening comment.
const PARAMS_FILE_HEADER: &str = "\
# ROS 2 parameters for `ros2 launch hlfp_node guided.launch.py` (both nodes).
# Generated from the parameter tables in src/node/{vision,audio}_params.rs; tests/ros_params.rs
# checks it (UPDATE_EXPECT=1 cargo test --test ros_params rewrites it).
# Every parameter is also settable with `-p name:=value`; the ones marked [dynamic] can be
# changed while the node runs: `ros2 param set /hlfp_node guidance.policy boost`.
";

/// Lines of at most `width` characters (words are never split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A value as YAML flow text (strings quoted only where YAML would read something else).
fn yaml_value(v: &ParamValue) -> String {
    let text = |s: &str| {
        let plain = matches!(
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s),
            Ok(serde_yaml_ng::Value::String(ref t)) if t == s
        );
        if plain && !s.contains(['#', ':', '[', ']', ',']) {
            s.to_string()
        } else {
            format!("{s:?}")
        }
    };
    match v {
        ParamValue::String(s) => text(s),
        ParamValue::StringArray(a) => {
            format!(
                "[{}]",
                a.iter().map(|s| text(s)).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}

fn node_section<T: NodeParams>(out: &mut String) {
    let defaults = T::default();
    out.push_str(&format!("\n{}:\n  ros__parameters:\n", T::NODE_NAME));
    let mut open: Vec<&str> = Vec::new();
    for spec in T::table() {
        let mut path: Vec<&str> = spec.name.split('.').collect();
        let leaf = path.pop().unwrap_or(spec.name);
        // Close and open the nested sections (`image_qos:`, `guidance:`) this name needs.
        let common = open.iter().zip(&path).take_while(|(a, b)| a == b).count();
        open.truncate(common);
        for (depth, part) in path.iter().enumerate().skip(common) {
            out.push_str(&format!("{}{part}:\n", "  ".repeat(depth + 2)));
            open.push(part);
        }
        let indent = "  ".repeat(open.len() + 2);
        let mut text = String::new();
        if spec.dynamic {
            text.push_str("[dynamic] ");
        }
        text.push_str(spec.description);
        if let Some(range) = Some(spec.ty.range()).filter(|r| !r.is_empty()) {
            text.push_str(&format!(" ({range})"));
        }
        for line in wrap(&text, 98 - indent.len()) {
            out.push_str(&format!("{indent}# {line}\n"));
        }
        let value = (spec.get)(&defaults);
        match &value {
            // A params file cannot type an empty list: leave it out.
            ParamValue::StringArray(a) if a.is_empty() => out.push_str(&format!(
                "{indent}# {leaf}: [a, b]   (none by default; an empty list cannot be written)\n"
            )),
            _ => out.push_str(&format!("{indent}{leaf}: {}\n", yaml_value(&value))),
        }
    }
}

/// The params file for both nodes, with every parameter at its default and described.
pub fn params_file<A: NodeParams, B: NodeParams>() -> String {
    let mut out = PARAMS_FILE_HEADER.to_string();
    node_section::<A>(&mut out);
    node_section::<B>(&mut out);
    out
}

fn markdown_row<T>(spec: &ParamSpec<T>, defaults: &T) -> String {
    let default = match (spec.get)(defaults) {
        ParamValue::StringArray(a) if a.is_empty() => "(none)".to_string(),
        ParamValue::String(s) if s.is_empty() => "(empty)".to_string(),
        v => format!("`{}`", yaml_value(&v)),
    };
    let range = match spec.ty {
        ParamType::String { choices: &[] } | ParamType::Bool | ParamType::StringArray => {
            String::new()
        }
        ty => ty.range(),
    };
    format!(
        "| `{}` | {} | {} | {} | {} | {} |\n",
        spec.name,
        spec.ty.type_name(),
        default,
        range,
        if spec.dynamic { "yes" } else { "no" },
        spec.description.replace('|', "\\|")
    )
}

/// The Markdown table of a node's parameters.
pub fn markdown_table<T: NodeParams>() -> String {
    let defaults = T::default();
    let mut out = format!(
        "| {} parameter | type | default | range | run time | description |\n|---|---|---|---|---|---|\n",
        T::NODE_NAME
    );
    for spec in T::table() {
        out.push_str(&markdown_row(spec, &defaults));
    }
    out
}

/// `doc` with the text between `<!-- params NODE -->` and `<!-- /params -->` replaced by the
/// node's table; `None` when the markers are missing.
pub fn with_markdown_table<T: NodeParams>(doc: &str) -> Option<String> {
    let open = format!("<!-- params {} -->\n", T::NODE_NAME);
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find("<!-- /params -->")?;
    Some(format!(
        "{}{}{}",
        &doc[..start],
        markdown_table::<T>(),
        &doc[end..]
    ))
}
